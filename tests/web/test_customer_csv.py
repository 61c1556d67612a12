"""Customer CSV import and export (pbx.store.customer_csv): header mapping, E.164 with a
default country, bad rows reported by their line and the good ones kept."""

from __future__ import annotations

import pytest

from pbx.errors import ConfigError
from pbx.store.customer_csv import format_customers, parse_customers, parse_mapping
from pbx.store.customers import Customer, CustomerFields


def test_synonyms_and_default_country_and_bad_rows_by_line() -> None:
    text = (
        "Full Name,Phone,Company,E-mail\n"
        "Ada Lovelace,020 7946 0123,Analytical Engines,ada@example.org\n"
        "No Number,,Acme,\n"
        "\n"
        '"Grace ""Amazing"" Hopper","+1 (415) 555-0100","US Navy",\n'
        "Bad Digits,0800 CALL ME,,\n"
        ",020 7946 0999,,\n"
        '"Multi\nLine",030 1234 5678,,\n'
        "Short,1001,,\n"
    )
    result = parse_customers(text, "GB")
    assert [(line, r.name, r.number, r.company) for line, r in result.rows] == [
        (2, "Ada Lovelace", "+442079460123", "Analytical Engines"),
        (5, 'Grace "Amazing" Hopper', "+14155550100", "US Navy"),
    ]
    assert [(e.line, e.message) for e in result.errors] == [
        (3, "number is empty"),
        (6, "number '0800 CALL ME' has characters other than digits"),
        (7, "name is empty"),
        (8, "name has control characters"),
        (10, "number '1001' is too short for a telephone number"),
    ]


def test_explicit_mapping_wins_over_synonyms() -> None:
    text = "name,Mobile,Office\nBob,07700 900123,020 7946 0000\n"
    mapping = parse_mapping(["number=Office"])
    [(line, row)] = parse_customers(text, "GB", mapping).rows
    assert (line, row.number) == (2, "+442079460000")


@pytest.mark.parametrize(
    ("text", "mapping", "message"),
    [
        ("", {}, "the file is empty"),
        ("company,email\nAcme,a@b\n", {}, "no column for number and name"),
        ("name,phone\n", {"number": "Tel"}, "number=Tel: no such column"),
    ],
)
def test_whole_file_errors(text: str, mapping: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_customers(text, "GB", mapping)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [(["number"], "write FIELD=Header"), (["phone=Tel"], "the fields are"), (["name="], "write")],
)
def test_bad_mappings(pairs: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_mapping(pairs)


def test_export_reads_back_and_defuses_formulas() -> None:
    customers = [
        Customer(1, "+442079460123", "Ada, Countess", "=HYPERLINK(1)", "", "a\nb", "x1", 0, 0),
        Customer(2, "+14155550100", "Grace", "", "g@example.org", "", "", 0, 0),
    ]
    text = format_customers(customers)
    assert text.splitlines()[0] == "number,name,company,email,notes,external_id"
    rows = [r for _, r in parse_customers(text, "GB").rows]
    assert rows[0] == CustomerFields(
        "+442079460123", "Ada, Countess", "'=HYPERLINK(1)", "", "a\nb", "x1"
    )
    assert rows[1] == CustomerFields("+14155550100", "Grace", "", "g@example.org", "", "")
