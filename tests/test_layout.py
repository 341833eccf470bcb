"""Layout loading: every mistake named by file, line and key; bombs and bad regexes refused."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sheetsync.errors import LayoutError
from sheetsync.layout_load import check_paths, format_issue, layout_schema, load_layout

GOOD = """\
table: customers
source:
  kind: xlsx
  path: customers.xlsx
key: customer_id
columns:
  customer_id:
    pattern: '^C\\d{5}$'
  phone:
    type: phone
  tier:
    type: enum
    values: [VIP, Gold]
    synonyms: {贵宾: VIP}
"""


def write(tmp_path: Path, text: str, name: str = "layout.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def issues_of(path: Path) -> list[tuple[int, str, str]]:
    with pytest.raises(LayoutError) as info:
        load_layout(path)
    assert info.value.exit_code == 2
    return [(line, key, msg) for _, line, key, msg in info.value.issues]


def test_good_layout_loads_with_defaults(tmp_path: Path) -> None:
    loaded = load_layout(write(tmp_path, GOOD, "customers.yaml"))
    assert loaded.name == "customers"
    assert loaded.layout.key_fields == ["customer_id"]
    assert loaded.resolve("customers.xlsx") == tmp_path.resolve() / "customers.xlsx"
    assert loaded.layout.columns["phone"].type == "phone"


def test_unknown_nested_key_names_line_key_and_suggestion(tmp_path: Path) -> None:
    text = GOOD.replace("    type: phone\n", "    type: phone\n    requird: true\n")
    assert issues_of(write(tmp_path, text)) == [
        (11, "columns.phone.requird", "unknown key; did you mean 'required'?")]


def test_wrong_type_bad_regex_unknown_normaliser_and_key_all_reported(tmp_path: Path) -> None:
    text = GOOD.replace("key: customer_id", "key: custmer_id").replace(
        "'^C\\d{5}$'", "'(C\\d{5}'\n    normalise: [trim, phnoe]\n    min_length: many")
    found = issues_of(write(tmp_path, text))
    keys = [(line, key) for line, key, _ in found]
    assert keys == [(5, "key"), (8, "columns.customer_id.pattern"),
                    (9, "columns.customer_id.normalise[1]"), (10, "columns.customer_id.min_length")]
    messages = [msg for _, _, msg in found]
    assert "did you mean 'customer_id'" in messages[0]
    assert messages[1].startswith("bad regex")
    assert messages[2].startswith("unknown rule 'phnoe'; known: trim") and "did you mean 'phone'" in messages[2]
    assert messages[3].startswith("wrong type") and "'many'" in messages[3]


def test_unknown_type_is_an_unknown_rule(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, GOOD.replace("type: phone", "type: phnoe")))
    assert found[0][:2] == (10, "columns.phone.type")
    assert "unknown rule 'phnoe'" in found[0][2] and "email" in found[0][2]


def test_semantic_checks(tmp_path: Path) -> None:
    text = GOOD.replace("synonyms: {贵宾: VIP}", "synonyms: {贵宾: Platinum}") + """\
  Phone:
    aliases: [' PHONE ']
  end:
    type: enum
    required_if: {field: tierr, equals: VIP}
checks:
  - compare: {left: end, op: '>=', right: start}
dedupe:
  exact: [[email]]
colours:
  invalid: red
