"""Customers to and from CSV (`pbx customer import|export`). Pure: text in, rows out.

An import maps the file's header to the customer's fields: a column named like a field
(`number`, `name`, `company`, `email`, `notes`, `external_id`, any case) or a usual
synonym (`phone`, `telephone`, `full name`, `organisation` ...) is taken as it, and an
explicit mapping (`name=Full Name`) wins. Numbers are normalised to E.164 with a default
country. A bad row is reported by its line in the file (the header is line 1; a quoted
field spanning lines counts them all) and left out; the good rows are kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pbx.errors import ConfigError
from pbx.store.customers import FIELDS, Customer, CustomerFields, check_fields
from pbx.store.e164 import Country, normalise

__all__ = ["ImportResult", "RowError", "format_customers", "parse_customers", "parse_mapping"]

#: Rows an import reads at most (a bigger file is split by the user).
MAX_ROWS = 100_000
_ALIASES = {
    "number": ("number", "phone", "telephone", "tel", "phone number", "mobile", "msisdn"),
    "name": ("name", "full name", "fullname", "customer", "contact"),
    "company": ("company", "organisation", "organization", "account"),
    "email": ("email", "e-mail", "mail"),
    "notes": ("notes", "note", "comment", "comments"),
    "external_id": ("external_id", "external id", "crm id", "crm_id", "id"),
}


@dataclass(frozen=True, slots=True)
class RowError:
    """A row left out: its line in the file and why."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The good rows (with their lines) and the bad ones."""

    rows: list[tuple[int, CustomerFields]]
    errors: list[RowError]


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """`field=Header` pairs as a dict. Raises: ConfigError for a malformed pair or an
    unknown field."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, header = pair.partition("=")
        field = field.strip().lower()
        if not sep or not header.strip():
            raise ConfigError(f"mapping {pair!r}: write FIELD=Header")
        if field not in FIELDS:
            raise ConfigError(f"mapping {pair!r}: the fields are {', '.join(FIELDS)}")
        mapping[field] = header.strip()
    return mapping


def _columns(header: list[str], mapping: Mapping[str, str]) -> dict[str, int]:
    """field -> column index. Raises: ConfigError when number or name has no column."""
    folded = [h.strip().lower() for h in header]
    columns: dict[str, int] = {}
    for field in FIELDS:
        if field in mapping:
            want = mapping[field].strip().lower()
            if want not in folded:
                raise ConfigError(f"mapping {field}={mapping[field]}: no such column")
            columns[field] = folded.index(want)
            continue
        for alias in _ALIASES[field]:
            if alias in folded and folded.index(alias) not in columns.values():
                columns[field] = folded.index(alias)
                break
    missing = [f for f in ("number", "name") if f not in columns]
    if missing:
        raise ConfigError(
            f"no column for {' and '.join(missing)} in the header"
            f" ({', '.join(header)}); map one with FIELD=Header"
        )
    return columns


def parse_customers(
    text: str, default: Country | str, mapping: Mapping[str, str] | None = None
) -> ImportResult:
    """The customers of a CSV file's text (see the module doc).

    Raises: ConfigError when the file as a whole cannot be read (no header, no number
    or name column, too many rows, broken quoting).
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise ConfigError("the file is empty (a header line is needed)")
        columns = _columns(header, mapping or {})
        rows: list[tuple[int, CustomerFields]] = []
        errors: list[RowError] = []
        line = reader.line_num
        for count, record in enumerate(reader, 1):
            first, line = line + 1, reader.line_num
            if count > MAX_ROWS:
                raise ConfigError(f"more than {MAX_ROWS} rows; split the file")
            if not any(cell.strip() for cell in record):
                continue  # a blank line
            values = {f: record[i] if i < len(record) else "" for f, i in columns.items()}
            try:
                values["number"] = normalise(values["number"], default)
                rows.append((first, check_fields(CustomerFields(**values))))
            except ConfigError as exc:
                errors.append(RowError(first, str(exc)))
    except csv.Error as exc:
        raise ConfigError(f"line {reader.line_num}: {exc}") from None
    return ImportResult(rows, errors)


def format_customers(customers: Iterable[Customer]) -> str:
    """Customers as CSV with a header of the field names (what an import reads back)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for customer in customers:
        writer.writerow([_cell(getattr(customer, f)) for f in FIELDS])
    return out.getvalue()


def _cell(text: str) -> str:
    """Defuse a cell a spreadsheet would run as a formula (=, +, -, @ first), except a
    plain E.164 number."""
    if text[:1] in ("=", "-", "@", "\t", "\r") or (text.startswith("+") and not text[1:].isdigit()):
        return "'" + text
    return text
