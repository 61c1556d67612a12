"""Which IANA time zones a phone number may ring in, from its country and area code.

Written from public numbering facts (ITU-T E.164 country codes, the NANP area-code
map). A number whose place is not known for sure maps to every zone it may be in;
the calling window (acd/compliance.py) is then open only when it is open in all
of them, so uncertainty makes the dialer stricter, never looser. An area code that
straddles a zone line (850 in Florida, 208 in Idaho ...) lists both zones.
"""

from __future__ import annotations

from pbx.api import ConfigError

_ET, _CT, _MT, _PT = "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"
_AZ = "America/Phoenix"  # Arizona keeps standard time all year
# An unknown NANP area code in the US or Canada: any contiguous zone.
NANP_ANY = (_ET, _CT, _MT, _AZ, _PT)

_NANP_BY_ZONE: dict[tuple[str, ...], str] = {
    (_ET,): "201 202 203 207 212 215 216 234 239 240 252 267 301 302 304 305 315 321 330 336 "
    "339 347 351 352 386 401 404 407 410 412 413 434 440 443 470 475 478 484 508 513 516 518 "
    "540 551 561 570 571 585 603 607 609 610 614 617 631 646 667 678 680 703 704 706 716 717 "
    "718 724 727 732 740 754 757 762 770 772 774 781 786 802 803 804 813 814 828 843 845 848 "
    "856 857 860 862 863 864 878 904 908 910 912 914 917 919 929 937 941 947 954 973 978 980 984",
    ("America/Detroit",): "231 248 269 313 517 586 616 734 810 906 989",
    ("America/Indiana/Indianapolis",): "260 317 463 574 765",
    ("America/Kentucky/Louisville",): "502 859",
    ("America/Toronto",): "226 249 289 343 365 416 418 437 438 450 514 519 581 613 647 705 "
    "807 819 873 905",
    (_CT,): "205 210 214 217 218 219 224 225 228 251 254 256 262 281 309 312 314 316 318 319 "
    "320 325 331 334 337 346 361 402 405 409 414 417 430 432 469 479 501 504 507 512 515 "
    "531 539 563 573 580 601 608 612 618 620 630 636 641 651 660 662 682 708 712 713 715 "
    "726 731 737 763 769 773 779 785 806 812 815 816 817 830 832 847 870 872 901 903 913 "
    "918 920 936 940 952 956 972 979",
    ("America/Winnipeg",): "204 431",
    ("America/Regina",): "306 639",
    (_MT,): "303 307 385 406 435 505 575 719 720 801 915 970",
    (_AZ,): "480 520 602 623 928",
    ("America/Edmonton",): "368 403 587 780 825",
    (_PT,): "206 209 213 253 279 310 323 341 360 408 415 424 425 442 503 509 510 530 559 "
    "562 564 619 626 628 650 657 661 669 702 707 714 725 747 760 775 805 818 820 831 "
    "840 858 909 916 925 949 951 971",
    ("America/Vancouver",): "236 250 604 672 778",
    ("America/Anchorage",): "907",
    ("Pacific/Honolulu",): "808",
    ("America/Puerto_Rico",): "787 939",
    ("America/Halifax",): "782 902",
    ("America/St_Johns",): "709",
    # straddling a zone line
    (_ET, _CT): "270 364 423 812 850 931",
    ("America/Boise", _PT): "208 986",
    (_PT, "America/Boise"): "458 541",
    (_CT, _MT): "308 605 701",
}


def _invert(table: dict[tuple[str, ...], str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for zones, codes in table.items():
        for code in codes.split():
            # a code listed again under a straddling pair takes the wider answer
            out[code] = tuple(dict.fromkeys(out.get(code, ()) + zones))
    return out


NANP_AREA: dict[str, tuple[str, ...]] = _invert(_NANP_BY_ZONE)

# Country codes (E.164) outside the NANP; several zones when the country has them.
COUNTRY: dict[str, tuple[str, ...]] = {
    "44": ("Europe/London",),
    "353": ("Europe/Dublin",),
    "33": ("Europe/Paris",),
    "49": ("Europe/Berlin",),
    "34": ("Europe/Madrid", "Atlantic/Canary"),
    "351": ("Europe/Lisbon", "Atlantic/Azores"),
    "39": ("Europe/Rome",),
    "31": ("Europe/Amsterdam",),
    "32": ("Europe/Brussels",),
    "41": ("Europe/Zurich",),
    "43": ("Europe/Vienna",),
    "45": ("Europe/Copenhagen",),
    "46": ("Europe/Stockholm",),
    "47": ("Europe/Oslo",),
    "358": ("Europe/Helsinki",),
    "48": ("Europe/Warsaw",),
    "420": ("Europe/Prague",),
    "36": ("Europe/Budapest",),
    "40": ("Europe/Bucharest",),
    "30": ("Europe/Athens",),
    "27": ("Africa/Johannesburg",),
    "91": ("Asia/Kolkata",),
    "81": ("Asia/Tokyo",),
    "82": ("Asia/Seoul",),
    "86": ("Asia/Shanghai",),
    "852": ("Asia/Hong_Kong",),
    "65": ("Asia/Singapore",),
    "64": ("Pacific/Auckland", "Pacific/Chatham"),
}

# Australia (+61) by its trunk area digit.
AUSTRALIA: dict[str, tuple[str, ...]] = {
    "2": ("Australia/Sydney",),
    "3": ("Australia/Melbourne", "Australia/Hobart"),
    "7": ("Australia/Brisbane",),
    "8": ("Australia/Adelaide", "Australia/Darwin", "Australia/Perth"),
}

_MAX_DIGITS = 15  # E.164


def e164_digits(number: str) -> str:
    """The digits of an E.164 number ("+1 (212) 555-0100" -> "12125550100").

    Raises:
        ConfigError: no leading +, other characters than digits and separators,
            or more than 15 digits.
    """
    text = number.strip()
    if not text.startswith("+"):
        raise ConfigError(f"not an E.164 number (it must start with +): {number[:32]!r}")
    digits = "".join(c for c in text[1:] if c not in " -.()")
    if not digits.isdigit() or not 4 <= len(digits) <= _MAX_DIGITS:
        raise ConfigError(f"not an E.164 number: {number[:32]!r}")
    return digits


def zones_for_number(number: str) -> tuple[str, ...]:
    """Every IANA zone the number may ring in (see the module docstring).

    Raises:
        ConfigError: a malformed number, or a country this table does not know
            (set the contact's time zone instead).
    """
    digits = e164_digits(number)
    if digits[0] == "1":
        return NANP_AREA.get(digits[1:4], NANP_ANY)
    if digits.startswith("61"):
        return AUSTRALIA.get(
            digits[2:3], tuple(dict.fromkeys(z for zs in AUSTRALIA.values() for z in zs))
        )
    for size in (3, 2, 1):
        zones = COUNTRY.get(digits[:size])
        if zones:
            return zones
    raise ConfigError(
        f"no time zone known for +{digits[:3]}...: set the contact's time zone explicitly"
    )
