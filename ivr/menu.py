"""IVR menus and time conditions as data, with their TOML form.

A `Menu` plays a greeting prompt and maps each DTMF key to an `Action`; a
`Schedule` (time condition) picks one of two menus by office hours and
holidays. Both are reached by a number (a DID or an internal number). This
module is pure: it validates and converts, the runner (`ivr/runner.py`) plays.

The TOML file (`pbx ivr import` / `pbx ivr export`)::

    [[menu]]
    name = "main"                 # letters, digits, '.', '_', '-'
    number = "800"                # optional: the DID or internal number that reaches it
    greeting = "main-greeting"    # a prompt name (pbx prompt list)
    timeout = 5.0                 # seconds to wait for a key after the greeting
    invalid_prompt = "ivr-invalid"
    timeout_prompt = "ivr-timeout"
    retries = 3                   # invalid or silent attempts before the fallback
    fallback = "hangup"           # an action (not "repeat" or "dial_by_extension")
    dial_by_extension = true      # a digit with no option starts dialling an extension
    extension_digits = 4          # ... of this many digits

    [menu.options]                # key ("0"-"9", "*", "#") = action
    "1" = "extension:1001"        # dial an extension or ring group through the switch
    "3" = "trunk:site-b/2001"     # dial 2001 through trunk site-b (no outbound route)
    "4" = "queue:support"         # the ACD queue named support (its number)
    "2" = "menu:sales"            # go to another menu
    "9" = "voicemail:1001"        # leave a message in that mailbox
    "*" = "repeat"                # play the greeting again
    "#" = "dial_by_extension"     # collect an extension number and dial it
    "0" = "hangup"

    [[menu]]
    name = "sales"
    greeting = "sales-greeting"
    [menu.options]
    "1" = "extension:600"

    [[schedule]]
    name = "office"
    number = "700"
    open_menu = "main"
    closed_menu = "sales"
    holidays = [2026-12-25, 2027-01-01]   # TOML local dates: closed all day
    [[schedule.hours]]                    # open when any rule matches
    days = ["mon", "tue", "wed", "thu", "fri"]
    start = 09:00:00                      # TOML local times, end excluded;
    end = 17:30:00                        # end <= start runs past midnight

Only `name` and `greeting` of a menu are required; the others default as
shown in `Menu`. Every mistake raises `IvrConfigError` with one line naming the
menu (or schedule) and the field.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from pbx.api import ConfigError

DTMF_KEYS = "0123456789*#"
KINDS_WITH_TARGET = ("extension", "menu", "voicemail")
KINDS_WITHOUT_TARGET = ("repeat", "hangup", "dial_by_extension")
KINDS = KINDS_WITH_TARGET + KINDS_WITHOUT_TARGET
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_PROMPT_RE = re.compile(r"[a-z0-9_-]{1,64}")  # as ivr.prompts names its WAV files
_NUMBER_RE = re.compile(r"\+?[A-Za-z0-9_*#][A-Za-z0-9._*#-]{0,31}")
#: `trunk:NAME/NUMBER` (pbx.store.targets): NUMBER dialled through trunk NAME directly.
TRUNK_PREFIX = "trunk:"
_TRUNK_TARGET_RE = re.compile(r"trunk:[A-Za-z0-9][A-Za-z0-9_.-]{0,31}/\+?[0-9*#]{1,32}")
#: `queue:NAME` (pbx.store.targets): the ACD queue NAME, checked to exist when stored.
QUEUE_PREFIX = "queue:"
_QUEUE_TARGET_RE = re.compile(r"queue:[A-Za-z][A-Za-z0-9_.-]{0,31}")
_MENU_FIELDS = frozenset(
    {
        "name",
        "number",
        "greeting",
        "options",
        "timeout",
        "invalid_prompt",
        "timeout_prompt",
        "retries",
        "fallback",
        "dial_by_extension",
        "extension_digits",
    }
)
_SCHEDULE_FIELDS = frozenset({"name", "number", "hours", "holidays", "open_menu", "closed_menu"})
_RULE_FIELDS = frozenset({"days", "start", "end"})


class IvrConfigError(ConfigError):
    """An IVR configuration that cannot be used; the message is one line naming the place."""


@dataclass(frozen=True, slots=True)
class Action:
    """What a key press (or the fallback) does: `kind` and, for some kinds, a `target`.

    extension: dial `target` (an extension or ring group, or `trunk:NAME/NUMBER`: that
    number through that trunk; "trunk:NAME/NUMBER" alone is short for it; `queue:NAME`:
    the ACD queue's number, and "queue:NAME" alone is short for it) through the
    switch; menu: go to the menu named `target`; voicemail: leave a message in mailbox
    `target`; repeat: play the greeting again; hangup; dial_by_extension:
    collect an extension number and dial it.
    """

    kind: str
    target: str | None = None

    @classmethod
    def parse(cls, text: str) -> Action:
        """Read "kind" or "kind:target" (e.g. "extension:1001", "hangup").

        Raises:
            IvrConfigError: unknown kind, a missing or unexpected target, a bad target.
        """
        if text.strip().startswith((TRUNK_PREFIX, QUEUE_PREFIX)):
            text = f"extension:{text.strip()}"
        kind, sep, target = text.partition(":")
        action = cls(kind.strip(), target.strip() if sep else None)
        action.check()
        return action

    def check(self) -> None:
        """Raises: IvrConfigError when the kind is unknown or the target does not fit it."""
        if self.kind not in KINDS:
            raise IvrConfigError(f"unknown action {self.kind!r} (choose {', '.join(KINDS)})")
        if self.kind in KINDS_WITHOUT_TARGET:
            if self.target is not None:
                raise IvrConfigError(f"action {self.kind!r} takes no target")
            return
        if not self.target:
            raise IvrConfigError(f"action {self.kind!r} needs a target, like '{self.kind}:NAME'")
        if self.kind == "extension" and self.target.startswith(TRUNK_PREFIX):
            if _TRUNK_TARGET_RE.fullmatch(self.target) is None:
                raise IvrConfigError(
                    f"action {self.kind!r} has a bad target {self.target!r}"
                    " (trunk:NAME/NUMBER, NUMBER of digits, '*', '#', a leading '+')"
                )
            return
        if self.kind == "extension" and self.target.startswith(QUEUE_PREFIX):
            if _QUEUE_TARGET_RE.fullmatch(self.target) is None:
                raise IvrConfigError(
                    f"action {self.kind!r} has a bad target {self.target!r} (queue:NAME)"
                )
            return
        pattern = _NUMBER_RE if self.kind == "extension" else _NAME_RE
        if pattern.fullmatch(self.target) is None:
            raise IvrConfigError(f"action {self.kind!r} has a bad target {self.target!r}")

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target}"


@dataclass(frozen=True, slots=True)
class Menu:
    """A greeting and what each key does, with timeout/invalid handling and a fallback.

    `retries` invalid or silent attempts (each answered by `invalid_prompt` or
    `timeout_prompt`, then the greeting again) are allowed before `fallback`.
    With `dial_by_extension`, a digit that has no option starts collecting an
    extension of `extension_digits` digits, which is dialled.
    """

    name: str
    number: str | None
    greeting: str
    options: dict[str, Action] = field(default_factory=dict)
    timeout: float = 5.0
    invalid_prompt: str = "ivr-invalid"
    timeout_prompt: str = "ivr-timeout"
    retries: int = 3
    fallback: Action = Action("hangup")
    dial_by_extension: bool = False
    extension_digits: int = 4


@dataclass(frozen=True, slots=True)
class HoursRule:
    """Open on `days` (0 = Monday) from `start` up to (not including) `end`.

    When `end` <= `start` the span runs past midnight into the next day
    (22:00-06:00 on Friday covers Saturday morning; end 00:00 means midnight).
    """

    days: frozenset[int]
    start: time
    end: time

    def covers(self, now: datetime) -> bool:
        """True when the wall-clock time `now` falls in this rule."""
        clock = now.time().replace(tzinfo=None)
        if self.start < self.end:
            return now.weekday() in self.days and self.start <= clock < self.end
        yesterday = (now - timedelta(days=1)).weekday()
        return (now.weekday() in self.days and clock >= self.start) or (
            yesterday in self.days and clock < self.end
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """A time condition: `open_menu` during office hours, `closed_menu` otherwise."""

    name: str
    number: str | None
    rules: tuple[HoursRule, ...]
    holidays: tuple[date, ...]
    open_menu: str
    closed_menu: str

    def menu_at(self, now: datetime) -> str:
        """The menu name that answers at `now` (the office's local wall-clock time).

        A holiday is closed all day (the whole calendar date of `now`); otherwise the
        office is open when any rule covers `now`.
        """
        if now.date() in self.holidays:
            return self.closed_menu
        if any(rule.covers(now) for rule in self.rules):
            return self.open_menu
        return self.closed_menu


def menu_for_number(
    number: str, menus: Sequence[Menu], schedules: Sequence[Schedule], now: datetime
) -> Menu | None:
    """The menu that answers a call to `number` at `now`, or None when no IVR has it."""
    by_name = {m.name: m for m in menus}
    for menu in menus:
        if menu.number == number:
            return menu
    for schedule in schedules:
        if schedule.number == number:
            return by_name.get(schedule.menu_at(now))
    return None


# --- reading ----------------------------------------------------------------------------


def parse_toml(text: str) -> tuple[tuple[Menu, ...], tuple[Schedule, ...]]:
    """Read and validate an IVR configuration (see the module docstring for the format).

    Raises:
        IvrConfigError: invalid TOML or any bad value; one line naming menu and field.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IvrConfigError(f"not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"menu", "schedule"})
    if unknown:
        raise IvrConfigError(f"unknown table {unknown[0]!r} (use [[menu]] and [[schedule]])")
    menus = tuple(_menu(t, i) for i, t in enumerate(_tables(doc, "menu")))
    schedules = tuple(_schedule(t, i) for i, t in enumerate(_tables(doc, "schedule")))
    check(menus, schedules)
    return menus, schedules


def check(menus: Sequence[Menu], schedules: Sequence[Schedule]) -> None:
    """Check what spans menus: unique names and numbers, every named menu exists.

    Raises:
        IvrConfigError: a duplicate name or number, or a reference to an unknown menu.
    """
    names: set[str] = set()
    for menu in menus:
        if menu.name in names:
            raise IvrConfigError(f"menu {menu.name!r} is defined twice")
        names.add(menu.name)
    numbers: dict[str, str] = {}
    owners = [(f"menu {m.name!r}", m.number) for m in menus]
    owners += [(f"schedule {s.name!r}", s.number) for s in schedules]
    for owner, number in owners:
        if number is None:
            continue
        if number in numbers:
            raise IvrConfigError(f"{owner}: number {number!r} is already used by {numbers[number]}")
        numbers[number] = owner
    for menu in menus:
        actions = [(f"options.{k!r}", a) for k, a in menu.options.items()]
        for where, action in [*actions, ("fallback", menu.fallback)]:
            if action.kind == "menu" and action.target not in names:
                raise IvrConfigError(
                    f"menu {menu.name!r}: {where} names an unknown menu {action.target!r}"
                )
    seen: set[str] = set()
    for schedule in schedules:
        if schedule.name in seen:
            raise IvrConfigError(f"schedule {schedule.name!r} is defined twice")
        seen.add(schedule.name)
        for key in ("open_menu", "closed_menu"):
            target = getattr(schedule, key)
            if target not in names:
                raise IvrConfigError(
                    f"schedule {schedule.name!r}: {key} names an unknown menu {target!r}"
                )


def _tables(doc: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise IvrConfigError(f"{key!r} must be an array of tables ([[{key}]])")
    return value


def _label(kind: str, table: Mapping[str, Any], index: int) -> str:
    name = table.get("name")
    return f"{kind} {name!r}" if isinstance(name, str) else f"{kind} #{index + 1}"


def _str(where: str, table: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if value is None:
        raise IvrConfigError(f"{where}: {key} is missing")
    if not isinstance(value, str) or _NAME_RE.fullmatch(value) is None:
        raise IvrConfigError(
            f"{where}: {key} {value!r} is not a valid name (letters, digits, '.', '_', '-')"
        )
    return value


def _prompt(where: str, table: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if value is None:
        raise IvrConfigError(f"{where}: {key} is missing")
    if not isinstance(value, str) or _PROMPT_RE.fullmatch(value) is None:
        raise IvrConfigError(
            f"{where}: {key} {value!r} is not a prompt name (1-64 of a-z, 0-9, '-', '_')"
        )
    return value


def _number(where: str, table: Mapping[str, Any]) -> str | None:
    value = table.get("number")
    if value is None:
        return None
    if not isinstance(value, str) or _NUMBER_RE.fullmatch(value) is None:
        raise IvrConfigError(f"{where}: number {value!r} is not a valid number (use a string)")
    return value


def _int(where: str, table: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise IvrConfigError(f"{where}: {key} {value!r} must be a whole number {low}-{high}")
    return value


def _action(where: str, key: str, value: object) -> Action:
    if not isinstance(value, str):
        raise IvrConfigError(f"{where}: {key} must be a string like 'extension:1001'")
    try:
        return Action.parse(value)
    except IvrConfigError as exc:
        raise IvrConfigError(f"{where}: {key}: {exc}") from None


def _menu(table: Mapping[str, Any], index: int) -> Menu:
    where = _label("menu", table, index)
    unknown = sorted(set(table) - _MENU_FIELDS)
    if unknown:
        raise IvrConfigError(f"{where}: unknown field {unknown[0]!r}")
    options_table = table.get("options", {})
    if not isinstance(options_table, dict):
        raise IvrConfigError(f"{where}: options must be a table ([menu.options])")
    options: dict[str, Action] = {}
    for key, value in options_table.items():
        if len(key) != 1 or key not in DTMF_KEYS:
            raise IvrConfigError(f"{where}: options key {key!r} is not a DTMF key (0-9, *, #)")
        options[key] = _action(where, f"options.{key!r}", value)
    timeout = table.get("timeout", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise IvrConfigError(f"{where}: timeout {timeout!r} must be a number of seconds")
    if not math.isfinite(timeout) or not 0 < timeout <= 300:
        raise IvrConfigError(f"{where}: timeout {timeout!r} must be more than 0 and at most 300")
    dial_by_extension = table.get("dial_by_extension", False)
    if not isinstance(dial_by_extension, bool):
        raise IvrConfigError(f"{where}: dial_by_extension must be true or false")
    fallback = _action(where, "fallback", table.get("fallback", "hangup"))
    if fallback.kind in ("repeat", "dial_by_extension"):
        raise IvrConfigError(f"{where}: fallback cannot be {fallback.kind!r}")
    return Menu(
        name=_str(where, table, "name"),
        number=_number(where, table),
        greeting=_prompt(where, table, "greeting"),
        options=options,
        timeout=float(timeout),
        invalid_prompt=_prompt(where, table, "invalid_prompt", "ivr-invalid"),
        timeout_prompt=_prompt(where, table, "timeout_prompt", "ivr-timeout"),
        retries=_int(where, table, "retries", 3, 0, 20),
        fallback=fallback,
        dial_by_extension=dial_by_extension,
        extension_digits=_int(where, table, "extension_digits", 4, 1, 16),
    )


def _days(where: str, value: object) -> frozenset[int]:
    if not isinstance(value, list) or not value:
        raise IvrConfigError(f"{where}: days must be a non-empty list like ['mon', 'tue']")
    days: set[int] = set()
    for item in value:
        if not isinstance(item, str) or item.lower() not in DAY_NAMES:
            raise IvrConfigError(f"{where}: day {item!r} is not one of {', '.join(DAY_NAMES)}")
        days.add(DAY_NAMES.index(item.lower()))
    return frozenset(days)


def _rule(where: str, table: object) -> HoursRule:
    if not isinstance(table, dict):
        raise IvrConfigError(f"{where} must be a table ([[schedule.hours]])")
    unknown = sorted(set(table) - _RULE_FIELDS)
    if unknown:
        raise IvrConfigError(f"{where}: unknown field {unknown[0]!r}")
    bounds: list[time] = []
    for key in ("start", "end"):
        value = table.get(key)
        if not isinstance(value, time):
            raise IvrConfigError(f"{where}: {key} {value!r} must be a TOML time like 09:00:00")
        bounds.append(value)
    if bounds[0] == bounds[1]:
        raise IvrConfigError(f"{where}: start and end are both {bounds[0].isoformat()}")
    return HoursRule(_days(where, table.get("days")), bounds[0], bounds[1])


def _schedule(table: Mapping[str, Any], index: int) -> Schedule:
    where = _label("schedule", table, index)
    unknown = sorted(set(table) - _SCHEDULE_FIELDS)
    if unknown:
        raise IvrConfigError(f"{where}: unknown field {unknown[0]!r}")
    hours = table.get("hours", [])
    if not isinstance(hours, list):
        raise IvrConfigError(f"{where}: hours must be an array of tables ([[schedule.hours]])")
    rules = tuple(_rule(f"{where}: hours #{i + 1}", t) for i, t in enumerate(hours))
    holidays = table.get("holidays", [])
    if not isinstance(holidays, list):
        raise IvrConfigError(f"{where}: holidays must be a list of dates like [2026-12-25]")
    for day in holidays:
        if isinstance(day, datetime) or not isinstance(day, date):
            raise IvrConfigError(f"{where}: holiday {day!r} must be a TOML date like 2026-12-25")
    return Schedule(
        name=_str(where, table, "name"),
        number=_number(where, table),
        rules=rules,
        holidays=tuple(holidays),
        open_menu=_str(where, table, "open_menu"),
        closed_menu=_str(where, table, "closed_menu"),
    )


# --- writing ----------------------------------------------------------------------------


def _quote(text: str) -> str:
    """A TOML basic string."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _menu_lines(menu: Menu) -> Iterable[str]:
    yield "[[menu]]"
    yield f"name = {_quote(menu.name)}"
    if menu.number is not None:
        yield f"number = {_quote(menu.number)}"
    yield f"greeting = {_quote(menu.greeting)}"
    yield f"timeout = {menu.timeout!r}"
    yield f"invalid_prompt = {_quote(menu.invalid_prompt)}"
    yield f"timeout_prompt = {_quote(menu.timeout_prompt)}"
    yield f"retries = {menu.retries}"
    yield f"fallback = {_quote(str(menu.fallback))}"
    yield f"dial_by_extension = {'true' if menu.dial_by_extension else 'false'}"
    yield f"extension_digits = {menu.extension_digits}"
    yield ""
    yield "[menu.options]"
    for key, action in menu.options.items():
        yield f"{_quote(key)} = {_quote(str(action))}"


def _schedule_lines(schedule: Schedule) -> Iterable[str]:
    yield "[[schedule]]"
    yield f"name = {_quote(schedule.name)}"
    if schedule.number is not None:
        yield f"number = {_quote(schedule.number)}"
    yield f"open_menu = {_quote(schedule.open_menu)}"
    yield f"closed_menu = {_quote(schedule.closed_menu)}"
    yield f"holidays = [{', '.join(d.isoformat() for d in schedule.holidays)}]"
    for rule in schedule.rules:
        yield ""
        yield "[[schedule.hours]]"
        yield f"days = [{', '.join(_quote(DAY_NAMES[d]) for d in sorted(rule.days))}]"
        yield f"start = {rule.start.isoformat()}"
        yield f"end = {rule.end.isoformat()}"


def to_toml(menus: Sequence[Menu], schedules: Sequence[Schedule]) -> str:
    """Write menus and schedules as TOML that `parse_toml` reads back to equal values."""
    blocks = ["\n".join(_menu_lines(m)) for m in menus]
    blocks += ["\n".join(_schedule_lines(s)) for s in schedules]
    return "".join(block + "\n\n" for block in blocks).rstrip("\n") + "\n" if blocks else ""
