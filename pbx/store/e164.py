"""Telephone numbers as E.164 (`+` and 8 to 15 digits): how customers are keyed.

Pure. A number written for people ("020 7946 0123", "(415) 555-0100", "+33 1 23 45 67 89",
"0044 20 7946 0123") becomes E.164 given a default country: the country's calling code,
its international prefix and whether a national number drops a leading trunk "0" (or "1"
in the North American plan). ITU-T E.164 caps a number at 15 digits, country code
included; numbers shorter than 8 digits are refused as too short to be a subscriber's
(they are extensions or service codes, not customers).

Countries are named by ISO 3166 alpha-2 code; the table holds the common ones. A calling
code given directly (`+44` or `44`) is accepted too, with the trunk "0" rule.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from pbx.errors import ConfigError

__all__ = [
    "COUNTRIES",
    "Country",
    "caller_candidates",
    "country",
    "normalise",
    "normalise_number",
]

MIN_DIGITS = 8
MAX_DIGITS = 15
_MAX_INPUT = 64
#: Characters people put in numbers that carry no digit.
_SEPARATORS = str.maketrans("", "", " -.()/\t\u00a0")


@dataclass(frozen=True, slots=True)
class Country:
    """How a country writes its numbers: calling code, trunk prefix dropped from a
    national number ("" when none is), international prefixes dialled before a code."""

    code: str
    trunk: str = "0"
    international: tuple[str, ...] = ("00",)


_NANP = Country("1", trunk="1", international=("011",))
COUNTRIES: dict[str, Country] = {
    "US": _NANP,
    "CA": _NANP,
    "GB": Country("44"),
    "IE": Country("353"),
    "FR": Country("33"),
    "DE": Country("49"),
    "AT": Country("43"),
    "CH": Country("41"),
    "BE": Country("32"),
    "NL": Country("31"),
    "LU": Country("352"),
    "IT": Country("39", trunk=""),  # the leading 0 is part of the number
    "ES": Country("34", trunk=""),
    "PT": Country("351", trunk=""),
    "DK": Country("45", trunk=""),
    "NO": Country("47", trunk=""),
    "SE": Country("46"),
    "FI": Country("358", international=("00", "990", "999")),
    "PL": Country("48", trunk=""),
    "CZ": Country("420", trunk=""),
    "GR": Country("30", trunk=""),
    "AU": Country("61", international=("0011",)),
    "NZ": Country("64"),
    "IN": Country("91"),
    "JP": Country("81", international=("010",)),
    "BR": Country("55"),
    "MX": Country("52", trunk=""),
    "ZA": Country("27"),
}


def country(name: str) -> Country:
    """The country `name` (ISO alpha-2, any case) or a calling code (`+44`, `44`).

    Raises: ConfigError for an unknown country or a malformed code.
    """
    text = name.strip()
    known = COUNTRIES.get(text.upper())
    if known is not None:
        return known
    digits = text.removeprefix("+")
    if digits.isdigit() and 1 <= len(digits) <= 3 and digits.isascii():
        return Country(digits)
    raise ConfigError(
        f"unknown country {name!r}: give an ISO code ({', '.join(sorted(COUNTRIES))})"
        " or a calling code such as +44"
    )


def normalise(number: str, default: Country | str) -> str:
    """`number` as E.164 ("+" and digits), read as a national number of `default` unless
    it starts with "+" or an international prefix of it.

    Raises: ConfigError saying what is wrong with the number.
    """
    home = country(default) if isinstance(default, str) else default
    if len(number) > _MAX_INPUT:
        raise ConfigError(f"number is longer than {_MAX_INPUT} characters")
    text = number.translate(_SEPARATORS)
    if not text:
        raise ConfigError("number is empty")
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not (digits.isdigit() and digits.isascii()):
        raise ConfigError(f"number {number!r} has characters other than digits")
    if not plus:
        prefix = next((p for p in home.international if digits.startswith(p)), None)
        if prefix is not None:
            digits = digits[len(prefix) :]
        else:
            if home.trunk and digits.startswith(home.trunk):
                digits = digits[len(home.trunk) :]
            digits = home.code + digits
    if digits.startswith("0"):
        raise ConfigError(f"number {number!r}: a country code never starts with 0")
    if len(digits) < MIN_DIGITS:
        raise ConfigError(f"number {number!r} is too short for a telephone number")
    if len(digits) > MAX_DIGITS:
        raise ConfigError(f"number {number!r} has more than {MAX_DIGITS} digits")
    return "+" + digits


def normalise_number(number: str, default: Country | str) -> str:
    """`normalise` under the name the Call API exports. Raises: ConfigError."""
    return normalise(number, default)


def caller_candidates(caller: str, default: Country | str | None) -> list[str]:
    """The E.164 numbers a caller ID may stand for, most likely first: as written in the
    default country, and, for a long string of digits, as an international number whose
    "+" the network left out. Empty when it is no telephone number (an extension)."""
    found: list[str] = []
    if default is not None or caller.startswith("+"):
        with contextlib.suppress(ConfigError):
            found.append(normalise(caller, default or "+1"))
    text = caller.translate(_SEPARATORS)
    if text.isdigit() and text.isascii() and not text.startswith("0"):
        try:
            bare = normalise("+" + text, "+1")  # the country plays no part
        except ConfigError:
            pass
        else:
            if bare not in found:
                found.append(bare)
    return found
