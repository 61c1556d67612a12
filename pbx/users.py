"""Rules for SIP usernames, passwords and display names, and password generation (pure).

Why these rules: a registrar reachable from a network is scanned around the clock
by tools (sipvicious' "friendly-scanner" and its descendants) that try numeric
passwords and the extension itself first. So a password chosen by a person must:

- be 10 to 128 characters long;
- mix at least two character classes (lower case, upper case, digits, others),
  which rules out the all-digit PINs scanners try first;
- not contain the username (ignoring case), which rules out "1001" + "1001pass";
- be printable, without leading or trailing blanks (those are copy-and-paste
  accidents that then fail on the phone).

Generated passwords avoid the characters people confuse when they copy them into
a phone's keypad (0/O/o, 1/l/I) and are URL-safe letters and digits only.
Every rule failure is a `ConfigError` with a one-line message for the CLI.
"""

from __future__ import annotations

import re
import secrets
import string

from pbx.errors import ConfigError

USERNAME_MAX = 32
PASSWORD_MIN = 10
PASSWORD_MAX = 128
DISPLAY_NAME_MAX = 64
GENERATED_LENGTH = 20

# 1-32 of [A-Za-z0-9._-], not starting with '.' or '-'. These are all RFC 3261
# "unreserved" characters, so the name needs no escaping in a SIP URI user part.
_USERNAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}")

# Letters and digits without the look-alikes 0 O o 1 l I.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0Oo1lI")


def check_username(username: str) -> str:
    """Return `username` when it is a valid SIP username (phone extensions are usually digits).

    Raises:
        ConfigError: the name is empty, too long, or has a character outside [A-Za-z0-9._-],
            or starts with '.' or '-'.
    """
    if not username:
        raise ConfigError("username is empty")
    if len(username) > USERNAME_MAX:
        raise ConfigError(f"username is longer than {USERNAME_MAX} characters")
    if _USERNAME_RE.fullmatch(username) is None:
        raise ConfigError(
            f"username {username!r} may only use letters, digits, '.', '_' and '-', "
            "and must not start with '.' or '-'"
        )
    return username


def _classes(password: str) -> int:
    """How many of the classes lower, upper, digit, other the password uses."""
    lower = any(c.islower() for c in password)
    upper = any(c.isupper() for c in password)
    digit = any(c.isdigit() for c in password)
    other = any(not c.isalnum() for c in password)
    return lower + upper + digit + other


def check_password(password: str, username: str | None = None) -> str:
    """Return `password` when it follows the rules in this module's docstring.

    Raises:
        ConfigError: naming the first rule the password breaks.
    """
    if len(password) < PASSWORD_MIN:
        raise ConfigError(f"password is shorter than {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise ConfigError(f"password is longer than {PASSWORD_MAX} characters")
    if not password.isprintable():
        raise ConfigError("password contains a control character")
    if password != password.strip():
        raise ConfigError("password starts or ends with a blank")
    if _classes(password) < 2:
        raise ConfigError(
            "password must mix at least two of: lower case, upper case, digits, other characters"
        )
    # Names of one or two characters would forbid too much; they are rare anyway.
    if username and len(username) >= 3 and username.lower() in password.lower():
        raise ConfigError("password must not contain the username")
    return password


def check_display_name(display_name: str | None) -> str | None:
    """Return the display name (None when absent or blank) when it is printable and short.

    Raises:
        ConfigError: it is longer than 64 characters or contains a control character.
    """
    if display_name is None or not display_name.strip():
        return None
    display_name = display_name.strip()
    if len(display_name) > DISPLAY_NAME_MAX:
        raise ConfigError(f"display name is longer than {DISPLAY_NAME_MAX} characters")
    if not display_name.isprintable():
        raise ConfigError("display name contains a control character")
    return display_name


def generate_password(length: int = GENERATED_LENGTH, username: str | None = None) -> str:
    """A random password from `secrets`: letters and digits without look-alikes.

    20 characters of a 56-letter alphabet carry about 116 bits. The result always
    passes `check_password(password, username)` (a draw that would not is drawn again).

    Raises:
        ConfigError: `length` is below 16.
    """
    if length < 16:
        raise ConfigError("generated passwords have at least 16 characters")
    while True:
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        try:
            return check_password(password, username)
        except ConfigError:
            continue
