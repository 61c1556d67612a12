"""A campaign's contact list from CSV (`pbx campaign import NAME FILE.csv`). Pure: text
in, contacts out.

The number comes from a column named like one (`number`, `phone`, `telephone`, `mobile`
..., any case; or `--map number=Header`), normalised to E.164 with a default country
(pbx.store.e164, as customer imports do); a `zone` / `timezone` column gives the
callee's IANA zone (else the dialer derives it from the number); every other column
becomes the customer record the agent's screen pop shows. A bad row is reported by its
line in the file (the header is line 1) and left out; the good rows are kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbx.errors import ConfigError
from pbx.store.contacts import NewContact
from pbx.store.customer_csv import RowError
from pbx.store.e164 import Country, normalise

__all__ = ["ContactImport", "parse_contacts"]

MAX_ROWS = 100_000
MAX_CELL = 500
_NUMBER = ("number", "phone", "telephone", "tel", "phone number", "mobile", "msisdn")
_ZONE = ("zone", "timezone", "time zone", "tz")


@dataclass(frozen=True, slots=True)
class ContactImport:
    """The good rows (with their lines) and the bad ones."""

    rows: list[tuple[int, NewContact]]
    errors: list[RowError]


def _column(folded: list[str], names: tuple[str, ...], mapped: str | None) -> int | None:
    if mapped is not None:
        want = mapped.strip().lower()
        if want not in folded:
            raise ConfigError(f"mapping {mapped}: no such column")
        return folded.index(want)
    return next((folded.index(n) for n in names if n in folded), None)


def _zone(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {text[:40]!r}") from None
    return text


def parse_contacts(
    text: str, default: Country | str | None, mapping: Mapping[str, str] | None = None
) -> ContactImport:
    """The contacts of a CSV file's text (see the module doc); `mapping` may name the
    `number` and `zone` columns. With no default country only numbers written with
    their country code ("+44 ...") are read; the others are bad rows.

    Raises: ConfigError when the file as a whole cannot be read (no header, no number
    column, too many rows, broken quoting).
    """
    mapping = mapping or {}
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise ConfigError("the file is empty (a header line is needed)")
        folded = [h.strip().lower() for h in header]
        number_at = _column(folded, _NUMBER, mapping.get("number"))
        if number_at is None:
            raise ConfigError(
                f"no number column in the header ({', '.join(header)}); map one with"
                " --map number=Header"
            )
        zone_at = _column(folded, _ZONE, mapping.get("zone"))
        extra = [(i, h.strip()) for i, h in enumerate(header) if i not in (number_at, zone_at)]
        rows: list[tuple[int, NewContact]] = []
        errors: list[RowError] = []
        line = reader.line_num
        for count, record in enumerate(reader, 1):
            first, line = line + 1, reader.line_num
            if count > MAX_ROWS:
                raise ConfigError(f"more than {MAX_ROWS} rows; split the file")
            if not any(cell.strip() for cell in record):
                continue
            try:
                cell = record[number_at] if number_at < len(record) else ""
                if default is None and not cell.strip().startswith("+"):
                    raise ConfigError(f"number {cell[:32]!r} has no country code: give --country")
                number = normalise(cell, default or "1")
                zone = (
                    _zone(record[zone_at]) if zone_at is not None and zone_at < len(record) else ""
                )
                fields = {}
                for i, name in extra:
                    value = record[i].strip() if i < len(record) else ""
                    if len(value) > MAX_CELL:
                        raise ConfigError(f"column {name!r} is over {MAX_CELL} characters")
                    if value and name:
                        fields[name] = value
                rows.append((first, NewContact(number, zone, fields)))
            except ConfigError as exc:
                errors.append(RowError(first, str(exc)))
    except csv.Error as exc:
        raise ConfigError(f"line {reader.line_num}: {exc}") from None
    return ContactImport(rows, errors)