region: XX
"""
    text = text.replace("  path: customers.xlsx\n", "")
    found = {key: (line, msg) for line, key, msg in issues_of(write(tmp_path, text))}
    assert found["source"][1] == "source.path is required for kind xlsx"
    assert found["columns.tier.synonyms.贵宾"][0] == 13
    assert found["columns.Phone.aliases[0]"][1] == "header text ' PHONE ' is also used by column 'phone'"
    assert found["columns.end.type"][1].startswith("type enum needs `values`")
    assert "did you mean 'tier'" in found["columns.end.required_if.field"][1]
    assert found["checks[0].compare.right"][1] == "compare right 'start' is not a column"
    assert found["dedupe.exact[0][0]"][1] == "dedupe field 'email' is not a column"
    assert found["colours.invalid"][1].startswith("colour must be 6 hex digits")
    assert found["region"][1].startswith("unknown phone region 'XX'")


def test_missing_required_key_points_at_parent(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, GOOD.replace("table: customers\n", "")))
    assert found == [(1, "table", "required key is missing")]


def test_gsheets_needs_an_id(tmp_path: Path) -> None:
    text = GOOD.replace("kind: xlsx", "kind: gsheets").replace("  path: customers.xlsx\n", "")
    assert issues_of(write(tmp_path, text)) == [(2, "source", "kind gsheets needs spreadsheet_id or url")]


def test_regex_needing_backtracking_refused(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, GOOD.replace("'^C\\d{5}$'", "'^(C)\\d+\\1$'")))
    assert found[0][:2] == (8, "columns.customer_id.pattern")
    assert found[0][2].startswith("unsafe regex: a back-reference") and "hint: " in found[0][2]


def test_alias_bomb_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    found = issues_of(write(tmp_path, "\n".join(lines) + "\n"))
    assert time.perf_counter() - start < 1.0
    assert "more than 10000 YAML nodes" in found[0][2]


def test_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = GOOD + "  credit:\n    <<: &money {type: integer, min: 0}\n  deposit: {<<: *money, required: true}\n"
    layout = load_layout(write(tmp_path, text)).layout
    assert layout.columns["deposit"].type == "integer" and layout.columns["deposit"].required


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, "table: t\nsource:\n  kind: [x\ncolumns: {}\n"))
    assert found[0][0] == 4 and "YAML syntax error" in found[0][2]
    assert issues_of(tmp_path / "nope.yaml") == [(0, "", "file not found")]


def test_python_tags_are_rejected(tmp_path: Path) -> None:
    found = issues_of(write(tmp_path, "table: !!python/object/apply:os.system ['echo hi']\n"))
    assert found[0][0] == 1 and "YAML syntax error" in found[0][2]


def test_check_paths_directory_and_format(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD.replace("table:", "tabel:"), "b.yml")
    (tmp_path / "notes.txt").write_text("not a layout")
    issues = check_paths([tmp_path])
    assert [format_issue(i) for i in issues] == [
        f"{tmp_path / 'b.yml'}:1: tabel: unknown key; did you mean 'table'?",
        f"{tmp_path / 'b.yml'}:1: table: required key is missing"]


def test_schema_is_json_with_columns() -> None:
    schema = layout_schema()
    assert schema["title"] == "sheetsync layout" and schema["$schema"].startswith("https://json-schema.org")
    assert "columns" in schema["properties"] and "Column" in schema["$defs"]
    json.dumps(schema)


def test_example_layouts_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    paths = [root / "layouts" / "customers.example.yaml"]
    assert check_paths(paths) == []
    layout = load_layout(paths[0]).layout
    assert layout.columns["credit_limit"].protected and layout.columns["tier"].synonyms


ARCHIVED = GOOD + """\
  status:
    type: enum
    values: [active, closed]
  end_date:
    type: date
backup:
  dir: ../backups
  encrypt: true
  key_file: backup.key
retention:
  keep_last: 3
  monthly: 12
archive:
  when:
    - {field: status, equals: closed}
    - {field: updated_at, older_than_days: 365}
    - {field: end_date, older_than_days: 30}
"""


def test_backup_retention_and_archive_keys_load(tmp_path: Path) -> None:
    layout = load_layout(write(tmp_path, ARCHIVED)).layout
    assert (layout.backup.dir, layout.backup.encrypt, layout.backup.enabled) == ("../backups", True, True)
    assert (layout.retention.keep_last, layout.retention.monthly, layout.retention.daily) == (3, 12, 32)
    assert [c.field for c in layout.archive.when] == ["status", "updated_at", "end_date"]
    assert layout.archive.tab == "archive" and layout.archive_table == "customers_archive"
    plain = load_layout(write(tmp_path, GOOD, "plain.yaml")).layout
    assert plain.archive is None and plain.archive_table is None and plain.backup.dir is None


def test_archive_mistakes_name_line_and_key(tmp_path: Path) -> None:
    text = GOOD + """\
  closed_on:
    type: date
retention:
  keep_lats: 3
archive:
  table: customers
  when:
    - {field: statsu, equals: closed}
    - {field: tier, older_than_days: 30}
    - {field: tier, equals: VIP, one_of: [Gold]}
    - {field: updated_at, equals: 3}
