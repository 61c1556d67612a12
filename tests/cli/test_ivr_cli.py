"""`pbx ivr import|export|list|clear` through typer's CliRunner, with one-line errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from ivr.menu import parse_toml, to_toml
from pbx.store import Store

runner = CliRunner()

CONFIG = """\
# comments and key order are not kept: export writes the normalized form
[[menu]]
greeting = "main-greeting"
name = "main"
number = "800"
dial_by_extension = true
[menu.options]
"1" = "extension:1001"
"2" = "menu:sales"
"0" = "hangup"

[[menu]]
name = "sales"
greeting = "sales-greeting"
[menu.options]
"1" = "voicemail:1002"

[[schedule]]
name = "office"
number = "700"
open_menu = "main"
closed_menu = "sales"
[[schedule.hours]]
days = ["mon", "fri"]
start = 09:00:00
end = 17:00:00
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def create() -> None:
        async with await Store.open(tmp_path / "pbx.sqlite3") as store:
            await store.settings.set_default("realm", "aiopbx")

    asyncio.run(create())
    return tmp_path


def _pbx(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["ivr", *args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def _stored(data_dir: Path) -> str:
    async def read() -> str:
        async with await Store.open(data_dir / "pbx.sqlite3") as store:
            return await store.ivr.get()

    return asyncio.run(read())


def test_import_list_export_clear(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "ivr.toml"
    source.write_text(CONFIG)
    assert _pbx(data_dir, "import", str(source)) == (
        0,
        "imported 2 menus and 1 schedule\n",
        "pbx: warning: menu 'main': greeting 'main-greeting' is no prompt\n"
        "pbx: warning: menu 'main' key 1: no extension or ring group 1001\n"
        "pbx: warning: menu 'sales': greeting 'sales-greeting' is no prompt\n"
        "pbx: warning: menu 'sales' key 1: no mailbox 1002\n",
    )
    expected = to_toml(*parse_toml(CONFIG))
    assert _stored(data_dir) == expected

    code, out, _ = _pbx(data_dir, "list")
    assert code == 0
    assert out.splitlines() == [
        "NAME   NUMBER  GREETING        OPTIONS",
        "main   800     main-greeting   1=extension:1001 2=menu:sales 0=hangup ext(4)",
        "sales  -       sales-greeting  1=voicemail:1002",
        "",
        "SCHEDULE  NUMBER  OPEN  CLOSED  HOLIDAYS",
        "office    700     main  sales   0",
    ]

    assert _pbx(data_dir, "export") == (0, expected, "")
    target = tmp_path / "out.toml"
    assert _pbx(data_dir, "export", "--output", str(target)) == (0, "", "")
    assert target.read_text() == expected
    assert parse_toml(target.read_text()) == parse_toml(CONFIG)

    assert _pbx(data_dir, "clear") == (0, "cleared the IVR configuration\n", "")
    assert _stored(data_dir) == ""
    assert _pbx(data_dir, "clear") == (0, "no IVR configuration to clear\n", "")
    assert _pbx(data_dir, "list")[1] == "no IVR menus; load some with `pbx ivr import FILE.toml`\n"
    assert _pbx(data_dir, "export") == (0, "", "")


def test_import_replaces_the_whole_configuration(data_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(CONFIG)
    second.write_text('[[menu]]\nname = "only"\ngreeting = "hi"\n')
    assert _pbx(data_dir, "import", str(first))[0] == 0
    assert _pbx(data_dir, "import", str(second)) == (
        1,
        "",
        "pbx: error: this would replace the stored IVR configuration (2 menus: main, sales;"
        " 1 schedule: office); run again with --replace\n",
    )
    assert _stored(data_dir) == to_toml(*parse_toml(CONFIG))  # untouched
    assert _pbx(data_dir, "import", "--replace", str(second)) == (
        0,
        "imported 1 menu and 0 schedules\nreplaced 2 menus: main, sales; 1 schedule: office\n",
        "pbx: warning: menu 'only': greeting 'hi' is no prompt\n",
    )
    menus, schedules = parse_toml(_stored(data_dir))
    assert ([m.name for m in menus], schedules) == (["only"], ())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'[[menu]]\nname = "m"\ngreeting = "g"\ntimeout = -1\n',
         "menu 'm': timeout -1 must be more than 0 and at most 300"),
        (b'[[menu]]\nname = "m"\ngreeting = "g"\n[menu.options]\n"1" = "menu:x"\n',
         "menu 'm': options.'1' names an unknown menu 'x'"),
        (b"[[menu]\n",
         "not valid TOML: Expected ']]' at the end of an array declaration (at line 1, column 7)"),
        (b"\xff\xfe", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
    ],
)  # fmt: skip
def test_bad_file_is_one_line_and_keeps_the_stored_configuration(
    data_dir: Path, tmp_path: Path, data: bytes, reason: str
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(CONFIG)
    assert _pbx(data_dir, "import", str(good))[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_bytes(data)
    code, out, err = _pbx(data_dir, "import", str(bad))
    assert (code, out) == (1, "")
    assert err == f"pbx: error: {bad}: {reason}\n"
    assert _stored(data_dir) == to_toml(*parse_toml(CONFIG))


def test_missing_file_and_missing_database(data_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert _pbx(data_dir, "import", str(missing)) == (
        1,
        "",
        f"pbx: error: {missing}: No such file or directory\n",
    )
    empty = tmp_path / "empty"
    assert _pbx(empty, "list") == (
        1,
        "",
        f"pbx: error: no database in {empty}; run `pbx init` first\n",
    )


def test_references_that_exist_are_not_reported(data_dir: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["user", "add", "1001", "--data-dir", str(data_dir)]).exit_code == 0
    assert runner.invoke(app, ["user", "add", "1002", "--data-dir", str(data_dir)]).exit_code == 0
    prompts = data_dir / "prompts"
    prompts.mkdir()
    for name in ("main-greeting", "sales-greeting"):
        (prompts / f"{name}.wav").write_bytes(b"")  # listed by name; content not read here
    source = tmp_path / "ivr.toml"
    source.write_text(CONFIG)
    assert _pbx(data_dir, "import", str(source)) == (0, "imported 2 menus and 1 schedule\n", "")


def test_import_of_a_number_that_is_taken_is_refused(data_dir: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["user", "add", "1001", "--data-dir", str(data_dir)]).exit_code == 0
    source = tmp_path / "ivr.toml"
    source.write_text('[[menu]]\nname = "main"\nnumber = "1001"\ngreeting = "ivr-welcome"\n')
    assert _pbx(data_dir, "import", str(source)) == (
        1,
        "",
        "pbx: error: number 1001 is already taken by user 1001\n",
    )
    source.write_text('[[menu]]\nname = "main"\nnumber = "*97"\ngreeting = "ivr-welcome"\n')
    assert _pbx(data_dir, "import", str(source)) == (
        1,
        "",
        "pbx: error: number *97 is already taken by feature code *97 (own mailbox)\n",
    )
    assert _stored(data_dir) == ""
