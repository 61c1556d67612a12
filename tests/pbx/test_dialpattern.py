"""Dial patterns: parsing, matching and Asterisk-like ordering, as tables."""

from __future__ import annotations

import pytest

from pbx.dialpattern import DialPattern, best_match, sort_patterns
from pbx.errors import ConfigError

MATCHES = [
    ("_0XXXXXXXXX", "0123456789", True),
    ("_0XXXXXXXXX", "012345678", False),
    ("_0XXXXXXXXX", "01234567890", False),
    ("_0XXXXXXXXX", "1123456789", False),
    ("_00.", "00", False),
    ("_00.", "001", True),
    ("_00.", "0044123456", True),
    ("_00!", "00", True),
    ("_NXXNXXXXXX", "2125551234", True),
    ("_NXXNXXXXXX", "1125551234", False),
    ("_NXXNXXXXXX", "2121551234", False),
    ("_Z.", "0", False),
    ("_Z.", "12", True),
    ("_Z.", "1", False),
    ("_[1-5]X", "59", True),
    ("_[1-5]X", "69", False),
    ("_[13-7]", "1", True),
    ("_[13-7]", "2", False),
    ("_[13-7]", "7", True),
    ("_x*#", "1*#", True),
    ("112", "112", True),
    ("112", "1120", False),
    ("+4930", "+4930", True),
    ("prefix:00", "00", True),
    ("prefix:00", "0033", True),
    ("prefix:00", "0133", False),
    ("_00.", "00a1", False),
]


@pytest.mark.parametrize(("pattern", "number", "expected"), MATCHES)
def test_matches(pattern: str, number: str, expected: bool) -> None:
    assert DialPattern.parse(pattern).matches(number) is expected


BAD = [
    ("", "empty dial pattern"),
    ("_", "dial pattern '_' matches nothing"),
    ("_!", "dial pattern '_!' would match every number, even none"),
    ("_0.X", "dial pattern '_0.X': '.' must be the last character"),
    ("_0[12", "dial pattern '_0[12': '[' without ']'"),
    ("_0[]", "dial pattern '_0[]': empty []"),
    ("_0[9-1]", "dial pattern '_0[9-1]': bad range 9-1"),
    ("_0[a]", "dial pattern '_0[a]': 'a' in a [set]"),
    ("_0Q", "dial pattern '_0Q': unexpected character 'Q'"),
    (
        "0X1",
        "dial pattern '0X1': 'X' is not a digit, * # or + "
        "(start a pattern with '_', a prefix with 'prefix:')",
    ),
    ("prefix:", "dial pattern 'prefix:' has no digits"),
    ("_" + "X" * 64, "dial pattern longer than 64 characters"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_parse_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DialPattern.parse(text)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_sort_like_asterisk() -> None:
    texts = ["_X.", "_00.", "_0X.", "prefix:0", "_NXX", "_ZXX", "_XXX", "_2XX", "112", "_[2-3]XX"]
    ordered = [str(p) for p in sort_patterns(DialPattern.parse(t) for t in texts)]
    assert ordered == [
        "112",  # literal numbers first
        "_00.",  # then position by position, fewer choices first
        "_0X.",
        "prefix:0",  # _0! sorts after _0X.
        "_2XX",
        "_[2-3]XX",
        "_NXX",
        "_ZXX",
        "_XXX",
        "_X.",
    ]


BEST = [
    ("0044123", "_00."),
    ("0123456789", "_0XXXXXXXXX"),
    ("0123", "_0X."),
    ("112", "112"),
    ("7", None),
]


@pytest.mark.parametrize(("number", "expected"), BEST)
def test_best_match(number: str, expected: str | None) -> None:
    patterns = [DialPattern.parse(t) for t in ("_0X.", "_00.", "_0XXXXXXXXX", "112", "_1XX")]
    found = best_match(number, patterns)
    assert (None if found is None else found.text) == expected
