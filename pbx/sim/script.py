"""The PSTN simulator's script: accounts, and how each called number behaves.

A TOML file (parsed here into frozen data, checked with one-line `ConfigError`s)::

    seed = 7                      # same seed, same choices: runs repeat
    realm = "pstn.test"
    default = "invalid"           # behaviour of numbers no entry matches

    [accounts]                    # digest users for REGISTER and INVITE
    trunk1 = "secret"

    [[numbers]]
    pattern = "_0800XXXXXX"       # pbx.dialpattern syntax
    behaviour = "busy"

    [[numbers]]
    pattern = "_0X."
    weights = { live = 3, machine = 1, no_answer = 1 }
    ring_seconds = 1.0            # ringing before a live person / machine answers
    no_answer_seconds = 4.0       # ringing before a no_answer number gives up
    no_answer_status = 480        # or 408
    invalid_status = 404          # or 484
    slow_answer_seconds = 8.0
    listen_seconds = 30.0         # longest time a call stays up after the answer
    greeting = "Hello?"           # what a live person says (espeak-ng, else tones)
    keys = [{ after = 2.5, digits = "1" }]   # a person presses keys (see below)

`keys`: what a person (live or slow_answer; machines press nothing) presses, as RFC
4733 telephone-events. Each entry's `after` counts seconds from the moment the callee
first hears the switch speak after the answer (the first 20 ms frame of sound: the
message's start, whatever the greeting and the switch's AMD took), so a script says
"two seconds into the message" and means it on a slow machine too; `from = "answer"`
counts from the answer instead (a key pressed though nothing is heard). A person who
never hears the switch presses no "prompt" keys.

`choose(number, n)` is pure: the behaviour of the n-th call to `number` is drawn from
a generator seeded by (seed, number, n), whatever the order calls arrive in.
"""

from __future__ import annotations

import enum
import hashlib
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbx.dialpattern import DialPattern, best_match
from pbx.errors import ConfigError

#: Limits on a script (it is read from a file the user names, but stay bounded).
MAX_SCRIPT_BYTES = 256 * 1024
MAX_NUMBERS = 256
MAX_ACCOUNTS = 1024
MAX_SECONDS = 3600.0
MAX_KEY_ENTRIES = 16
MAX_KEY_DIGITS = 16
_DTMF = frozenset("0123456789*#ABCDabcd")


class Behaviour(enum.Enum):
    """What a called number does."""

    LIVE = "live"  # rings, answers, says a short greeting, listens
    MACHINE = "machine"  # rings, answers, long greeting, beep, records
    BUSY = "busy"  # 486
    NO_ANSWER = "no_answer"  # rings, then 480 or 408
    INVALID = "invalid"  # 404 or 484
    CONGESTION = "congestion"  # 503
    SLOW_ANSWER = "slow_answer"  # a live person after a long ring


@dataclass(frozen=True, slots=True)
class KeyPress:
    """Keys a simulated person presses: `digits`, `after` seconds from `start` ("prompt":
    the first sound heard from the switch; "answer": the answer)."""

    after: float
    digits: str
    start: str = "prompt"


@dataclass(frozen=True, slots=True)
class NumberRule:
    """One `[[numbers]]` entry."""

    pattern: DialPattern
    weights: tuple[tuple[Behaviour, float], ...]
    ring_seconds: float = 1.0
    no_answer_seconds: float = 4.0
    no_answer_status: int = 480
    invalid_status: int = 404
    slow_answer_seconds: float = 8.0
    listen_seconds: float = 30.0
    greeting: str = "Hello?"
    keys: tuple[KeyPress, ...] = ()


