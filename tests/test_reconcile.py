"""Three-way reconcile of one row: base (last agreed), sheet (typed now), store (now)."""
from __future__ import annotations

from sheetsync.model import Problem
from sheetsync.engine.reconcile import AS_STORED, RowInput, cell_texts, hold_back_taken_key, reconcile_row
from sheetsync.rules import CellResult
from sheetsync.store import BaseRow


def ok(field, value, raw=None):
    raw = value if raw is None else raw
    return CellResult(field, raw, value, "ok" if raw == value else "corrected", (), None if raw == value else "trim")


def bad(field, raw, code="type.email"):
    return CellResult(field, raw, None, "invalid", (Problem(code, field, {"value": raw}),))


def row(cells, base=None, record=None, *, protected=(), policy="flag", required=("id",)):
    return RowInput("C1", {c.field: c for c in cells}, base, record, ("id",), frozenset(required),
                    frozenset(protected), policy)


BASE = BaseRow("h", 2, {"id": "C1", "email": "a@x.cn", "limit": "100"}, {"id": "C1", "email": "a@x.cn", "limit": "100"}, 1)
RECORD = {"_key": "C1", "id": "C1", "email": "a@x.cn", "limit": 100, "_rev": 1, "_deleted": 0}


def test_new_row_is_inserted_and_corrections_written_back():
    d = reconcile_row(row([ok("id", "C1"), ok("email", "a@x.cn", " a@x.cn ")]))
    assert d.insert and not d.held_back
    assert d.store_values == {"id": "C1", "email": "a@x.cn"}
    assert d.writes == {"email": "a@x.cn"}
    assert d.marks["email"][0] == "corrected" and d.marks["email"][1]["old"] == " a@x.cn "


def test_new_row_with_invalid_required_field_is_held_back():
    d = reconcile_row(row([bad("id", "X1", "pattern"), ok("email", "a@x.cn")]))
    assert d.held_back and d.store_values == {}
    assert {p.code for p in d.problems} == {"pattern", "held_back"}
    assert d.marks["id"][0] == "invalid"


def test_invalid_value_never_enters_the_store_and_the_record_keeps_its_value():
    d = reconcile_row(row([ok("id", "C1"), bad("email", "bob@@x"), ok("limit", 100)], BASE, RECORD))
    assert "email" not in d.store_values and not d.held_back
    assert [(p.field, p.code) for p in d.problems] == [("email", "type.email")]


def test_only_the_sheet_changed_takes_the_sheet():
    d = reconcile_row(row([ok("id", "C1"), ok("email", "b@x.cn"), ok("limit", 100)], BASE, RECORD))
    assert d.store_values == {"email": "b@x.cn"} and d.writes == {} and not d.problems


def test_only_the_store_changed_is_pushed_to_the_sheet():
    record = {**RECORD, "email": "new@x.cn", "_rev": 2}
    d = reconcile_row(row([ok("id", "C1"), ok("email", "a@x.cn"), ok("limit", 100)], BASE, record))
    assert d.writes == {"email": "new@x.cn"} and d.store_values == {}
    assert d.marks["email"][0] == "pushed" and d.base_sheet["email"] == "new@x.cn"


def test_both_changed_differently_is_a_conflict_flagged_by_default():
    record = {**RECORD, "email": "store@x.cn", "_rev": 2}
    d = reconcile_row(row([ok("id", "C1"), ok("email", "sheet@x.cn"), ok("limit", 100)], BASE, record))
    assert d.store_values == {} and d.writes == {}
    assert [(p.field, p.code) for p in d.problems] == [("email", "conflict")]
    assert d.base_sheet["email"] == "a@x.cn"  # kept, so the conflict is seen again next run
    assert d.counts["conflicts"] == 1


def test_conflict_policies_store_and_sheet():
    record = {**RECORD, "email": "store@x.cn", "_rev": 2}
    cells = [ok("id", "C1"), ok("email", "sheet@x.cn"), ok("limit", 100)]
    store_wins = reconcile_row(row(cells, BASE, record, policy="store"))
    assert store_wins.writes == {"email": "store@x.cn"} and store_wins.marks["email"][0] == "conflict"
    sheet_wins = reconcile_row(row(cells, BASE, record, policy="sheet"))
    assert sheet_wins.store_values == {"email": "sheet@x.cn"} and sheet_wins.marks["email"][0] == "conflict"
    assert not store_wins.problems and not sheet_wins.problems


def test_both_changed_to_the_same_value_is_no_conflict():
    record = {**RECORD, "email": "same@x.cn", "_rev": 2}
    d = reconcile_row(row([ok("id", "C1"), ok("email", "same@x.cn"), ok("limit", 100)], BASE, record))
    assert not d.problems and d.store_values == {} and d.writes == {}


