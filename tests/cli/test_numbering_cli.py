"""One numbering plan: a number taken by a user, ring group, IVR menu or feature code is
refused everywhere with one line naming the owner; `pbx user del` cleans up after itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from pbx.store import Store

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    assert runner.invoke(app, ["init", "--data-dir", str(d)]).exit_code == 0
    return d


def ok(data_dir: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def refused(data_dir: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    return line


def menu(data_dir: Path, number: str) -> None:
    toml = data_dir / "ivr.toml"
    toml.write_text(f'[[menu]]\nname = "main"\nnumber = "{number}"\ngreeting = "ivr-welcome"\n')
    ok(data_dir, "ivr", "import", str(toml))


def test_ringgroup_on_a_user_number(data_dir: Path) -> None:
    ok(data_dir, "user", "add", "1001")
    assert refused(data_dir, "ringgroup", "add", "1001", "-m", "1001") == (
        "pbx: error: number 1001 is already taken by user 1001"
    )


def test_menu_on_a_user_number(data_dir: Path) -> None:
    ok(data_dir, "user", "add", "1001")
    toml = data_dir / "ivr.toml"
    toml.write_text('[[menu]]\nname = "main"\nnumber = "1001"\ngreeting = "ivr-welcome"\n')
    assert refused(data_dir, "ivr", "import", str(toml)) == (
        "pbx: error: number 1001 is already taken by user 1001"
    )


def test_user_and_ringgroup_on_a_menu_number(data_dir: Path) -> None:
    menu(data_dir, "800")
    assert refused(data_dir, "user", "add", "800") == (
        "pbx: error: number 800 is already taken by IVR menu 'main'"
    )
    ok(data_dir, "user", "add", "1001")
    assert refused(data_dir, "ringgroup", "add", "800", "-m", "1001") == (
        "pbx: error: number 800 is already taken by IVR menu 'main'"
    )
    assert ok(data_dir, "user", "list").count("800") == 0


def test_user_on_a_ringgroup_number(data_dir: Path) -> None:
    ok(data_dir, "user", "add", "1001")
    ok(data_dir, "ringgroup", "add", "600", "-m", "1001")
    assert refused(data_dir, "user", "add", "600") == (
        "pbx: error: number 600 is already taken by ring group 600"
    )
    assert refused(data_dir, "ringgroup", "add", "600", "-m", "1001") == (
        "pbx: error: number 600 is already taken by ring group 600"
    )


def _leave_messages(data_dir: Path, box: str, count: int) -> list[Path]:
    box_dir = data_dir / "voicemail" / box
    box_dir.mkdir(parents=True)
    (box_dir / "greeting-unavailable.wav").write_bytes(b"RIFF")
    paths = [box_dir / f"msg{i}.wav" for i in range(count)]

    async def add() -> None:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            for i, path in enumerate(paths):
                path.write_bytes(b"RIFF")
                await store.voicemail.add(box, "1002", 1000.0 + i, 3.0, str(path))

    asyncio.run(add())
    return paths


def _groups(data_dir: Path) -> dict[str, tuple[str, ...]]:
    async def read() -> dict[str, tuple[str, ...]]:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return {g.number: g.members for g in await store.dialplan.ring_groups()}

    return asyncio.run(read())


def test_user_del_leaves_ring_groups_and_deletes_voicemail(data_dir: Path) -> None:
    for user in ("1001", "1002"):
        ok(data_dir, "user", "add", user)
    ok(data_dir, "ringgroup", "add", "600", "-m", "1001,1002")
    ok(data_dir, "ringgroup", "add", "601", "-m", "1001")
    paths = _leave_messages(data_dir, "1001", 2)
    box_dir = data_dir / "voicemail" / "1001"
    assert ok(data_dir, "user", "del", "1001") == (
        "deleted user 1001\n"
        "removed 1001 from ring group(s) 600, 601\n"
        "ring group 601 has no members left (pbx ringgroup del 601)\n"
        f"deleted 2 voicemail messages and greetings ({box_dir}); --keep-voicemail keeps them\n"
    )
    assert _groups(data_dir) == {"600": ("1002",), "601": ()}
    assert not box_dir.exists() and not any(p.exists() for p in paths)
    assert "1001" not in ok(data_dir, "vm", "list")


def test_user_del_keep_voicemail(data_dir: Path) -> None:
    ok(data_dir, "user", "add", "1001")
    paths = _leave_messages(data_dir, "1001", 1)
    out = ok(data_dir, "user", "del", "1001", "--keep-voicemail")
    lines = out.splitlines()
    assert lines[0] == "deleted user 1001"
    assert lines[1].startswith("kept 1 voicemail message and greetings in ")
    [kept] = (data_dir / "voicemail").glob("1001.deleted-*")
    assert lines[1].endswith(f"{kept} (no longer reachable by phone)")
    assert (kept / paths[0].name).is_file() and (kept / "greeting-unavailable.wav").is_file()
    assert not (data_dir / "voicemail" / "1001").exists()  # a new 1001 starts empty


def test_user_del_names_what_still_sends_calls_to_it(data_dir: Path) -> None:
    for user in ("1001", "1002"):
        ok(data_dir, "user", "add", user)
    ok(data_dir, "user", "forward", "1002", "--busy", "1001")
    toml = data_dir / "ivr.toml"
    toml.write_text(
        '[[menu]]\nname = "main"\ngreeting = "ivr-welcome"\nfallback = "voicemail:1001"\n'
        '[menu.options]\n"1" = "extension:1001"\n"2" = "extension:1002"\n'
    )
    ok(data_dir, "ivr", "import", str(toml))
    ok(data_dir, "did", "add", "+33100000001", "--to", "ext:1001")
    ok(data_dir, "did", "add", "+33100000002", "--to", "vm:1001")
    ok(data_dir, "did", "add", "+33100000003", "--to", "ext:1002")
    assert ok(data_dir, "user", "del", "1001").splitlines()[-1] == (
        "still sending calls to 1001 (now unknown): IVR menu 'main' key 1 (extension:1001);"
        " IVR menu 'main' fallback (voicemail:1001); forwarding of 1002;"
        " DID +33100000001; DID +33100000002"
    )
