"""Inbound DIDs: the target syntax, the store (migration 11) and `pbx did add|list|del`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.app import app
from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError
from pbx.store import RingGroup, Store, Trunk
from pbx.store.dids import Target, check_did

PASSWORD = "Xk3-secret-pass"

MENUS = """
[[menu]]
name = "main"
number = "800"
greeting = "hello"

[[menu]]
name = "sales"
greeting = "sales"

[[schedule]]
name = "office"
number = "700"
open_menu = "main"
closed_menu = "sales"
"""


# -- the syntax -------------------------------------------------------------------------

GOOD_TARGETS = [
    ("ext:1001", Target("ext", "1001")),
    ("group:600", Target("group", "600")),
    ("ivr:main", Target("ivr", "main")),
    ("ivr:800", Target("ivr", "800")),
    ("conf:8000", Target("conf", "8000")),
    ("vm:1001", Target("vm", "1001")),
    ("trunk:site-b/+33123456789", Target("trunk", "site-b", "+33123456789")),
    ("trunk:prov/*97#", Target("trunk", "prov", "*97#")),
]


@pytest.mark.parametrize(("text", "target"), GOOD_TARGETS)
def test_target_parse_and_str_round_trip(text: str, target: Target) -> None:
    assert Target.parse(text) == target
    assert str(target) == text


USAGE = "use ext:USER, group:NUMBER, ivr:MENU, conf:NUMBER, vm:BOX, trunk:NAME/NUMBER or queue:NAME"
BAD_TARGETS = [
    ("1001", f"target '1001': {USAGE}"),
    ("", f"target '': {USAGE}"),
    ("queues:sales", f"target 'queues:sales': {USAGE}"),
    ("EXT:1001", f"target 'EXT:1001': {USAGE}"),
    ("ext:", "target 'ext:': '' is not a valid ext name or number"),
    ("ext:10 01", "target 'ext:10 01': '10 01' is not a valid ext name or number"),
    ("vm:../etc", "target 'vm:../etc': '../etc' is not a valid vm name or number"),
    ("trunk:prov", "target 'trunk:prov': use trunk:NAME/NUMBER (NUMBER: digits, + * #)"),
    ("trunk:prov/", "target 'trunk:prov/': use trunk:NAME/NUMBER (NUMBER: digits, + * #)"),
    ("trunk:/123", "target 'trunk:/123': use trunk:NAME/NUMBER (NUMBER: digits, + * #)"),
    ("trunk:p/12a", "target 'trunk:p/12a': use trunk:NAME/NUMBER (NUMBER: digits, + * #)"),
    ("ext:" + "1" * 200, f"target 'ext:{'1' * 200}': {USAGE}"),
]


@pytest.mark.parametrize(("text", "message"), BAD_TARGETS)
def test_target_parse_refuses_with_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Target.parse(text)
    assert str(caught.value) == message


@pytest.mark.parametrize("number", ["5551234", "+4930123456", "0", "1" * 32])
def test_check_did_accepts_digits_with_an_optional_plus(number: str) -> None:
    assert check_did(number) == number


@pytest.mark.parametrize(
    "number", ["", "+", "++1", "12a", "1 2", "1-2", "*97", "1" * 33, "٣٣", "+33 1"]
)
def test_check_did_refuses_anything_else(number: str) -> None:
    with pytest.raises(ConfigError, match="1 to 32 digits with an optional leading"):
        check_did(number)


# -- the store ----------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pbx.sqlite3", clock=lambda: 1000.0)
    await s.settings.set_default("realm", "aiopbx")
    await s.users.add("1001", PASSWORD, "aiopbx")
    await s.dialplan.add_ring_group(RingGroup("600", ("1001",)))
    await s.conferences.add("8000")
    await s.trunks.add(Trunk("prov", "127.0.0.1"))
    await s.ivr.put(MENUS, ["800", "700"])
    try:
        yield s
    finally:
        await s.close()


async def test_store_add_get_list_delete(store: Store) -> None:
    for number, target in [
        ("+33100000001", "ext:1001"),
        ("+33100000002", "group:600"),
        ("+33100000003", "ivr:main"),
        ("+33100000004", "ivr:700"),
        ("+33100000005", "conf:8000"),
        ("+33100000006", "vm:1001"),
        ("+33100000007", "trunk:prov/0123456789"),
        ("1001", "ext:1001"),  # DIDs are their own namespace
    ]:
        added = await store.dids.add(number, target)
        assert (added.number, added.target, added.created) == (number, target, 1000.0)
    got = await store.dids.get("+33100000003")
    assert got is not None and got.target == "ivr:main"
    assert await store.dids.get("33100000003") is None  # no normalisation
    assert [d.number for d in await store.dids.all()] == ["+33100000001", "+33100000002",
        "+33100000003", "+33100000004", "+33100000005", "+33100000006", "+33100000007",
        "1001"]  # fmt: skip
    await store.dids.delete("+33100000001")
    assert await store.dids.get("+33100000001") is None
    with pytest.raises(NotFoundError, match=r"^no DID '\+33100000001'$"):
        await store.dids.delete("+33100000001")


MISSING = [
    ("ext:1002", "no extension '1002'"),
    ("vm:1002", "no mailbox (an extension's) '1002'"),
    ("group:601", "no ring group '601'"),
    ("conf:8001", "no conference room '8001'"),
    ("trunk:nope/123", "no trunk 'nope'"),
    ("ivr:sales", "no IVR menu or schedule named or numbered 'sales' with a number"),
    ("ivr:801", "no IVR menu or schedule named or numbered '801' with a number"),
]


@pytest.mark.parametrize(("target", "message"), MISSING)
async def test_store_refuses_targets_that_do_not_exist(
    store: Store, target: str, message: str
) -> None:
    with pytest.raises(NotFoundError) as caught:
        await store.dids.add("5551234", target)
    assert str(caught.value).startswith(message)
    assert await store.dids.all() == []


async def test_store_refuses_a_duplicate_and_bad_input(store: Store) -> None:
    await store.dids.add("5551234", "ext:1001")
    with pytest.raises(AlreadyExistsError, match=r"^DID 5551234 already exists$"):
        await store.dids.add("5551234", "group:600")
    with pytest.raises(ConfigError):
        await store.dids.add("555-1234", "ext:1001")
    with pytest.raises(ConfigError):
        await store.dids.add("5551235", "extension:1001")


async def test_ivr_number_follows_the_document(store: Store) -> None:
    assert await store.dids.ivr_number("main") == "800"
    assert await store.dids.ivr_number("800") == "800"
    assert await store.dids.ivr_number("office") == "700"
    assert await store.dids.ivr_number("sales") is None  # no number: unreachable by call
    await store.ivr.put(MENUS.replace('number = "800"', 'number = "810"'), ["810", "700"])
    assert await store.dids.ivr_number("main") == "810"
    await store.ivr.clear()
    assert await store.dids.ivr_number("main") is None


# -- pbx did add|list|del ----------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    path = str(tmp_path / "data")
    for args in (
        ["init"],
        ["user", "add", "1001", "--password", PASSWORD],
        ["trunk", "add", "prov", "--host", "127.0.0.1"],
    ):
        done = runner.invoke(app, [*args, "--data-dir", path])
        assert done.exit_code == 0, done.stderr
    return path


def pbx(*args: str) -> Result:
    return runner.invoke(app, list(args))


def one_error(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    return line


def test_cli_did_add_list_del(data_dir: str) -> None:
    d = ("--data-dir", data_dir)
    assert pbx("did", "list", *d).stdout == "no DIDs\n"
    out = pbx("did", "add", "+33100000001", "--to", "ext:1001", *d)
    assert (out.exit_code, out.stdout) == (0, "added DID +33100000001 -> ext:1001\n")
    out = pbx("did", "add", "0100000002", "--to", "trunk:prov/+4930123", *d)
    assert out.exit_code == 0, out.stderr
    listing = pbx("did", "list", *d).stdout.splitlines()
    assert listing[0].split() == ["DID", "TARGET", "ADDED"]
    assert [line.split()[:2] for line in listing[1:]] == [
        ["+33100000001", "ext:1001"],
        ["0100000002", "trunk:prov/+4930123"],
    ]
    assert pbx("did", "del", "0100000002", *d).stdout == "deleted DID 0100000002\n"
    assert len(pbx("did", "list", *d).stdout.splitlines()) == 2


BAD_CLI = [
    (("add", "12a", "--to", "ext:1001"), "pbx: error: DID '12a': give 1 to 32 digits with an "
     "optional leading + (matched exactly as the provider sends it; nothing is rewritten)"),
    (("add", "123", "--to", "1001"), f"pbx: error: target '1001': {USAGE}"),
    (("add", "123", "--to", "ext:1009"), "pbx: error: no extension '1009'"),
    (("add", "123", "--to", "trunk:other/1"), "pbx: error: no trunk 'other'"),
    (("add", "123", "--to", "group:600"), "pbx: error: no ring group '600'"),
    (("add", "123", "--to", "conf:8000"), "pbx: error: no conference room '8000'"),
    (("add", "123", "--to", "ivr:main"), "pbx: error: no IVR menu or schedule named or "
     "numbered 'main' with a number (calls reach a menu by its number: give it one in the "
     "IVR document)"),
    (("del", "999"), "pbx: error: no DID '999'"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "line"), BAD_CLI)
def test_cli_did_errors_are_one_line(data_dir: str, args: tuple[str, ...], line: str) -> None:
    assert one_error(pbx("did", *args, "--data-dir", data_dir)) == line


def test_cli_did_add_twice_and_without_a_database(data_dir: str, tmp_path: Path) -> None:
    args = ("did", "add", "123", "--to", "vm:1001", "--data-dir", data_dir)
    assert pbx(*args).exit_code == 0
    assert one_error(pbx(*args)) == "pbx: error: DID 123 already exists"
    nowhere = str(tmp_path / "nowhere")
    assert one_error(pbx("did", "list", "--data-dir", nowhere)).startswith(
        "pbx: error: no database in"
    )
