"""Tests of pbx.users: username, password and display-name rules; password generation."""

from __future__ import annotations

import pytest

from pbx.errors import ConfigError
from pbx.users import (
    PASSWORD_ALPHABET,
    check_display_name,
    check_password,
    check_username,
    generate_password,
)


@pytest.mark.parametrize(
    "name",
    ["1001", "a", "alice", "Alice.Smith", "front_desk", "_ops", "x" * 32, "a-b.c_d", "9"],
)
def test_good_usernames(name: str) -> None:
    assert check_username(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "username is empty"),
        ("x" * 33, "username is longer than 32 characters"),
        (".hidden", "must not start with '.' or '-'"),
        ("-dash", "must not start with '.' or '-'"),
        ("al ice", "may only use letters, digits"),
        ("alice@pbx", "may only use letters, digits"),
        ("a:b", "may only use letters, digits"),
        ("émile", "may only use letters, digits"),
        ("1001\n", "may only use letters, digits"),
    ],
)
def test_bad_usernames(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        check_username(name)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("password", "username"),
    [
        ("correct-horse", None),  # lower + other
        ("Abcdefghij", None),  # upper + lower
        ("abcdefghi9", "1001"),
        ("x" * 127 + "Y", None),
        ("pass word-9", "bob"),  # inner blank is fine
        ("ab-Secret-1", "ab"),  # names under 3 characters are not searched for
    ],
)
def test_good_passwords(password: str, username: str | None) -> None:
    assert check_password(password, username) == password


@pytest.mark.parametrize(
    ("password", "username", "message"),
    [
        ("Short-1", None, "shorter than 10 characters"),
        ("", None, "shorter than 10 characters"),
        ("aB3" * 43, None, "longer than 128 characters"),
        ("1234567890", None, "at least two of"),
        ("abcdefghijk", None, "at least two of"),
        ("ABCDEFGHIJK", None, "at least two of"),
        ("----------", None, "at least two of"),
        ("tab\there-Secret", None, "control character"),
        (" leading-Secret", None, "blank"),
        ("trailing-Secret ", None, "blank"),
        ("my-1001-secret", "1001", "must not contain the username"),
        ("ALICE-rocks-99", "alice", "must not contain the username"),
    ],
)
def test_bad_passwords(password: str, username: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        check_password(password, username)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("given", "kept"),
    [(None, None), ("", None), ("   ", None), (" Front Desk ", "Front Desk"), ("Zoë", "Zoë")],
)
def test_display_names(given: str | None, kept: str | None) -> None:
    assert check_display_name(given) == kept


@pytest.mark.parametrize(
    ("given", "message"),
    [("x" * 65, "longer than 64"), ("a\x00b", "control character"), ("a\nb", "control")],
)
def test_bad_display_names(given: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_display_name(given)


def test_generated_passwords() -> None:
    seen = set()
    for _ in range(200):
        password = generate_password()
        assert len(password) == 20
        assert set(password) <= set(PASSWORD_ALPHABET)
        assert check_password(password) == password
        seen.add(password)
    assert len(seen) == 200
    assert not set("0Oo1lI") & set(PASSWORD_ALPHABET)
    assert len(PASSWORD_ALPHABET) == 56


def test_generated_password_avoids_the_username_and_honours_length() -> None:
    assert len(generate_password(32)) == 32
    for _ in range(50):
        assert "abc" not in generate_password(username="abc").lower()
    with pytest.raises(ConfigError, match="at least 16"):
        generate_password(15)
