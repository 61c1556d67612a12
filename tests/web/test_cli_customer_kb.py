"""`pbx customer import|export|list` and `pbx kb import|search|list|del` on a real data
directory (CliRunner, no server)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.app import app

runner = CliRunner()


def pbx(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def test_customer_import_reports_bad_lines_keeps_good_and_exports(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert pbx("init", "--data-dir", str(data), "--realm", "aiopbx")[0] == 0
    csv_file = tmp_path / "crm.csv"
    csv_file.write_text(
        "Customer,Tel,Organisation,Notes\n"
        "Ada Lovelace,020 7946 0123,Engines,likes <b>bold</b>\n"
        "Nobody,12,,\n"
        "Grace Hopper,+1 415 555 0100,Navy,\n"
    )
    code, out, err = pbx("customer", "import", str(csv_file), "--data-dir", str(data))
    assert (code, out) == (1, "")
    assert err == "pbx: error: give the numbers' default country with --country (e.g. GB)\n"
    code, out, err = pbx(
        "customer", "import", str(csv_file), "--country", "GB", "--map", "name=Customer",
        "--data-dir", str(data),
    )  # fmt: skip
    assert code == 1
    assert err == f"{csv_file}:3: number '12' is too short for a telephone number\n"
    assert out == (
        f"imported 2 customers (2 new, 0 updated) from {csv_file} (numbers read as GB);"
        " 1 rows left out\n"
    )
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("name,number\nAda King,02079460123\n")  # the country is remembered
    code, out, err = pbx("customer", "import", str(fixed), "--data-dir", str(data))
    assert (code, err) == (0, "") and "(0 new, 1 updated)" in out
    code, out, _ = pbx("customer", "export", "--data-dir", str(data))
    assert out.splitlines() == [
        "number,name,company,email,notes,external_id",
        "+442079460123,Ada King,,,,",
        "+14155550100,Grace Hopper,Navy,,,",
    ]
    code, out, _ = pbx("customer", "list", "--data-dir", str(data))
    assert "Ada King" in out and "+14155550100" in out


def test_kb_import_dir_search_and_delete(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert pbx("init", "--data-dir", str(data), "--realm", "aiopbx")[0] == 0
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "refunds.md").write_text(
        "---\ntags: billing, sales\n---\n# Refund policy\n\nRefunds take **10 days**.\n"
    )
    (kb / "reset-password.md").write_text("Open the portal and press *Forgot*.\n")
    (kb / "broken.md").write_text("---\ntitle: x\n")
    code, out, err = pbx("kb", "import", str(kb), "--data-dir", str(data))
    assert code == 1
    assert err == f"{kb / 'broken.md'}: the front matter (---) is not closed\n"
    assert out.splitlines() == [
        "added article 1 'Refund policy' from refunds.md",
        "added article 2 'reset password' from reset-password.md",
    ]
    code, out, _ = pbx("kb", "search", "refund", "--data-dir", str(data))
    assert code == 0 and out.splitlines()[1].split() == [
        "1",
        "Refund",
        "policy",
        "billing",
        "sales",
    ]
    code, out, _ = pbx("kb", "import", str(kb / "refunds.md"), "--data-dir", str(data))
    assert out == "replaced article 1 'Refund policy' from refunds.md\n"
    assert pbx("kb", "del", "1", "--data-dir", str(data))[0] == 0
    assert pbx("kb", "search", "refund", "--data-dir", str(data))[1] == "no article matches\n"
    code, _, err = pbx("kb", "del", "1", "--data-dir", str(data))
    assert code == 1 and err == "pbx: error: no article 1\n"


def test_ticket_target_and_list(tmp_path: Path) -> None:
    import asyncio

    from pbx.store import Store
    from pbx.store.queues import Queue

    data = tmp_path / "data"
    assert pbx("init", "--data-dir", str(data), "--realm", "aiopbx")[0] == 0
    code, out, err = pbx("ticket", "target", "support", "4h", "--data-dir", str(data))
    assert (code, err) == (1, "pbx: error: no queue 'support'\n")

    async def setup() -> None:
        async with await Store.open(data / "pbx.sqlite3") as store:
            await store.queues.add(Queue("support", "700"))

    asyncio.run(setup())
    code, out, _ = pbx("ticket", "target", "support", "4h", "--data-dir", str(data))
    assert (code, out) == (
        0,
        "tickets from queue support are due within 4:00:00 (default 1:00:00)\n",
    )
    assert pbx("ticket", "list", "--data-dir", str(data))[1] == "no tickets\n"

    async def open_one() -> None:
        async with await Store.open(data / "pbx.sqlite3") as store:
            await store.tickets.open("1001", "Printer on fire", queue="support")

    asyncio.run(open_one())
    code, out, _ = pbx("ticket", "list", "--data-dir", str(data))
    header, row = out.splitlines()
    assert header.split() == ["ID", "STATE", "AGENT", "QUEUE", "OPEN", "TARGET", "SUBJECT"]
    assert row.split()[:4] == ["1", "open", "1001", "support"] and "4:00:00" in row
