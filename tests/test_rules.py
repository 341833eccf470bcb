"""RowChecker: raw rows in, canonical values, outcomes and problems out; uniqueness across rows."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sheetsync.layout import Layout
from sheetsync.rules import RowChecker, compile_rules, unique_problems

LAYOUT = Layout.model_validate({
    "table": "customers", "source": {"kind": "memory", "name": "m"}, "key": "customer_id",
    "columns": {
        "customer_id": {"required": True, "pattern": r"^C\d{5}$",
                        "normalise": ["strip_invisible", "nfkc", "trim", "upper"]},
        "name": {"required": True},
        "phone": {"type": "phone"},
        "email": {"type": "email", "required_if": {"field": "tier", "equals": "VIP"}},
        "signup_date": {"type": "date"},
        "end_date": {"type": "date"},
        "tier": {"type": "enum", "values": ["VIP", "Gold", "Standard"], "synonyms": {"贵宾": "VIP"}},
        "credit_limit": {"type": "integer", "min": 0, "protected": True},
        "raw_code": {"normalise": ["none"]},
    },
    "checks": [{"compare": {"left": "end_date", "op": ">=", "right": "signup_date"}}],
})


def checker() -> RowChecker:
    return compile_rules(LAYOUT)


def flat(result: Any) -> list[tuple[str, str]]:
    return [(p.field, p.code) for p in result.problems]


def test_clean_row_is_all_ok() -> None:
    row = {"customer_id": "C00001", "name": "Alice", "phone": "+86 138 0013 8000",
           "email": "a@acme.cn", "signup_date": "2024-03-05", "tier": "VIP", "credit_limit": 5000.0}
    result = checker().check(row)
    assert flat(result) == []
    assert {c.outcome for c in result.cells.values()} == {"ok"}
    assert result.valid["credit_limit"] == 5000 and result.valid["end_date"] is None
    assert set(result.cells) == set(LAYOUT.columns)


def test_messy_row_is_corrected_with_rule_names() -> None:
    row = {"customer_id": "\u200bｃ00042 ", "name": "\u00a0张\u3000三\u200b ", "phone": 13800138000.0,
           "email": " Bob@Acme.COM", "signup_date": 45356.0, "tier": "贵宾", "credit_limit": "１,２００"}
    result = checker().check(row)
    assert flat(result) == []
    got = {f: (c.value, c.outcome, c.rule) for f, c in result.cells.items() if c.outcome != "ok"}
    assert got == {
        "customer_id": ("C00042", "corrected", "strip_invisible, nfkc, trim, upper"),
        "name": ("张\u3000三", "corrected", "strip_invisible, trim"),  # the ideographic space is typed Chinese
        "phone": ("+86 138 0013 8000", "corrected", "phone"),
        "email": ("bob@acme.com", "corrected", "trim, email"),
        "signup_date": ("2024-03-05", "corrected", "date"),
        "tier": ("VIP", "corrected", "enum"),
        "credit_limit": (1200, "corrected", "nfkc, integer"),
    }


def test_all_phone_forms_give_one_value() -> None:
    rc = checker()
    forms = ["138 0013 8000", "+86-138-0013-8000", "１３８００１３８０００", 13800138000.0,
             "13800138000.0", "\u200b138 0013 8000\u00a0"]
    assert {rc.normalise("phone", f).value for f in forms} == {"+86 138 0013 8000"}
    assert rc.normalise("phone", "(0)21 5888 1234").value == "+86 21 5888 1234"


def test_invalid_cells_keep_no_value_and_name_the_problem() -> None:
    row = {"customer_id": "X1", "name": "", "phone": "12345", "email": "bob@@acme",
           "signup_date": "2024-02-30", "tier": "Platinum", "credit_limit": "12.5"}
    result = checker().check(row)
    assert flat(result) == [("customer_id", "pattern"), ("name", "required"), ("phone", "type.phone"),
                            ("email", "type.email"), ("signup_date", "type.date"), ("tier", "type.enum"),
                            ("credit_limit", "type.integer")]
    assert result.invalid_fields == {"customer_id", "name", "phone", "email", "signup_date", "tier",
                                     "credit_limit"}
    assert all(result.cells[f].value is None for f in result.invalid_fields)
    email = result.cells["email"].problems[0]
    assert email.params == {"field": "email", "value": "bob@@acme"} and email.row is None
    assert "end_date" in result.valid and "email" not in result.valid


def test_negative_credit_is_below_min() -> None:
    cell = checker().normalise("credit_limit", -5)
    assert (cell.outcome, cell.problems[0].code, cell.problems[0].params["limit"]) == ("invalid", "min", 0)


def test_formula_text_is_plain_text() -> None:
    cell = checker().normalise("name", "=cmd|' /C calc'!A0")
    assert (cell.value, cell.outcome) == ("=cmd|' /C calc'!A0", "ok")


def test_none_disables_normalisers_and_missing_fields_are_empty() -> None:
    rc = checker()
    assert rc.normalise("raw_code", " a\u200b ").value == " a\u200b "
    result = rc.check({"customer_id": "C00001", "name": "A"})
    assert result.cells["phone"].raw is None and result.cells["phone"].outcome == "ok"
    blank = rc.normalise("phone", "   ")
    assert (blank.value, blank.outcome, blank.rule) == (None, "corrected", "trim")


def test_required_if_and_compare_across_fields() -> None:
    base = {"customer_id": "C00001", "name": "A"}
    assert flat(checker().check({**base, "tier": "vip"})) == [("email", "required_if")]
    assert flat(checker().check({**base, "tier": "Gold"})) == []
    bad = checker().check({**base, "signup_date": "2024-03-05", "end_date": "2024/3/1"})
    assert flat(bad) == [("end_date", "compare")]
    assert bad.cells["end_date"].value is None and bad.valid["signup_date"] == "2024-03-05"
    assert bad.problems[0].params["right_value"] == "2024-03-05"
    ok = checker().check({**base, "signup_date": dt.datetime(2024, 3, 5), "end_date": "5 Mar 2024"})
    assert flat(ok) == []
    skipped = checker().check({**base, "signup_date": "bad", "end_date": "2024-01-01"})
    assert flat(skipped) == [("signup_date", "type.date")]


def unique_violations(field: str, values: dict, existing: dict) -> dict[str, str]:
    column = LAYOUT.columns["email"].model_copy(update={"unique": True})
    found = unique_problems(field, column, LAYOUT, values, existing)
    assert {p.code for p in found.values()} <= {"unique"}
    return {ident: p.params["other"] for ident, p in found.items()}


def test_unique_violations() -> None:
    batch = {"C1": "a@x.cn", "C2": "b@x.cn", "C3": "a@x.cn", "C4": None, "C5": "", "C6": "c@x.cn"}
    stored = {"C9": "b@x.cn", "C1": "old@x.cn", "C7": None, "C8": ""}
    assert unique_violations("email", batch, stored) == {"C3": "C1", "C2": "C9"}
    # a record keeping its own value does not collide with itself
    assert unique_violations("email", {"C9": "b@x.cn"}, stored) == {}
    assert unique_violations("n", {"a": 1, "b": 1.0}, {}) == {"b": "a"}


def test_unique_problems_come_from_the_unique_rule_only_for_unique_columns() -> None:
    # the Unique rule class was never built: the engine made Problem("unique") by hand
    plain = LAYOUT.columns["email"].model_copy(update={"unique": False})
    assert unique_problems("email", plain, LAYOUT, {"C1": "a@x.cn", "C2": "a@x.cn"}, {}) == {}
    column = plain.model_copy(update={"unique": True})
    found = unique_problems("email", column, LAYOUT, {"C1": "a@x.cn", "C2": "a@x.cn"}, {})
    assert [(i, p.code, p.field, p.params) for i, p in found.items()] == [
        ("C2", "unique", "email", {"field": "email", "value": "a@x.cn", "other": "C1"})]


def test_cache_returns_equal_results_and_distinguishes_types() -> None:
    rc = checker()
    assert rc.normalise("name", True).value == "TRUE"
    assert rc.normalise("name", 1).value == "1"
    assert rc.normalise("credit_limit", 1.0) is rc.normalise("credit_limit", 1.0)


def test_check_rows_column_by_column_equals_check_row_by_row() -> None:
    """The first sync's column-wise path must decide every cell exactly as check() does,
    cross-field rules, short rows, fields without a column and invalid cells included."""
    cols = {"customer_id": 0, "name": 1, "phone": 2, "email": 3, "signup_date": 4, "end_date": 5,
            "tier": 6, "credit_limit": 7}  # raw_code has no column: always empty
    rows = [
        ("c00001", "Alice", "138 0013 8000", "A@Acme.cn", "2024-03-05", "2024-03-06", "贵宾", 5000.0),
        ("C00002", "Bob", "12", "bad", "2024-03-05", "2024-03-01", "Gld", -1),
        ("C00003", "", None, None, "2024/03/05", None, "VIP"),  # short row, VIP without email
        ("X", "Cy"),
        ("C00001", "Alice", "138 0013 8000", "A@Acme.cn", "2024-03-05", "2024-03-06", "贵宾", 5000.0),
    ]
    fields = list(cols)
    expected = [checker().check({f: r[cols[f]] for f in fields if cols[f] < len(r)}) for r in rows]
    assert checker().check_rows(rows, cols) == expected
    assert [flat(r) for r in expected[2:4]] == [
        [("name", "required"), ("email", "required_if")], [("customer_id", "pattern")]]


def test_column_memo_keeps_equal_values_of_different_types_apart() -> None:
    rc = checker()
    out = rc.column("name", [1, 1.0, True, 1, "1"])
    assert [c.value for c in out] == ["1", "1", "TRUE", "1", "1"]
    assert out[0] is out[3]  # worked out once
    unhashable = rc.column("name", [["a"]])  # a custom connector's odd value: not memoised, no crash
    assert unhashable[0].outcome in ("ok", "corrected")


def test_check_rows_finds_the_one_bad_cell_among_clean_ones_of_any_type() -> None:
    """check_rows skips the per-row problem scan for fields that never had a problem; a bad cell
    memoised earlier, or an unhashable one, must still be found."""
    rc = checker()
    cols = {"customer_id": 0, "name": 1, "email": 2}
    rc.check({"customer_id": "C00009", "name": "Z", "email": "bad"})  # memoises the bad email
    rows = [("C00001", "A", "a@x.cn"), ("C00002", "B", "bad"), ("C00003", "C", "c@x.cn")]
    assert [flat(r) for r in rc.check_rows(rows, cols)] == [[], [("email", "type.email")], []]
    rows = [("C00004", ["unhashable"], "d@x.cn"), ("C00005", "E", "e@x.cn")]
    assert [r.problems == () for r in compile_rules(LAYOUT).check_rows(rows, cols)] == [True, True]
    rows = [("C00004", "D", "d@x.cn"), ("C0000X", "E", "e@x.cn")]
    assert [flat(r) for r in compile_rules(LAYOUT).check_rows(rows, cols)] == [[], [("customer_id", "pattern")]]


def _text_layout(**remark: Any) -> Layout:
    return Layout.model_validate({
        "table": "t", "source": {"kind": "memory", "name": "m"}, "key": "code",
        "columns": {"id": {"pattern": r"^C\d{3}$"}, "remark": remark, "code": {}, "tax_no": {"unique": True},
                    "tier": {"one_of": ["VIP", "Gold"]}, "qty": {"type": "integer"}}})


def test_free_text_keeps_chinese_punctuation_width_folding_stays_for_typed_fields() -> None:
    rc = compile_rules(_text_layout())
    for typed in ["退款，负数（客户要求）", "张三：ＶＩＰ客户！", "备注：“尽快”；见１号文件", "王　五"]:
        cell = rc.normalise("remark", typed)
        assert (cell.value, cell.outcome) == (typed, "ok")
    # the other defaults still apply to free text: hidden characters, spaces
    cell = rc.normalise("remark", " 退款，\u200b负数  （客户要求） ")
    assert (cell.value, cell.outcome, cell.rule) == ("退款，负数 （客户要求）", "corrected",
                                                     "strip_invisible, trim, collapse_spaces")
    # text with no CJK at all: full-width forms are typing slips, folded; CJK text is judged whole
    for typed, folded in [("Chris\u3000Zhao", "Chris Zhao"), ("Ｌｉ Ｎａ", "Li Na"), ("ok，thanks", "ok,thanks"),
                          ("客户（VIP）", "客户（VIP）"), ("Ｌｉ　娜", "Ｌｉ　娜")]:
        cell = rc.normalise("remark", typed)
        assert (cell.value, cell.outcome) == (folded, "ok" if typed == folded else "corrected"), typed
    # width folding stays where it means something
    assert rc.normalise("id", "Ｃ００１").value == "C001"          # an id pattern
    assert rc.normalise("code", "Ｃ００１").value == "C001"        # the key
    assert rc.normalise("tax_no", "９１１").value == "911"          # a unique column
    assert rc.normalise("tier", "ＶＩＰ").value == "VIP"            # matched against allowed values
    assert rc.normalise("qty", "１，２００").value == 1200            # a number
    # an admin asks for it on a text column
    rc = compile_rules(_text_layout(normalise=["nfkc", "trim"]))
    cell = rc.normalise("remark", "退款，负数（客户要求）")
    assert (cell.value, cell.outcome, cell.rule) == ("退款,负数(客户要求)", "corrected", "nfkc")


def test_a_workbook_with_chinese_punctuation_is_left_as_typed(tmp_path) -> None:
    """The whole run on a real .xlsx: the text cell is neither rewritten nor marked, the store
    holds it as typed, and a full-width phone in the same row is still folded."""
    import openpyxl

    from sheetsync.engine import sync_once
    book = tmp_path / "c.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["编号", "备注", "电话"])
    wb.active.append(["C001", "退款，负数（客户要求）", "１３８００１３８０００"])
    wb.save(book)
    layout = tmp_path / "c.yaml"
    layout.write_text("table: t\nsource: {kind: xlsx, path: c.xlsx}\nstore: s.db\nkey: id\ncolumns:\n"
                      "  id: {header: 编号}\n  remark: {header: 备注}\n  phone: {header: 电话, type: phone}\n",
                      encoding="utf-8")
    for _ in range(2):
        result = sync_once(layout)
    assert result.corrected == 0
    ws = openpyxl.load_workbook(book)["Sheet"]
    assert ws["B2"].value == "退款，负数（客户要求）" and ws["B2"].comment is None
    assert ws["B2"].fill.fill_type is None
    assert ws["C2"].value == "+86 138 0013 8000"
    import sqlite3
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute('SELECT "remark" FROM "t"').fetchone() == ("退款，负数（客户要求）",)


def _dates(values: list[str], layout_day_first: bool | None = None,
           **column: Any) -> list[tuple[Any, str, tuple[str, ...]]]:
    layout = Layout.model_validate({"table": "t", "source": {"kind": "memory", "name": "m"},
                                    "day_first": layout_day_first, "columns": {"day": {"type": "date", **column}}})
    rc = compile_rules(layout, [(v,) for v in values], {"day": 0})
    return [(c.value, c.outcome, tuple(p.code for p in c.problems)) for c in rc.column("day", values)]


def test_a_date_column_reads_day_and_month_in_one_order_its_own_dates_show() -> None:
    # 31/10 can only be day first: so 01/11 is 1 November, not 11 January
    assert _dates(["31/10/2017", "01/11/2017"]) == [("2017-10-31", "corrected", ()),
                                                    ("2017-11-01", "corrected", ())]
    assert _dates(["12/25/2017", "01/11/2017"])[1] == ("2017-01-11", "corrected", ())
    # no evidence, or both orders typed: a date that reads two ways is flagged, not guessed
    assert _dates(["01/11/2017", "2017-03-05"]) == [(None, "invalid", ("date_ambiguous",)),
                                                    ("2017-03-05", "ok", ())]
    mixed = _dates(["31/10/2017", "12/25/2017", "01/11/2017", "05/05/2017"])
    assert [m[1:] for m in mixed] == [("corrected", ()), ("corrected", ()), ("invalid", ("date_ambiguous",)),
                                      ("corrected", ())]
    # the layout decides when it says: then a date only the other order can read is flagged
    assert _dates(["01/11/2017", "31/10/2017"], day_first=False) == [
        ("2017-01-11", "corrected", ()), (None, "invalid", ("date_order",))]
    assert _dates(["01/11/2017"], layout_day_first=True) == [("2017-11-01", "corrected", ())]
    assert _dates(["01/11/2017"], layout_day_first=True, day_first=False)[0][0] == "2017-01-11"


def test_an_ambiguous_date_in_a_workbook_is_marked_with_both_readings(tmp_path) -> None:
    """End to end on a real .xlsx: dates typed as text, one workbook day-first, one with no
    evidence. The store holds the day-first readings; the ambiguous cell carries a note naming
    both readings (English and Chinese) and nothing is stored for it."""
    import sqlite3

    import openpyxl

    from sheetsync.engine import sync_once
    for name, dates, lang in [("a", ["31/10/2017", "01/11/2017"], "en"), ("b", ["03/04/2024", "2024-05-06"], "zh")]:
        wb = openpyxl.Workbook()
        wb.active.append(["ID", "Signed"])
        for i, text in enumerate(dates, start=1):
            wb.active.append([f"C{i:03d}", text])
        wb.save(tmp_path / f"{name}.xlsx")
        (tmp_path / f"{name}.yaml").write_text(
            f"table: {name}\nsource: {{kind: xlsx, path: {name}.xlsx}}\nstore: s.db\nkey: id\nlanguage: {lang}\n"
            "columns:\n  id: {header: ID}\n  signed: {header: Signed, type: date}\n", encoding="utf-8")
        sync_once(tmp_path / f"{name}.yaml")
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute('SELECT "id", "signed" FROM "a" ORDER BY "id"').fetchall() == [
        ("C001", "2017-10-31"), ("C002", "2017-11-01")]
    assert db.execute('SELECT "id", "signed" FROM "b" ORDER BY "id"').fetchall() == [
        ("C001", None), ("C002", "2024-05-06")]
    ws = openpyxl.load_workbook(tmp_path / "b.xlsx").active
    assert ws["B2"].value == "03/04/2024"
    assert "2024-04-03（日在前）" in ws["B2"].comment.text and "2024-03-04（月在前）" in ws["B2"].comment.text


def test_a_csv_with_chinese_punctuation_is_not_rewritten(tmp_path) -> None:
    from sheetsync.engine import sync_once
    csv_path = tmp_path / "c.csv"
    csv_path.write_bytes("编号,备注\r\nC001,退款，负数（客户要求）\r\nC002,王　五：已付款。\r\n".encode("utf-8"))
    before = csv_path.read_bytes()
    layout = tmp_path / "c.yaml"
    layout.write_text("table: t\nsource: {kind: csv, path: c.csv}\nstore: s.db\nkey: id\ncolumns:\n"
                      "  id: {header: 编号}\n  remark: {header: 备注}\n", encoding="utf-8")
    result = sync_once(layout)
    assert (result.inserted, result.corrected) == (2, 0)
    assert csv_path.read_bytes() == before
