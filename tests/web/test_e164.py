"""E.164 normalisation with a default country (pbx.store.e164): tables of cases."""

from __future__ import annotations

import pytest

from pbx.errors import ConfigError
from pbx.store.e164 import caller_candidates, country, normalise


@pytest.mark.parametrize(
    ("text", "home", "expected"),
    [
        ("020 7946 0123", "GB", "+442079460123"),
        ("+44 20 7946 0123", "FR", "+442079460123"),
        ("0044 (20) 7946-0123", "FR", "+442079460123"),
        ("01 23 45 67 89", "FR", "+33123456789"),
        ("(415) 555-0100", "US", "+14155550100"),
        ("1-415-555-0100", "us", "+14155550100"),
        ("011 44 20 7946 0123", "US", "+442079460123"),
        ("06 1234 5678", "IT", "+390612345678"),  # Italy keeps its leading 0
        ("912 345 678", "ES", "+34912345678"),
        ("030 123456", "+49", "+4930123456"),
        ("0011 1 415 555 0100", "AU", "+14155550100"),
        ("+1.415.555.0100", "GB", "+14155550100"),
    ],
)
def test_normalise(text: str, home: str, expected: str) -> None:
    assert normalise(text, home) == expected


@pytest.mark.parametrize(
    ("text", "home", "message"),
    [
        ("", "GB", "number is empty"),
        ("  - ", "GB", "number is empty"),
        ("0800 CALL ME", "GB", "has characters other than digits"),
        ("+44 20 7946 0123 ext 5", "GB", "has characters other than digits"),
        ("1001", "GB", "too short"),
        ("+1234567890123456", "GB", "more than 15 digits"),
        ("+0 123 456 789", "GB", "never starts with 0"),
        ("٠٢٠٧٩٤٦٠١٢٣", "GB", "characters other than digits"),  # Arabic-Indic digits
        ("1" * 65, "GB", "longer than 64"),
    ],
)
def test_bad_numbers_say_why(text: str, home: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        normalise(text, home)


@pytest.mark.parametrize("name", ["XX", "+0000", "44a", ""])
def test_unknown_country(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown country"):
        country(name)


@pytest.mark.parametrize(
    ("caller", "home", "expected"),
    [
        ("02079460123", "GB", ["+442079460123"]),
        ("442079460123", "GB", ["+44442079460123", "+442079460123"]),
        ("+442079460123", "GB", ["+442079460123"]),
        ("1001", "GB", []),  # an extension is nobody's customer number
        ("alice", "GB", []),
    ],
)
def test_caller_candidates(caller: str, home: str, expected: list[str]) -> None:
    assert caller_candidates(caller, home) == expected
