"""Ring-group overflow (migration 12) and `trunk:NAME/NUMBER` targets in configuration:
ring groups, forwarding, IVR actions; `pbx trunk del` refuses while anything names it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from ivr.menu import Action, IvrConfigError, parse_toml, to_toml
from pbx.b2bua import B2bua
from pbx.errors import ConfigError, NotFoundError
from pbx.store import Forwarding, RingGroup, Route, Store, Trunk
from pbx.store.queues import Queue
from pbx.store.targets import (
    TrunkTarget,
    ivr_trunk_targets,
    mailbox_of,
    parse_trunk_target,
)

PASSWORD = "Aa-secret-xyz1"


# --- parsing (pure) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("trunk:site-b/2001", TrunkTarget("site-b", "2001")),
        ("trunk:prov.1/+33123456789", TrunkTarget("prov.1", "+33123456789")),
        ("trunk:p/*98#", TrunkTarget("p", "*98#")),
        ("1001", None),
        ("vm:1001", None),
        ("trunkx:a/1", None),
    ],
)
def test_parse_trunk_target(text: str, target: TrunkTarget | None) -> None:
    assert parse_trunk_target(text) == target
    if target is not None:
        assert str(target) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trunk:", "'trunk:' is not trunk:NAME/NUMBER"),
        ("trunk:site-b", "'trunk:site-b' is not trunk:NAME/NUMBER"),
        ("trunk:site-b/", "'trunk:site-b/' is not trunk:NAME/NUMBER"),
        ("trunk:/2001", "'trunk:/2001' is not trunk:NAME/NUMBER"),
        ("trunk:b/20a1", "'trunk:b/20a1': NUMBER must be 1 to 32 digits, '*' or '#' (a lead"),
        ("trunk:b/1+2", "'trunk:b/1+2': NUMBER must be"),
        ("trunk:b/+", "'trunk:b/+': NUMBER must be"),
        ("trunk:b/" + "1" * 33, "NUMBER must be 1 to 32 digits"),
        ("trunk:-b/1", "'trunk:-b/1': '-b' is not a trunk name"),
    ],
)
def test_bad_trunk_targets(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_trunk_target(text)


def test_mailbox_targets() -> None:
    assert mailbox_of("vm:1001") == "1001"
    assert mailbox_of("1001") is None
    with pytest.raises(ConfigError, match="'vm:' is not vm:BOX"):
        mailbox_of("vm:")


# --- the store -------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "pbx.sqlite3")
    try:
        await s.users.add("1001", PASSWORD, "aiopbx")
        await s.users.add("1002", PASSWORD, "aiopbx")
        await s.trunks.add(Trunk("site-b", "127.0.0.1", 5070))
        yield s
    finally:
        await s.close()


async def test_overflow_is_stored_changed_and_removed(store: Store) -> None:
    assert await store.schema_version() >= 12
    group = RingGroup("600", ("1001", "1002"), overflow="trunk:site-b/2001")
    await store.dialplan.add_ring_group(group)
    assert await store.dialplan.ring_group("600") == group
    await store.dialplan.add_ring_group(RingGroup("601", ("1002",), overflow="vm:1001"))
    await store.dialplan.add_ring_group(RingGroup("602", ("1002",), overflow="600"))
    assert await store.dialplan.overflowing_to("1001") == ["601"]

    changed = await store.dialplan.update_ring_group(
        "600", overflow="1002", members=("1002",), strategy="sequential", ring_seconds=5
    )
    assert changed == RingGroup("600", ("1002",), "sequential", 5, None, "1002")
    assert await store.dialplan.ring_group("600") == changed
    assert await store.dialplan.overflowing_to("1002") == ["600"]
    await store.dialplan.update_ring_group("600", overflow=None)
    assert (await store.dialplan.ring_groups())[0].overflow is None


@pytest.mark.parametrize(
    ("overflow", "error", "message"),
    [
        ("trunk:nope/2001", NotFoundError, "trunk:nope/2001: no trunk 'nope' (see pbx trunk list)"),
        ("trunk:site-b/x", ConfigError, "'trunk:site-b/x': NUMBER must be"),
        ("trunk:site-b", ConfigError, "'trunk:site-b' is not trunk:NAME/NUMBER"),
        ("vm:1009", NotFoundError, "vm:1009: no mailbox '1009' (no such user)"),
        ("1009", NotFoundError, "overflow '1009': no extension or ring group 1009"),
        ("600", ConfigError, "ring group 600 cannot overflow to itself"),
        ("*97", ConfigError, "overflow '*97' is feature code *97 (own mailbox): give an"),
    ],
)
async def test_bad_overflow_is_refused(
    store: Store, overflow: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        await store.dialplan.add_ring_group(RingGroup("600", ("1001",), overflow=overflow))
    assert str(info.value).startswith(message)
    assert await store.dialplan.ring_group("600") is None  # nothing half-written
    await store.dialplan.add_ring_group(RingGroup("600", ("1001",)))
    with pytest.raises(error):
        await store.dialplan.update_ring_group("600", overflow=overflow)
    assert await store.dialplan.ring_group("600") == RingGroup("600", ("1001",))


async def test_update_refuses_unknown_groups_and_fields(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no ring group '600'"):
        await store.dialplan.update_ring_group("600", overflow="1001")
    await store.dialplan.add_ring_group(RingGroup("600", ("1001",)))
    with pytest.raises(ConfigError, match="unknown ring group field"):
        await store.dialplan.update_ring_group("600", colour="red")
    with pytest.raises(ConfigError, match="at least one member"):
        await store.dialplan.update_ring_group("600", members=())


async def test_forwarding_accepts_checked_trunk_and_mailbox_targets(store: Store) -> None:
    forwarding = Forwarding("1001", always=None, busy="trunk:site-b/2001", no_answer="vm:1002")
    await store.dialplan.set_forwarding(forwarding)
    assert await store.dialplan.forwarding("1001") == forwarding
    assert await store.dialplan.forwarding_to("1002") == ["1001"]  # its mailbox
    with pytest.raises(NotFoundError, match="no trunk 'other'"):
        await store.dialplan.set_forwarding(Forwarding("1001", always="trunk:other/1"))
    with pytest.raises(ConfigError, match="is not trunk:NAME/NUMBER"):
        await store.dialplan.set_forwarding(Forwarding("1001", busy="trunk:site-b/"))
    with pytest.raises(NotFoundError, match="no mailbox '77'"):
        await store.dialplan.set_forwarding(Forwarding("1001", no_answer="vm:77"))
    assert await store.dialplan.forwarding("1001") == forwarding


IVR = """\
[[menu]]
name = "main"
number = "800"
greeting = "main-greeting"
fallback = "extension:trunk:site-b/0"
[menu.options]
"1" = "trunk:site-b/2001"
"2" = "extension:1001"
"""


def test_ivr_actions_take_trunk_targets() -> None:
    assert Action.parse("trunk:site-b/2001") == Action("extension", "trunk:site-b/2001")
    assert Action.parse("extension:trunk:b/+44") == Action("extension", "trunk:b/+44")
    for bad in (
        "trunk:site-b",
        "extension:trunk:b/1x",
        "trunk:-b/1",
        "menu:trunk:b/1",
        "trunk:b/1+",
    ):
        with pytest.raises(IvrConfigError):
            Action.parse(bad)
    menus, schedules = parse_toml(IVR)
    assert parse_toml(to_toml(menus, schedules)) == (menus, schedules)
    assert ivr_trunk_targets(IVR) == [
        ("IVR menu 'main' key 1", TrunkTarget("site-b", "2001")),
        ("IVR menu 'main' fallback", TrunkTarget("site-b", "0")),
    ]
    assert ivr_trunk_targets("not toml [") == []


async def test_ivr_put_checks_trunks(store: Store) -> None:
    await store.ivr.put(IVR, ["800"])
    with pytest.raises(NotFoundError) as info:
        await store.ivr.put(IVR.replace("site-b/2001", "gone/2001"), ["800"])
    assert str(info.value) == (
        "IVR menu 'main' key 1: trunk:gone/2001: no trunk 'gone' (see pbx trunk list)"
    )
    assert await store.ivr.get() == IVR  # the old document stays


async def test_trunk_delete_refuses_while_named(store: Store) -> None:
    await store.trunks.add(Trunk("site-b2", "127.0.0.1"))  # a prefix of no other name
    await store.dialplan.add_ring_group(RingGroup("600", ("1001",), overflow="trunk:site-b/2001"))
    await store.dialplan.set_forwarding(Forwarding("1002", no_answer="trunk:site-b/7"))
    await store.ivr.put(IVR, ["800"])
    await store.routes.add(Route("out", ("_0.",), ("site-b2", "site-b")))
    await store.dids.add("+3310", "trunk:site-b/2001")
    await store.dids.add("+3311", "trunk:site-b2/2001")
    await store.queues.add(Queue("sales", "700", overflow="trunk:site-b/2002"))
    with pytest.raises(ConfigError) as info:
        await store.trunks.delete("site-b")
    assert str(info.value) == (
        "trunk 'site-b' is still used by overflow of ring group 600; forwarding of 1002;"
        " IVR menu 'main' key 1; IVR menu 'main' fallback; DID +3310; overflow of queue"
        " sales; outbound route out: change those first"
    )
    await store.queues.delete("sales")
    await store.dids.delete("+3310")
    await store.dids.delete("+3311")
    with pytest.raises(ConfigError, match="still used by outbound route out: change"):
        await store.trunks.delete("site-b2")
    await store.dialplan.update_ring_group("600", overflow=None)
    await store.dialplan.set_forwarding(Forwarding("1002"))
    await store.ivr.clear()
    await store.routes.delete("out")
    await store.trunks.delete("site-b")
    await store.trunks.delete("site-b2")
    assert await store.trunks.all() == []


# --- plan(): the group's overflow becomes its busy/no-answer forwarding -------------------


async def test_plan_follows_the_overflow(store: Store) -> None:
    await store.dialplan.add_ring_group(RingGroup("600", ("1001",), overflow="trunk:site-b/2001"))
    await store.dialplan.add_ring_group(RingGroup("601", ("1001",)))
    b2bua = B2bua.__new__(B2bua)  # plan() reads only these
    b2bua.store = store
    b2bua._users = lambda: {"1001", "1002"}
    b2bua._clock = lambda: 0.0
    b2bua.location = None  # type: ignore[assignment]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("pbx.b2bua.targets_for", lambda location, aor, now: [])
        plan = await b2bua.plan("600")
        assert plan is not None
        _, forwarding = plan
        assert forwarding == Forwarding(
            "600", busy="trunk:site-b/2001", no_answer="trunk:site-b/2001"
        )
        plan = await b2bua.plan("601")
        assert plan is not None and plan[1] == Forwarding("601")


# --- the CLI ---------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    async def fill() -> None:
        async with await Store.open(tmp_path / "pbx.sqlite3") as s:
            await s.settings.set_default("realm", "aiopbx")
            await s.users.add("1001", PASSWORD, "aiopbx")
            await s.users.add("1002", PASSWORD, "aiopbx")
            await s.trunks.add(Trunk("site-b", "127.0.0.1", 5070))

    asyncio.run(fill())
    return tmp_path


def _pbx(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_cli_ringgroup_overflow(data_dir: Path) -> None:
    code, out, _ = _pbx(
        data_dir, "ringgroup", "add", "600", "-m", "1001,1002", "--overflow", "trunk:site-b/2001"
    )
    assert (code, out.splitlines()) == (
        0,
        [
            "added ring group 600: 1001, 1002 (all)",
            "overflow when no member answers: trunk:site-b/2001",
        ],
    )
    code, out, _ = _pbx(data_dir, "ringgroup", "list")
    assert out.splitlines()[0].split() == [
        "NUMBER", "NAME", "STRATEGY", "RING", "(S)", "MEMBERS", "OVERFLOW"
    ]  # fmt: skip
    assert out.splitlines()[1].split() == ["600", "all", "20", "1001,1002", "trunk:site-b/2001"]
    code, out, _ = _pbx(data_dir, "ringgroup", "set", "600", "--overflow", "vm:1002", "-m", "1002")
    assert (code, out.strip()) == (0, "ring group 600: 1002 (all, 20 s), overflow vm:1002")
    code, out, _ = _pbx(data_dir, "ringgroup", "set", "600", "--no-overflow", "--ring-seconds", "9")
    assert (code, out.strip()) == (0, "ring group 600: 1002 (all, 9 s), overflow -")
    # a group deleted while another overflows to it is reported
    _pbx(data_dir, "ringgroup", "add", "601", "-m", "1001", "--overflow", "600")
    assert _pbx(data_dir, "did", "add", "+3360", "--to", "group:600")[0] == 0
    code, out, _ = _pbx(data_dir, "ringgroup", "del", "600")
    assert (code, out.splitlines()) == (
        0,
        [
            "deleted ring group 600",
            "still sending calls to 600 (now unknown): overflow of ring group 601; DID +3360",
        ],
    )
    assert _pbx(data_dir, "did", "del", "+3360")[0] == 0
    _pbx(data_dir, "ringgroup", "add", "600", "-m", "1002")
    # a user deleted while a group overflows to its mailbox is reported
    _pbx(data_dir, "ringgroup", "set", "600", "--overflow", "vm:1001")
    code, out, _ = _pbx(data_dir, "user", "del", "1001")
    assert code == 0 and "overflow of ring group 600" in out.splitlines()[-1]


def test_cli_forward_and_trunk_del(data_dir: Path) -> None:
    code, out, _ = _pbx(data_dir, "user", "forward", "1001", "--no-answer", "trunk:site-b/2001")
    assert code == 0 and "trunk:site-b/2001 after 20 s" in out
    code, _, err = _pbx(data_dir, "trunk", "del", "site-b")
    assert (code, err) == (
        1,
        "pbx: error: trunk 'site-b' is still used by forwarding of 1001: change those first\n",
    )
    assert _pbx(data_dir, "user", "forward", "1001", "--clear")[0] == 0
    assert _pbx(data_dir, "trunk", "del", "site-b")[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ringgroup", "add", "600", "-m", "1001", "--overflow", "trunk:x/1"), "no trunk 'x'"),
        (("ringgroup", "add", "600", "-m", "1001", "--overflow", "trunk:site-b/a"), "NUMBER"),
        (("ringgroup", "add", "600", "-m", "1001", "--overflow", "42"), "no extension or ring"),
        (("ringgroup", "set", "699", "--overflow", "1001"), "no ring group '699'"),
        (("ringgroup", "set", "699", "--overflow", "1001", "--no-overflow"), "not both"),
        (("ringgroup", "set", "699", "-m", "4242"), "no user '4242'"),
        (("user", "forward", "1001", "--busy", "trunk:nope/1"), "no trunk 'nope'"),
        (("user", "forward", "1001", "--always", "vm:4242"), "no mailbox '4242'"),
    ],
)
def test_cli_errors_are_one_line(data_dir: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = _pbx(data_dir, *args)
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith("pbx: error: ") and message in line


def test_cli_ivr_import_checks_trunks(data_dir: Path, tmp_path: Path) -> None:
    menu = tmp_path / "menu.toml"
    menu.write_text(IVR.replace("site-b/2001", "gone/2001"))
    code, _, err = _pbx(data_dir, "ivr", "import", str(menu))
    assert code == 1
    assert err == (
        "pbx: error: IVR menu 'main' key 1: trunk:gone/2001: no trunk 'gone' (see pbx trunk list)\n"
    )
    menu.write_text(IVR)
    code, _, err = _pbx(data_dir, "ivr", "import", str(menu))
    assert code == 0 and "trunk" not in err  # no "no extension" warning for trunk targets
    code, _, err = _pbx(data_dir, "trunk", "del", "site-b")
    assert code == 1 and "IVR menu 'main' key 1; IVR menu 'main' fallback" in err
