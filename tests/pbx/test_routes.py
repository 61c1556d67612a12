"""Outbound routes: the pure plan (tables) and the store (migration 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.app import app
from pbx.errors import AlreadyExistsError, ConfigError, NotFoundError
from pbx.store import Route, Store, Trunk
from pbx.store.routes import Attempt, check_route, plan_outbound

NATIONAL = Route("national", ("_0XXXXXXXXX",), ("prov-a", "prov-b"), strip=1, prepend="+33")
INTL = Route("intl", ("_00.",), ("prov-b",), strip=2, prepend="+", caller_id="+33100000000")
ANY0 = Route("any0", ("_0.",), ("prov-c",), position=3)
EMERGENCY = Route("emergency", ("112", "15", "17", "18"), ("prov-e",), emergency=True)
CATCH_ALL = Route("catchall", ("_X.",), ("prov-a", "prov-e"), position=9)
ROUTES = [CATCH_ALL, ANY0, NATIONAL, INTL, EMERGENCY]

PLANS = [
    (
        "0123456789",
        [
            ("prov-a", "+33123456789", None, "national"),
            ("prov-b", "+33123456789", None, "national"),
            ("prov-c", "0123456789", None, "any0"),
            ("prov-e", "0123456789", None, "catchall"),  # prov-a already planned
        ],
    ),
    (
        "0044123",
        [
            ("prov-b", "+44123", "+33100000000", "intl"),
            ("prov-c", "0044123", None, "any0"),
            ("prov-a", "0044123", None, "catchall"),
            ("prov-e", "0044123", None, "catchall"),
        ],
    ),
    (
        "112",
        [("prov-e", "112", None, "emergency"), ("prov-a", "112", None, "catchall")],
    ),
    ("*99", []),
    ("", []),
]


@pytest.mark.parametrize(("number", "expected"), PLANS)
def test_plan_outbound(number: str, expected: list[tuple[str, str, str | None, str]]) -> None:
    assert plan_outbound(number, ROUTES) == [Attempt(*e) for e in expected]


def test_emergency_route_comes_first_even_when_less_specific() -> None:
    routes = [
        Route("local", ("1122",), ("a",)),
        Route("sos", ("_11.",), ("e",), emergency=True),
    ]
    assert [a.trunk for a in plan_outbound("1122", routes)] == ["e", "a"]


def test_strip_everything_plans_nothing() -> None:
    assert plan_outbound("12", [Route("r", ("_XX",), ("a",), strip=5)]) == []


BAD_ROUTES = [
    (Route("r", (), ("a",)), "route r: give at least one dial pattern"),
    (Route("r", ("_0[",), ("a",)), "dial pattern '_0[': '[' without ']'"),
    (Route("r", ("_0X",), ()), "route r: give at least one trunk"),
    (Route("r", ("_0X",), ("a", "a")), "route r: a trunk is named twice"),
    (Route("r", ("_0X",), ("a",), strip=-1), "route r: --strip must be 0 or more"),
    (Route("r", ("_0X",), ("a",), prepend="9a"), "route r: --prepend '9a' is not digits"),
    (Route("a b", ("_0X",), ("a",)), "route name 'a b' has blanks"),
    (Route("", ("_0X",), ("a",)), "route name '': 1 to 64 printable characters"),
]


@pytest.mark.parametrize(("route", "message"), BAD_ROUTES)
def test_check_route(route: Route, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_route(route)
    assert str(info.value) == message


async def test_store_add_list_delete(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "pbx.db") as store:
        for name in ("prov-a", "prov-b", "prov-e"):
            await store.trunks.add(Trunk(name, "127.0.0.1"))
        assert await store.routes.all() == []
        national = await store.routes.add(NATIONAL)
        intl = await store.routes.add(INTL)
        sos = await store.routes.add(EMERGENCY)
        assert (national.position, intl.position, sos.position) == (1, 2, 3)
        assert await store.routes.all() == [sos, national, intl]
        with pytest.raises(AlreadyExistsError, match="route intl exists already"):
            await store.routes.add(INTL)
        assert [a.trunk for a in await store.routes.plan("0123456789")] == ["prov-a", "prov-b"]
        await store.routes.delete("intl")
        with pytest.raises(NotFoundError, match="no route 'intl'"):
            await store.routes.delete("intl")
        assert [r.name for r in await store.routes.all()] == ["emergency", "national"]


async def test_store_refuses_unknown_trunk_names(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "a.db") as store:
        assert await store.routes.known_trunks() == set()
        with pytest.raises(NotFoundError, match=r"no trunk 'prov-a' \(see pbx trunk list\)"):
            await store.routes.add(NATIONAL)
        await store.trunks.add(Trunk("prov-a", "127.0.0.1"))
        assert await store.routes.known_trunks() == {"prov-a"}
        with pytest.raises(NotFoundError, match=r"no trunk 'prov-b' \(see pbx trunk list\)"):
            await store.routes.add(NATIONAL)
        assert await store.routes.all() == []
        await store.routes.add(Route("ok", ("_0X.",), ("prov-a",)))


# -- pbx route add|list|del ------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    path = tmp_path / "data"
    assert runner.invoke(app, ["init", "--data-dir", str(path)]).exit_code == 0
    for name in ("a", "b", "e"):
        added = runner.invoke(
            app, ["trunk", "add", name, "--host", "127.0.0.1", "--data-dir", str(path)]
        )
        assert added.exit_code == 0, added.stderr
    return str(path)


def pbx(*args: str) -> Result:
    return runner.invoke(app, list(args))


def one_error(result: Result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    return line


def test_cli_route_add_list_del(data_dir: str) -> None:
    d = ("--data-dir", data_dir)
    assert pbx("route", "list", *d).stdout == "no outbound routes\n"
    out = pbx("route", "add", "natl", "-p", "_0XXXXXXXXX", "-t", "a,b", "--strip", "1",
              "--prepend", "+33", *d)  # fmt: skip
    assert out.exit_code == 0, out.stderr
    assert out.stdout.splitlines()[0] == "added route natl: _0XXXXXXXXX -> a, b"
    assert pbx("route", "add", "sos", "-p", "112", "-p", "15", "-t", "e", "--emergency", *d)
    listing = pbx("route", "list", *d).stdout.splitlines()
    assert [line.split()[0] for line in listing] == ["NAME", "sos", "natl"]
    assert listing[2].split() == ["natl", "_0XXXXXXXXX", "1", "+33", "-", "a,b", "no"]
    assert pbx("route", "del", "natl", *d).stdout == "deleted route natl\n"
    assert one_error(pbx("route", "del", "natl", *d)) == "pbx: error: no route 'natl'"


BAD_CLI = [
    (("-p", "_0[1", "-t", "a"), "pbx: error: dial pattern '_0[1': '[' without ']'"),
    (("-p", "0X", "-t", "a"), "pbx: error: dial pattern '0X': 'X' is not a digit, * # or + "
     "(start a pattern with '_', a prefix with 'prefix:')"),
    (("-p", "_0X", "-t", "a", "--prepend", "x"),
     "pbx: error: route r: --prepend 'x' is not digits"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "line"), BAD_CLI)
def test_cli_route_errors_are_one_line(data_dir: str, args: tuple[str, ...], line: str) -> None:
    assert one_error(pbx("route", "add", "r", *args, "--data-dir", data_dir)) == line


def test_cli_route_add_twice(data_dir: str) -> None:
    args = ("route", "add", "r", "-p", "_0X", "-t", "a", "--data-dir", data_dir)
    assert pbx(*args).exit_code == 0
    assert one_error(pbx(*args)) == "pbx: error: route r exists already"