def test_protected_edit_is_reverted_to_the_store_value():
    d = reconcile_row(row([ok("id", "C1"), ok("email", "a@x.cn"), ok("limit", 999999)], BASE, RECORD,
                          protected=("limit",)))
    assert d.writes == {"limit": 100} and "limit" not in d.store_values
    kind, params = d.marks["limit"]
    assert kind == "protected" and params["attempted"] == "999999" and params["value"] == "100"


def test_protected_column_may_be_filled_on_a_new_row():
    d = reconcile_row(row([ok("id", "C1"), ok("limit", 100)], protected=("limit",)))
    assert d.store_values["limit"] == 100 and not d.writes


def test_a_deleted_record_comes_back_when_its_row_reappears():
    d = reconcile_row(row([ok("id", "C1"), ok("email", "a@x.cn")], None, {**RECORD, "_deleted": 1}))
    assert d.insert and d.store_values["email"] == "a@x.cn"


def test_invalid_mark_beats_a_correction_mark_on_one_cell():
    d = reconcile_row(row([ok("id", "C1")]))
    d.mark("id", "corrected", {})
    d.mark("id", "invalid", {})
    d.mark("id", "pushed", {})
    assert d.marks["id"][0] == "invalid"


def test_plain_new_row_is_decided_without_the_field_walk_but_the_same_way():
    cells = [ok("id", "C1"), ok("email", "a@x.cn"), ok("limit", 100), ok("note", None)]
    d = reconcile_row(row(cells))
    assert d.insert and not d.held_back and not d.writes and not d.marks and not d.problems
    assert d.store_values == {"id": "C1", "email": "a@x.cn", "limit": 100, "note": None}
    assert d.base_sheet is d.base_store is AS_STORED  # the base is the record's own values
    assert cell_texts({c.field: c for c in cells}) == {"id": "C1", "email": "a@x.cn", "limit": "100", "note": ""}


def test_new_keyless_row_of_empty_cells_is_still_held_back():
    empty = RowInput("row:7", {"a": ok("a", None), "b": ok("b", "")}, None, None, (), frozenset(), frozenset())
    assert reconcile_row(empty).held_back


def test_new_row_on_a_read_only_sheet_is_refused_even_when_clean():
    from sheetsync.layout import Access
    d = reconcile_row(row([ok("id", "C1")])._replace(access=Access(read_only=True)))
    assert d.held_back and d.problems[0].code == "read_only_new"


def test_a_row_whose_key_was_typed_over_keeps_its_base_and_changes_nothing():
    d = hold_back_taken_key("C1", "id", "C2", 3, BASE)
    assert d.held_back and not d.insert and d.store_values == {} and d.writes == {}
    assert d.base_sheet == BASE.sheet and d.base_store == BASE.store
    assert [(p.code, p.field, dict(p.params)) for p in d.problems] == [("key_taken", "id", {"key": "C2", "other_row": 3})]
    assert d.marks == {"id": ("invalid", {"code": "key_taken", "key": "C2", "other_row": 3})}


def test_a_correction_that_only_removes_hidden_characters_says_so(tmp_path):
    """On a real .xlsx: the note on `Bob<ZWSP> Smith<NBSP>` says two hidden characters were
    removed (English, and Chinese for a zh layout), not "changed from `Bob Smith` to `Bob Smith`"."""
    import openpyxl

    from sheetsync.engine import sync_once
    for lang, want in [("en", "removed 2 hidden character(s)"), ("zh", "已删除 2 个看不见的字符")]:
        book = tmp_path / f"{lang}.xlsx"
        wb = openpyxl.Workbook()
        wb.active.append(["ID", "Name", "Email"])
        wb.active.append(["C001", "Bob\u200b Smith\u00a0", "Bob@x.cn"])
        wb.save(book)
        layout = tmp_path / f"{lang}.yaml"
        layout.write_text(f"table: t_{lang}\nsource: {{kind: xlsx, path: {lang}.xlsx}}\nstore: s.db\nkey: id\n"
                          f"language: {lang}\ncolumns:\n  id: {{header: ID}}\n  name: {{header: Name}}\n"
                          "  email: {header: Email, type: email}\n", encoding="utf-8")
        sync_once(layout)
        ws = openpyxl.load_workbook(book).active
        assert ws["B2"].value == "Bob Smith"
        note = ws["B2"].comment.text
        assert want in note and "`Bob" not in note
        assert "`Bob@x.cn`" in ws["C2"].comment.text  # a visible change keeps "changed from ... to ..."
