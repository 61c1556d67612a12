"""Dial patterns: which dialled numbers an outbound route (or a simulated number) takes.

Three spellings, all pure data once parsed:

- `_` then Asterisk-style pattern characters: `X` = 0-9, `Z` = 1-9, `N` = 2-9, a set
  `[1-5]` / `[13-7]`, a literal `0-9 * # +`, and as the LAST character `.` (one or more
  further characters) or `!` (zero or more). `_0XXXXXXXXX`, `_00.`, `_NXXNXXXXXX`.
- `prefix:DIGITS`: every number that starts with DIGITS (DIGITS itself included).
- anything else: one literal number (`112`).

`sort_patterns` orders patterns the way Asterisk orders the extensions of a context:
literal numbers first, then patterns compared position by position, where a position
that matches fewer characters is more specific (a literal digit, then `N` (8), `Z` (9),
`X` (10); a set by its size, ties broken by its lowest character), and the open tails
`.` and `!` come after any single position (`!` after `.`). A prefix is sorted as the
pattern `_DIGITS!` it is equivalent to.

Parsing is linear and bounded (`MAX_PATTERN`); errors are `ConfigError` with one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pbx.errors import ConfigError

#: Longest pattern text accepted (an E.164 number is 15 digits; room for sets).
MAX_PATTERN = 64
#: Characters a dialled number may hold.
DIAL_CHARS = frozenset("0123456789*#+")

_CLASSES = {
    "X": frozenset("0123456789"),
    "Z": frozenset("123456789"),
    "N": frozenset("23456789"),
}
#: Sort weights of the open tails: after any set (a set has at most 13 members).
_ONE_OR_MORE = (0x100, "")
_ZERO_OR_MORE = (0x101, "")


@dataclass(frozen=True, slots=True)
class DialPattern:
    """One parsed pattern: fixed positions, then an optional open tail.

    `tail` is "" (exactly len(positions) characters), "." (one or more more) or
    "!" (zero or more more).
    """

    text: str
    positions: tuple[frozenset[str], ...]
    tail: str
    literal: bool

    @classmethod
    def parse(cls, text: str) -> DialPattern:
        """Parse one pattern (see the module docstring).

        Raises:
            ConfigError: an empty or too long pattern, an unknown character, an
                unclosed or empty set, or `.`/`!` not at the end.
        """
        if not text:
            raise ConfigError("empty dial pattern")
        if len(text) > MAX_PATTERN:
            raise ConfigError(f"dial pattern longer than {MAX_PATTERN} characters")
        if text.startswith("prefix:"):
            digits = text[len("prefix:") :]
            _check_literal(text, digits)
            return cls(text, tuple(frozenset(c) for c in digits), "!", False)
        if not text.startswith("_"):
            _check_literal(text, text)
            return cls(text, tuple(frozenset(c) for c in text), "", True)
        positions: list[frozenset[str]] = []
        tail = ""
        body = text[1:]
        i = 0
        while i < len(body):
            c = body[i]
            if tail:
                raise ConfigError(f"dial pattern {text!r}: {tail!r} must be the last character")
            upper = c.upper()
            if upper in _CLASSES:
                positions.append(_CLASSES[upper])
            elif c in DIAL_CHARS:
                positions.append(frozenset(c))
            elif c in ".!":
                tail = c
            elif c == "[":
                end = body.find("]", i + 1)
                if end < 0:
                    raise ConfigError(f"dial pattern {text!r}: '[' without ']'")
                positions.append(_parse_set(text, body[i + 1 : end]))
                i = end
            else:
                raise ConfigError(f"dial pattern {text!r}: unexpected character {c!r}")
            i += 1
        if not positions and not tail:
            raise ConfigError(f"dial pattern {text!r} matches nothing")
        if not positions and tail == "!":
            raise ConfigError(f"dial pattern {text!r} would match every number, even none")
        return cls(text, tuple(positions), tail, False)

    def matches(self, number: str) -> bool:
        """Whether `number` (a dialled string) is matched by this pattern."""
        fixed = len(self.positions)
        if len(number) < fixed or len(number) > MAX_PATTERN * 4:
            return False
        if self.tail == "" and len(number) != fixed:
            return False
        if self.tail == "." and len(number) == fixed:
            return False
        if any(c not in allowed for c, allowed in zip(number, self.positions, strict=False)):
            return False
        return all(c in DIAL_CHARS for c in number[fixed:])

    def sort_key(self) -> tuple[int, tuple[tuple[int, str], ...]]:
        """A key that sorts more specific patterns first (see the module docstring)."""
        weights = [(len(p), min(p)) for p in self.positions]
        if self.tail == ".":
            weights.append(_ONE_OR_MORE)
        elif self.tail == "!":
            weights.append(_ZERO_OR_MORE)
        return (0 if self.literal else 1, tuple(weights))

    def __str__(self) -> str:
        return self.text


def _check_literal(text: str, digits: str) -> None:
    if not digits:
        raise ConfigError(f"dial pattern {text!r} has no digits")
    bad = next((c for c in digits if c not in DIAL_CHARS), None)
    if bad is not None:
        raise ConfigError(
            f"dial pattern {text!r}: {bad!r} is not a digit, * # or + "
            "(start a pattern with '_', a prefix with 'prefix:')"
        )


def _parse_set(text: str, inner: str) -> frozenset[str]:
    """The characters of a `[...]` set: digits and ranges like `1-5`."""
    chars: set[str] = set()
    i = 0
    while i < len(inner):
        c = inner[i]
        if c not in DIAL_CHARS:
            raise ConfigError(f"dial pattern {text!r}: {c!r} in a [set]")
        if i + 2 < len(inner) and inner[i + 1] == "-":
            last = inner[i + 2]
            if not (c.isdigit() and last.isdigit() and c <= last):
                raise ConfigError(f"dial pattern {text!r}: bad range {c}-{last}")
            chars.update(str(d) for d in range(int(c), int(last) + 1))
            i += 3
            continue
        chars.add(c)
        i += 1
    if not chars:
        raise ConfigError(f"dial pattern {text!r}: empty []")
    return frozenset(chars)


def sort_patterns(patterns: Iterable[DialPattern]) -> list[DialPattern]:
    """The patterns, most specific first (stable for equal keys)."""
    return sorted(patterns, key=DialPattern.sort_key)


def best_match(number: str, patterns: Iterable[DialPattern]) -> DialPattern | None:
    """The most specific pattern that matches `number`, or None."""
    return next((p for p in sort_patterns(patterns) if p.matches(number)), None)