"""
    found = issues_of(write(tmp_path, text))
    keys = {key: (line, msg) for line, key, msg in found}
    assert keys["retention.keep_lats"][0] == 18 and "keep_last" in keys["retention.keep_lats"][1]
    assert keys["archive.table"][0] == 20
    assert keys["archive.when[0].field"][0] == 22 and "not a column" in keys["archive.when[0].field"][1]
    assert "date field" in keys["archive.when[1].field"][1]
    assert keys["archive.when[2]"][0] == 24 and "exactly one" in keys["archive.when[2]"][1]
    assert "older_than_days" in keys["archive.when[3].field"][1]
    bad_tab = issues_of(write(tmp_path, ARCHIVED + "  tab: 'old/closed'\n", "tab.yaml"))
    assert [(k, "1-31 characters" in m) for _, k, m in bad_tab] == [("archive.tab", True)]


@pytest.mark.parametrize("tab, why", [
    ("Customer problems and open questions", "1-31 characters"), ("问题:待办", "may not contain :"),
    ("a/b", "may not contain /"), ("[x]", "may not contain [ ]"), ("history", "History"),
    ("'quoted'", "apostrophe"), ("Sheet1", "the synced sheet"), ("  ", "1-31 characters")])
def test_report_tab_name_is_checked_against_excels_rules(tmp_path: Path, tab: str, why: str) -> None:
    text = GOOD.replace("  path: customers.xlsx\n", "  path: customers.xlsx\n  sheet: Sheet1\n")
    path = write(tmp_path, text + f"report_tab: {json.dumps(tab, ensure_ascii=False)}\n")
    (line, key, msg), = issues_of(path)
    assert (line, key) == (text.count("\n") + 1, "report_tab") and why in msg and repr(tab) in msg
    ok = write(tmp_path, text + "report_tab: 问题清单\n", "ok.yaml")
    assert check_paths([ok]) == []


@pytest.mark.parametrize("name", ["customers.xlsb", "customers.ods", "Customers.XLS"])
def test_check_refuses_workbook_kinds_sheetsync_cannot_write(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, GOOD.replace("customers.xlsx", name))
    (line, key, msg), = issues_of(path)
    assert (line, key) == (4, "source.path") and name in msg and "save it as an Excel Workbook (.xlsx)" in msg


def test_check_refuses_a_strict_open_xml_workbook_by_its_content(tmp_path: Path) -> None:
    from book_parts import simple_book, strict_book
    path = write(tmp_path, GOOD)
    strict_book(tmp_path / "customers.xlsx", [["customer_id"], ["C00001"]])
    (issue,) = check_paths([path])
    assert issue[1:3] == (4, "source.path") and "Strict Open XML" in issue[3]
    simple_book(tmp_path / "customers.xlsx", [["customer_id"], ["C00001"]])


def test_check_names_the_backup_key_a_layout_needs_here(tmp_path: Path, monkeypatch) -> None:
    from sheetsync.backup import generate_key
    monkeypatch.delenv("SHEETSYNC_BACKUP_KEY", raising=False)
    monkeypatch.delenv("SHEETSYNC_BACKUP_KEY_FILE", raising=False)
    path = write(tmp_path, GOOD + "backup:\n  encrypt: true\n")
    [(file, line, key, message)] = check_paths([path])
    assert (file, line, key) == (str(path), 16, "backup.encrypt")
    assert "SHEETSYNC_BACKUP_KEY" in message and "sheetsync snapshots keygen" in message
    write(tmp_path, GOOD + "backup:\n  encrypt: true\n  key_file: k.key\n")
    [(_, line, key, message)] = check_paths([path])  # the file named does not exist
    assert (line, key) == (17, "backup.key_file") and str(tmp_path / "k.key") in message
    (tmp_path / "k.key").write_text("not a key\n", encoding="ascii")
    [(_, _, key, message)] = check_paths([path])
    assert key == "backup.key_file" and "not a urlsafe-base64 32-byte key" in message
    (tmp_path / "k.key").write_text(generate_key() + "\n", encoding="ascii")
    assert check_paths([path]) == []
    write(tmp_path, GOOD + "backup:\n  encrypt: true\n")
    monkeypatch.setenv("SHEETSYNC_BACKUP_KEY", generate_key())
    assert check_paths([path]) == []


def test_check_refuses_two_fields_whose_headers_fold_alike(tmp_path: Path) -> None:
    # `check` used its own fold (no `_`/`-`): Customer ID and Customer_ID passed, then both
    # fields read the same column; the read and the check now share sheetsync.text.fold_header
    text = GOOD.replace("  customer_id:\n", "  customer_id:\n    header: Customer ID\n", 1)
    text = text.replace("  phone:\n", "  legacy_id:\n    header: Customer_ID\n  phone:\n", 1)
    found = {key: msg for _, key, msg in issues_of(write(tmp_path, text))}
    assert found == {"columns.legacy_id.header": "header text 'Customer_ID' is also used by column 'customer_id'"}
