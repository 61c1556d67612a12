"""ivr.menu: TOML round trips, one line per configuration mistake, time conditions."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from ivr.menu import (
    Action,
    HoursRule,
    IvrConfigError,
    Menu,
    Schedule,
    menu_for_number,
    parse_toml,
    to_toml,
)
from pbx.errors import PbxError

FULL = """
[[menu]]
name = "main"
number = "800"
greeting = "main-greeting"
timeout = 7
invalid_prompt = "bad-key"
timeout_prompt = "no-key"
retries = 2
fallback = "voicemail:1001"
dial_by_extension = true
extension_digits = 3

[menu.options]
"1" = "extension:1001"
"2" = "menu:sales"
"9" = "voicemail:1001"
"*" = "repeat"
"#" = "dial_by_extension"
"0" = "hangup"

[[menu]]
name = "sales"
greeting = "sales-greeting"
[menu.options]
"1" = "extension:600"

[[schedule]]
name = "office"
number = "+3222000700"
open_menu = "main"
closed_menu = "sales"
holidays = [2026-12-25, 2027-01-01]
[[schedule.hours]]
days = ["mon", "tue", "wed", "thu", "fri"]
start = 09:00:00
end = 17:30:00
[[schedule.hours]]
days = ["Sat"]
start = 10:00:00
end = 12:00:00
"""

MAIN = Menu(
    name="main",
    number="800",
    greeting="main-greeting",
    options={
        "1": Action("extension", "1001"),
        "2": Action("menu", "sales"),
        "9": Action("voicemail", "1001"),
        "*": Action("repeat"),
        "#": Action("dial_by_extension"),
        "0": Action("hangup"),
    },
    timeout=7.0,
    invalid_prompt="bad-key",
    timeout_prompt="no-key",
    retries=2,
    fallback=Action("voicemail", "1001"),
    dial_by_extension=True,
    extension_digits=3,
)
SALES = Menu("sales", None, "sales-greeting", {"1": Action("extension", "600")})
OFFICE = Schedule(
    name="office",
    number="+3222000700",
    rules=(
        HoursRule(frozenset({0, 1, 2, 3, 4}), time(9), time(17, 30)),
        HoursRule(frozenset({5}), time(10), time(12)),
    ),
    holidays=(date(2026, 12, 25), date(2027, 1, 1)),
    open_menu="main",
    closed_menu="sales",
)


def test_parse_full_file() -> None:
    assert parse_toml(FULL) == ((MAIN, SALES), (OFFICE,))


@pytest.mark.parametrize(
    ("menus", "schedules"),
    [
        ((), ()),
        ((SALES,), ()),
        ((MAIN, SALES), (OFFICE,)),
        ((Menu("empty", "1", "hello", timeout=0.25, retries=0),), ()),
        (
            (SALES,),
            (
                Schedule(
                    "night",
                    None,
                    (HoursRule(frozenset({6}), time(22), time(6)),),
                    (),
                    "sales",
                    "sales",
                ),
            ),
        ),
    ],
)
def test_round_trip(menus: tuple[Menu, ...], schedules: tuple[Schedule, ...]) -> None:
    text = to_toml(menus, schedules)
    assert parse_toml(text) == (menus, schedules)
    assert to_toml(*parse_toml(text)) == text


def test_to_toml_writes_the_documented_form() -> None:
    assert to_toml((SALES,), ()) == (
        "[[menu]]\n"
        'name = "sales"\n'
        'greeting = "sales-greeting"\n'
        "timeout = 5.0\n"
        'invalid_prompt = "ivr-invalid"\n'
        'timeout_prompt = "ivr-timeout"\n'
        "retries = 3\n"
        'fallback = "hangup"\n'
        "dial_by_extension = false\n"
        "extension_digits = 4\n"
        "\n"
        "[menu.options]\n"
        '"1" = "extension:600"\n'
    )
    assert to_toml((), ()) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("extension:1001", Action("extension", "1001")),
        ("extension:+3222000700", Action("extension", "+3222000700")),
        ("menu:sales", Action("menu", "sales")),
        ("voicemail: 1001", Action("voicemail", "1001")),
        ("repeat", Action("repeat")),
        ("hangup", Action("hangup")),
        ("dial_by_extension", Action("dial_by_extension")),
    ],
)
def test_action_parse_and_str(text: str, expected: Action) -> None:
    assert Action.parse(text) == expected
    assert Action.parse(str(expected)) == expected


def _menu(options: str = "", **fields: str) -> str:
    body = {"name": '"m"', "greeting": '"hello"', **fields}
    lines = [f"{k} = {v}" for k, v in body.items() if v != "-"]
    return "[[menu]]\n" + "\n".join(lines) + "\n[menu.options]\n" + options + "\n"


def _schedule(hours: str = "", **fields: str) -> str:
    body = {"name": '"s"', "open_menu": '"m"', "closed_menu": '"m"', **fields}
    lines = [f"{k} = {v}" for k, v in body.items() if v != "-"]
    return _menu() + "[[schedule]]\n" + "\n".join(lines) + "\n" + hours


HOURS = '[[schedule.hours]]\ndays = ["mon"]\nstart = 09:00:00\nend = 17:00:00\n'

ERRORS = [
    ("menu = 1", "'menu' must be an array of tables ([[menu]])"),
    ("[x]", "unknown table 'x' (use [[menu]] and [[schedule]])"),
    (_menu(greting='"a"'), "menu 'm': unknown field 'greting'"),
    (_menu(name="-"), "menu #1: name is missing"),
    (
        _menu(name='"a b"'),
        "menu 'a b': name 'a b' is not a valid name (letters, digits, '.', '_', '-')",
    ),
    (_menu(greeting="-"), "menu 'm': greeting is missing"),
    (
        _menu(greeting='"Main Greeting"'),
        "menu 'm': greeting 'Main Greeting' is not a prompt name (1-64 of a-z, 0-9, '-', '_')",
    ),
    (
        _menu(invalid_prompt='"../x"'),
        "menu 'm': invalid_prompt '../x' is not a prompt name (1-64 of a-z, 0-9, '-', '_')",
    ),
    (
        _menu(timeout_prompt="3"),
        "menu 'm': timeout_prompt 3 is not a prompt name (1-64 of a-z, 0-9, '-', '_')",
    ),
    (_menu(number="800"), "menu 'm': number 800 is not a valid number (use a string)"),
    (_menu(number='"8 00"'), "menu 'm': number '8 00' is not a valid number (use a string)"),
    (_menu('"A" = "hangup"'), "menu 'm': options key 'A' is not a DTMF key (0-9, *, #)"),
    (_menu('"12" = "hangup"'), "menu 'm': options key '12' is not a DTMF key (0-9, *, #)"),
    (
        _menu('"1" = "ring:1001"'),
        "menu 'm': options.'1': unknown action 'ring' (choose "
        "extension, menu, voicemail, repeat, hangup, dial_by_extension)",
    ),
    (
        _menu('"1" = "extension"'),
        "menu 'm': options.'1': action 'extension' needs a target, like 'extension:NAME'",
    ),
    (
        _menu('"1" = "extension:"'),
        "menu 'm': options.'1': action 'extension' needs a target, like 'extension:NAME'",
    ),
    (_menu('"1" = "hangup:now"'), "menu 'm': options.'1': action 'hangup' takes no target"),
    (
        _menu('"1" = "voicemail:a b"'),
        "menu 'm': options.'1': action 'voicemail' has a bad target 'a b'",
    ),
    (_menu('"1" = 1001'), "menu 'm': options.'1' must be a string like 'extension:1001'"),
    (_menu('"1" = "menu:nowhere"'), "menu 'm': options.'1' names an unknown menu 'nowhere'"),
    (_menu(fallback='"menu:gone"'), "menu 'm': fallback names an unknown menu 'gone'"),
    (_menu(fallback='"repeat"'), "menu 'm': fallback cannot be 'repeat'"),
    (_menu(fallback='"dial_by_extension"'), "menu 'm': fallback cannot be 'dial_by_extension'"),
    (
        _menu(fallback='"jump"'),
        "menu 'm': fallback: unknown action 'jump' (choose extension, "
        "menu, voicemail, repeat, hangup, dial_by_extension)",
    ),
    (_menu(timeout="-1.5"), "menu 'm': timeout -1.5 must be more than 0 and at most 300"),
    (_menu(timeout="0"), "menu 'm': timeout 0 must be more than 0 and at most 300"),
    (_menu(timeout="nan"), "menu 'm': timeout nan must be more than 0 and at most 300"),
    (_menu(timeout='"5"'), "menu 'm': timeout '5' must be a number of seconds"),
    (_menu(timeout="true"), "menu 'm': timeout True must be a number of seconds"),
    (_menu(retries="-1"), "menu 'm': retries -1 must be a whole number 0-20"),
    (_menu(retries="2.5"), "menu 'm': retries 2.5 must be a whole number 0-20"),
    (_menu(extension_digits="0"), "menu 'm': extension_digits 0 must be a whole number 1-16"),
    (_menu(dial_by_extension='"yes"'), "menu 'm': dial_by_extension must be true or false"),
    (
        '[[menu]]\nname = "m"\ngreeting = "g"\noptions = 1\n',
        "menu 'm': options must be a table ([menu.options])",
    ),
    (_menu() + _menu(), "menu 'm' is defined twice"),
    (
        _menu(number='"800"') + _menu(name='"n"', number='"800"'),
        "menu 'n': number '800' is already used by menu 'm'",
    ),
    (_schedule(number='"800"', x="1"), "schedule 's': unknown field 'x'"),
    (
        _menu(number='"800"') + '[[schedule]]\nname = "s"\nnumber = "800"\nopen_menu = "m"\n'
        'closed_menu = "m"\n',
        "schedule 's': number '800' is already used by menu 'm'",
    ),
    (_schedule(open_menu='"x"'), "schedule 's': open_menu names an unknown menu 'x'"),
    (_schedule(closed_menu="-"), "schedule 's': closed_menu is missing"),
    (
        _schedule() + '[[schedule]]\nname = "s"\nopen_menu = "m"\nclosed_menu = "m"\n',
        "schedule 's' is defined twice",
    ),
    (
        _schedule(holidays='"2026-12-25"'),
        "schedule 's': holidays must be a list of dates like [2026-12-25]",
    ),
    (
        _schedule(holidays="[2026-12-25T00:00:00]"),
        "schedule 's': holiday datetime.datetime(2026, "
        "12, 25, 0, 0) must be a TOML date like 2026-12-25",
    ),
    (
        _schedule("hours = 1\n"),
        "schedule 's': hours must be an array of tables ([[schedule.hours]])",
    ),
    (
        _schedule(HOURS.replace("mon", "monday")),
        "schedule 's': hours #1: day 'monday' is not one of mon, tue, wed, thu, fri, sat, sun",
    ),
    (
        _schedule(HOURS.replace('["mon"]', "[]")),
        "schedule 's': hours #1: days must be a non-empty list like ['mon', 'tue']",
    ),
    (
        _schedule(HOURS.replace("09:00:00", '"9am"')),
        "schedule 's': hours #1: start '9am' must be a TOML time like 09:00:00",
    ),
    (
        _schedule(HOURS.replace("17:00:00", "09:00:00")),
        "schedule 's': hours #1: start and end are both 09:00:00",
    ),
    (_schedule(HOURS + "open = true\n"), "schedule 's': hours #1: unknown field 'open'"),
    (
        "[[menu]\n",
        "not valid TOML: Expected ']]' at the end of an array declaration (at line 1, column 7)",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_are_one_line_naming_place_and_field(text: str, message: str) -> None:
    with pytest.raises(IvrConfigError) as info:
        parse_toml(text)
    assert str(info.value) == message
    assert isinstance(info.value, PbxError)


# 2026-03-02 is a Monday.
TIMES = [
    (datetime(2026, 3, 2, 8, 59, 59), "closed"),
    (datetime(2026, 3, 2, 9, 0), "open"),
    (datetime(2026, 3, 6, 17, 29, 59), "open"),  # Friday
    (datetime(2026, 3, 6, 17, 30), "closed"),  # end excluded
    (datetime(2026, 3, 7, 9, 0), "closed"),  # Saturday morning before 10
    (datetime(2026, 3, 7, 11, 0), "open"),  # Saturday rule
    (datetime(2026, 3, 8, 11, 0), "closed"),  # Sunday
    (datetime(2026, 12, 25, 11, 0), "closed"),  # Friday, but a holiday
    (datetime(2026, 12, 24, 11, 0), "open"),
    (datetime(2026, 3, 4, 3, 0), "night"),  # Tuesday 22:00 - Wednesday 06:00
    (datetime(2026, 3, 4, 6, 0), "closed"),
    (datetime(2026, 3, 3, 22, 0), "night"),
    (datetime(2026, 3, 3, 21, 59), "closed"),
    (datetime(2026, 3, 2, 3, 0), "closed"),  # Monday early: Sunday has no night rule
]


@pytest.mark.parametrize(("now", "expected"), TIMES)
def test_schedule_menu_at(now: datetime, expected: str) -> None:
    schedule = Schedule(
        name="office",
        number=None,
        rules=(
            HoursRule(frozenset(range(5)), time(9), time(17, 30)),
            HoursRule(frozenset({5}), time(10), time(12)),
            HoursRule(frozenset({1}), time(22), time(6)),
        ),
        holidays=(date(2026, 12, 25),),
        open_menu="open",
        closed_menu="closed",
    )
    opening = {"night": "open"}.get(expected, expected)
    assert schedule.menu_at(now) == opening
    night = schedule.rules[2].covers(now)
    assert night == (expected == "night")


def test_midnight_end_and_menu_for_number() -> None:
    late = HoursRule(frozenset({4}), time(18), time(0))
    assert late.covers(datetime(2026, 3, 6, 23, 59))
    assert not late.covers(datetime(2026, 3, 7, 0, 0))
    menus, schedules = parse_toml(FULL)
    assert menu_for_number("800", menus, schedules, datetime(2026, 3, 8)) == MAIN
    assert menu_for_number("+3222000700", menus, schedules, datetime(2026, 3, 2, 10)) == MAIN
    assert menu_for_number("+3222000700", menus, schedules, datetime(2026, 3, 2, 20)) == SALES
    assert menu_for_number("801", menus, schedules, datetime(2026, 3, 2, 10)) is None