@dataclass(frozen=True, slots=True)
class SimScript:
    """A parsed script."""

    seed: int
    realm: str
    accounts: Mapping[str, str]
    rules: tuple[NumberRule, ...]
    default: NumberRule

    def rule_for(self, number: str) -> NumberRule:
        """The entry of the most specific pattern matching `number`, else the default."""
        best = best_match(number, [r.pattern for r in self.rules])
        if best is None:
            return self.default
        return next(r for r in self.rules if r.pattern is best)

    def choose(self, number: str, n: int) -> tuple[Behaviour, NumberRule]:
        """The behaviour of the `n`-th call (0, 1, …) to `number`, and its entry."""
        rule = self.rule_for(number)
        digest = hashlib.sha256(f"{self.seed}/{number}/{n}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        behaviours = [b for b, _ in rule.weights]
        weights = [w for _, w in rule.weights]
        return rng.choices(behaviours, weights)[0], rule


def _seconds(entry: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {key} must be a number of seconds")
    if not 0 <= value <= MAX_SECONDS:
        raise ConfigError(f"{where}: {key} must be between 0 and {MAX_SECONDS:g}")
    return float(value)


def _status(entry: Mapping[str, Any], key: str, default: int, allowed: set[int], where: str) -> int:
    value = entry.get(key, default)
    if value not in allowed or isinstance(value, bool):
        choices = " or ".join(str(a) for a in sorted(allowed))
        raise ConfigError(f"{where}: {key} must be {choices}")
    return int(value)


def _behaviour(name: object, where: str) -> Behaviour:
    try:
        return Behaviour(name)
    except ValueError:
        known = ", ".join(b.value for b in Behaviour)
        raise ConfigError(f"{where}: unknown behaviour {name!r} (known: {known})") from None


def _rule(entry: Mapping[str, Any], where: str, pattern: str) -> NumberRule:
    known = {
        "pattern", "behaviour", "weights", "ring_seconds", "no_answer_seconds",
        "no_answer_status", "invalid_status", "slow_answer_seconds", "listen_seconds",
        "greeting", "keys",
    }  # fmt: skip
    extra = sorted(set(entry) - known)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r}")
    if "behaviour" in entry and "weights" in entry:
        raise ConfigError(f"{where}: give behaviour or weights, not both")
    if "weights" in entry:
        table = entry["weights"]
        if not isinstance(table, dict) or not table:
            raise ConfigError(f"{where}: weights must be a table like {{ live = 3, busy = 1 }}")
        weights = []
        for name, weight in table.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise ConfigError(f"{where}: the weight of {name} must be a number >= 0")
            weights.append((_behaviour(name, where), float(weight)))
        if sum(w for _, w in weights) <= 0:
            raise ConfigError(f"{where}: the weights add up to 0")
    else:
        weights = [(_behaviour(entry.get("behaviour", "live"), where), 1.0)]
    greeting = entry.get("greeting", "Hello?")
    if not isinstance(greeting, str) or not greeting.strip() or len(greeting) > 500:
        raise ConfigError(f"{where}: greeting must be a text of 1 to 500 characters")
    return NumberRule(
        pattern=DialPattern.parse(pattern),
        weights=tuple(weights),
        ring_seconds=_seconds(entry, "ring_seconds", 1.0, where),
        no_answer_seconds=_seconds(entry, "no_answer_seconds", 4.0, where),
        no_answer_status=_status(entry, "no_answer_status", 480, {480, 408}, where),
        invalid_status=_status(entry, "invalid_status", 404, {404, 484}, where),
        slow_answer_seconds=_seconds(entry, "slow_answer_seconds", 8.0, where),
        listen_seconds=_seconds(entry, "listen_seconds", 30.0, where),
        greeting=greeting,
        keys=_keys(entry.get("keys", []), where),
    )


def _keys(value: object, where: str) -> tuple[KeyPress, ...]:
    shape = 'keys must be a list like [{ after = 2.5, digits = "1" }]'
    if not isinstance(value, list) or len(value) > MAX_KEY_ENTRIES:
        raise ConfigError(f"{where}: {shape} (at most {MAX_KEY_ENTRIES} entries)")
    presses = []
    for item in value:
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: {shape}")
        extra = sorted(set(item) - {"after", "digits", "from"})
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r} in keys")
        digits = item.get("digits")
        if (
            not isinstance(digits, str)
            or not 0 < len(digits) <= MAX_KEY_DIGITS
            or not set(digits) <= _DTMF
        ):
            raise ConfigError(f"{where}: keys digits must be 1 to {MAX_KEY_DIGITS} of 0-9 * # A-D")
        if "after" not in item:
            raise ConfigError(f"{where}: keys entry needs after (seconds)")
        start = item.get("from", "prompt")
        if start not in ("prompt", "answer"):
            raise ConfigError(f'{where}: keys from must be "prompt" or "answer"')
        after = _seconds(item, "after", 0.0, f"{where}: keys")
        presses.append(KeyPress(after, digits.upper(), start))
    return tuple(presses)


def parse_script(text: str, where: str = "script") -> SimScript:
    """Parse a script's TOML text.

    Raises:
        ConfigError: bad TOML, an unknown key or behaviour, a malformed pattern, a bad
            number of seconds or status, too many entries.
    """
    if len(text) > MAX_SCRIPT_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_SCRIPT_BYTES} bytes")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {' '.join(str(exc).split())}") from None
    extra = sorted(set(data) - {"seed", "realm", "default", "accounts", "numbers"})
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{where}: seed must be an integer")
    realm = data.get("realm", "pstn.test")
    if not isinstance(realm, str) or not realm or '"' in realm or not realm.isprintable():
        raise ConfigError(f"{where}: realm must be a printable text without quotes")
    accounts = data.get("accounts", {})
    if not isinstance(accounts, dict) or len(accounts) > MAX_ACCOUNTS:
        raise ConfigError(f'{where}: [accounts] must be a table of user = "password"')
    for user, password in accounts.items():
        if not isinstance(password, str) or not password:
            raise ConfigError(f"{where}: the password of account {user} must be a text")
    numbers = data.get("numbers", [])
    if not isinstance(numbers, list) or len(numbers) > MAX_NUMBERS:
        raise ConfigError(f"{where}: [[numbers]] must be at most {MAX_NUMBERS} entries")
    rules = []
    for i, entry in enumerate(numbers, 1):
        at = f"{where}: numbers entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("pattern"), str):
            raise ConfigError(f"{at}: needs a pattern")
        rules.append(_rule(entry, at, entry["pattern"]))
    default = _rule({"behaviour": data.get("default", "invalid")}, f"{where}: default", "_X!")
    return SimScript(seed, realm, dict(accounts), tuple(rules), default)


def load_script(path: Path) -> SimScript:
    """Read and parse a script file. Raises: ConfigError (also when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_script(text, str(path))
