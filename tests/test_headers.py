"""rules/headers.py on its own: folding header text and mapping a header row to layout fields."""
from __future__ import annotations

import pytest

from sheetsync.errors import SourceError
from sheetsync.rules.headers import map_headers
from sheetsync.layout import Layout

WHERE = "customers.xlsx[Customers]"


def _layout(columns: dict, key: object = "id") -> Layout:
    return Layout.model_validate({"table": "customers", "source": {"kind": "memory", "name": "m"},
                                  "key": key, "columns": columns})


LAYOUT = _layout({
    "id": {"header": "Customer ID"},
    "name": {"header": "Name", "required": True},
    "phone": {"header": "Phone", "aliases": ["Tel", "手机"]},
    "email": {},  # header defaults to the field name
})


def test_map_headers_by_header_alias_and_field_name() -> None:
    header = ("customer id", "NAME", "Tel", "E-Mail")
    assert map_headers(header, LAYOUT, where=WHERE) == {"id": 0, "name": 1, "phone": 2, "email": 3}


def test_map_headers_reordered_columns_and_extra_columns() -> None:
    header = ("Notes", "Email", "手机", "Name", "Ｃｕｓｔｏｍｅｒ\u200b ID")
    assert map_headers(header, LAYOUT, where=WHERE) == {"email": 1, "phone": 2, "name": 3, "id": 4}


def test_map_headers_optional_columns_may_be_missing() -> None:
    assert map_headers(("Name", "Customer ID"), LAYOUT, where=WHERE) == {"name": 0, "id": 1}


def test_missing_required_column_names_field_and_lists_headers() -> None:
    with pytest.raises(SourceError) as info:
        map_headers(("Customer ID", "", "Phone"), LAYOUT, where=WHERE)
    err = info.value
    assert err.message == "required column(s) missing: 'name' (header 'Name')"
    assert err.where == WHERE
    assert "the header row has: 'Customer ID', 'Phone';" in err.hint  # the blank cell is not listed


def test_missing_key_column_is_refused_even_when_not_required() -> None:
    with pytest.raises(SourceError) as info:
        map_headers(("Name", "Phone"), LAYOUT, where=WHERE)
    assert info.value.message == "required column(s) missing: 'id' (header 'Customer ID')"
    assert "'Name', 'Phone'" in info.value.hint


def test_several_missing_columns_are_named_together() -> None:
    with pytest.raises(SourceError) as info:
        map_headers(("", " "), LAYOUT, where=WHERE)
    assert info.value.message == ("required column(s) missing: 'id' (header 'Customer ID'), "
                                  "'name' (header 'Name')")
    assert "the header row has: none;" in info.value.hint


def test_two_columns_folding_to_one_field_are_refused_naming_both_letters() -> None:
    with pytest.raises(SourceError) as info:
        map_headers(("Customer ID", "Name", "name ", "Phone"), LAYOUT, where=WHERE)
    assert info.value.message == "field 'name' matches several columns: B ('Name'), C ('name ')"
    assert info.value.where == WHERE


def test_header_and_alias_in_two_columns_are_ambiguous() -> None:
    with pytest.raises(SourceError) as info:
        map_headers(("Customer ID", "Name", "Phone", "Tel"), LAYOUT, where=WHERE)
    assert info.value.message == "field 'phone' matches several columns: C ('Phone'), D ('Tel')"


def test_composite_key_fields_are_required() -> None:
    layout = _layout({"region": {}, "code": {}, "note": {}}, key=["region", "code"])
    assert map_headers(("Code", "Region"), layout, where=WHERE) == {"code": 0, "region": 1}
    with pytest.raises(SourceError, match="'code' \\(header 'code'\\)"):
        map_headers(("Region", "Note"), layout, where=WHERE)


def test_two_fields_folding_onto_one_column_are_refused() -> None:
    # "Customer ID" and "Customer_ID" fold alike: before, both fields silently read column A
    layout = _layout({"customer_id": {"header": "Customer ID"}, "legacy_id": {"header": "Customer_ID"},
                      "name": {}}, key="customer_id")
    with pytest.raises(SourceError) as info:
        map_headers(("Customer ID", "Name"), layout, where=WHERE)
    assert info.value.message == "fields 'customer_id', 'legacy_id' all match column A ('Customer ID')"
    assert info.value.where == WHERE
    assert "header:" in info.value.hint


def test_a_set_header_replaces_the_field_name() -> None:
    # field `c2` with `header: Phone` no longer also grabs a column titled "C2"
    layout = _layout({"id": {}, "c2": {"header": "Phone"}})
    assert map_headers(("id", "C2", "Phone"), layout, where=WHERE) == {"id": 0, "c2": 2}
    assert map_headers(("id", "C2"), layout, where=WHERE) == {"id": 0}
