"""Layout checks the schema alone cannot see: keys that must name columns, unique header texts,
source locations, archive rules. Run on the raw YAML data so they add to pydantic's errors.
`backup_key_issues` also looks at this machine (the key), so only `sheetsync check` runs it.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Mapping, Union

from .layout import ARCHIVE_TIMESTAMPS
from .text import fold_header

Path_ = tuple[Union[str, int], ...]  # keys and item indexes from the YAML root to one node


def _did_you_mean(word: str, known: list[str], always: bool = True) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known keys: {', '.join(known)}" if always and known else ""


#: a layout needs a way to tell rows apart other than their position
NO_IDENTITY = ("add `key:` (the column or columns that identify a record, such as a customer id) or "
               "`id_column:` (the header of an empty column sheetsync fills with record ids): without either, "
               "rows are known only by position, and inserting or sorting rows would give records their "
               "neighbours' data")


# -- cross-references the schema alone cannot see (run on the raw data, so they add to it) ------

def semantic_issues(data: dict) -> list[tuple[Path_, str]]:
    """Keys that name columns, enum values and synonyms, unique headers, source locations."""
    cols = data.get("columns")
    columns: dict = cols if isinstance(cols, dict) else {}
    out: list[tuple[Path_, str]] = []
    if isinstance(cols, dict) and not cols:
        out.append((("columns",), "a layout needs at least one column"))

    def ref(path: Path_, name: Any, what: str) -> None:
        if columns and isinstance(name, str) and name not in columns:
            out.append((path, f"{what} {name!r} is not a column" +
                        _did_you_mean(name, list(columns), always=False)))

    key = data.get("key")
    if not key and not data.get("id_column"):
        out.append((("key",), NO_IDENTITY))
    for i, name in _items(key):
        ref(("key",) if isinstance(key, str) else ("key", i), name, "key field")
    dedupe = data.get("dedupe") if isinstance(data.get("dedupe"), dict) else {}
    for i, group in _items(dedupe.get("exact")):
        for j, name in _items(group):
            ref(("dedupe", "exact", i, j), name, "dedupe field")
    for i, check in _items(data.get("checks")):
        compare = check.get("compare") if isinstance(check, dict) else None
        if isinstance(compare, dict):
            for side in ("left", "right"):
                ref(("checks", i, "compare", side), compare.get(side), f"compare {side}")
    for field, col in columns.items():
        if isinstance(col, dict):
            out.extend(_column_issues(field, col, ref))
    access = data.get("access") if isinstance(data.get("access"), dict) else {}
    scope = access.get("row_scope") if isinstance(access.get("row_scope"), dict) else {}
    if scope:
        ref(("access", "row_scope", "field"), scope.get("field"), "row_scope field")
    out.extend(_header_issues(columns))
    out.extend(_source_issues(data.get("source")))
    out.extend(_report_tab_issues(data))
    out.extend(_archive_issues(data, columns))
    return out


def _items(value: Any) -> list[tuple[int, Any]]:
    if isinstance(value, str):
        return [(0, value)]
    return list(enumerate(value)) if isinstance(value, list) else []


def _column_issues(field: str, col: dict, ref: Any) -> list[tuple[Path_, str]]:
    out: list[tuple[Path_, str]] = []
    base: Path_ = ("columns", field)
    required_if = col.get("required_if")
    if isinstance(required_if, dict):
        ref(base + ("required_if", "field"), required_if.get("field"), "required_if field")
    values = col.get("values")
    if col.get("type") == "enum" and not values:
        out.append((base + ("type",), "type enum needs `values` (the allowed values)"))
    synonyms = col.get("synonyms")
    if isinstance(values, list) and isinstance(synonyms, dict):
        for typed, target in synonyms.items():
            if target not in values:
                out.append((base + ("synonyms", typed), f"synonym target {target!r} is not one of "
                             f"values: {', '.join(map(str, values))}"))
    return out


def _header_issues(columns: dict) -> list[tuple[Path_, str]]:
    """Two fields whose header texts fold alike would read one column: the same fold as the read
    (sheetsync/text.py), and the same texts (`header:` else the field name, plus aliases)."""
    owner: dict[str, str] = {}
    out: list[tuple[Path_, str]] = []
    for field, col in columns.items():
        col = col if isinstance(col, dict) else {}
        header = col.get("header")
        texts: list[tuple[Path_, Any]] = [(("columns", field, "header") if header else
                                           ("columns", field), header or field)]
        texts += [(("columns", field, "aliases", i), a) for i, a in _items(col.get("aliases"))]
        for path, text in texts:
            if not isinstance(text, str):
                continue
            other = owner.setdefault(fold_header(text), field)
            if other != field:
                out.append((path, f"header text {text!r} is also used by column {other!r}"))
    return out


#: workbook files kind xlsx can read (calamine) but sheetsync cannot write back: refused up front,
#: not after a run has committed its changes
UNWRITABLE_SUFFIXES = {".xlsb": "an Excel binary workbook", ".xls": "an Excel 97-2003 workbook",
                       ".ods": "an OpenDocument spreadsheet", ".fods": "an OpenDocument spreadsheet",
                       ".numbers": "a Numbers spreadsheet"}
#: what Excel refuses in a sheet name (the report tab is created by sheetsync)
_TAB_CHARS = set("[]:*?/\\")


def _source_issues(source: Any) -> list[tuple[Path_, str]]:
    if not isinstance(source, dict):
        return []
    kind = source.get("kind")
    if kind in ("xlsx", "csv", "excel") and not source.get("path"):
        return [(("source",), f"source.path is required for kind {kind}")]
    suffix = str(source.get("path") or "").lower().rpartition(".")[2]
    if kind == "xlsx" and "." + suffix in UNWRITABLE_SUFFIXES:
        return [(("source", "path"), f"{source['path']} is {UNWRITABLE_SUFFIXES['.' + suffix]}: sheetsync "
                 "can read it but not write corrections back; open it in Excel and save it as an "
                 "Excel Workbook (.xlsx), then point source.path at the .xlsx file")]
    if kind == "gsheets" and not (source.get("spreadsheet_id") or source.get("url")):
        return [(("source",), "kind gsheets needs spreadsheet_id or url")]
    if kind == "memory" and not source.get("name"):
        return [(("source",), "kind memory needs name")]
    return []


def _report_tab_issues(data: dict) -> list[tuple[Path_, str]]:
    """Excel's rules for a sheet name, checked before a run creates the tab (not after it commits)."""
    tab = data.get("report_tab")
    if not isinstance(tab, str) or tab == "":  # "" and null both mean no report tab
        return []
    source = data.get("source")
    sheet = source.get("sheet") if isinstance(source, dict) else None
    bad = sorted(set(tab) & _TAB_CHARS)
    if not tab.strip() or len(tab) > 31:
        why = "must be 1-31 characters long"
    elif bad:
        why = "may not contain " + " ".join(bad) + " (Excel refuses [ ] : * ? / \\ in a sheet name)"
    elif tab.startswith("'") or tab.endswith("'"):
        why = "may not begin or end with an apostrophe"
    elif tab.casefold() == "history":
        why = "may not be History (Excel reserves that name)"
    elif isinstance(sheet, str) and tab.casefold() == sheet.casefold():
        why = "is the synced sheet itself; pick another name"
    else:
        return []
    return [(("report_tab",), f"report tab {tab!r} {why}")]


def _archive_issues(data: dict, columns: dict) -> list[tuple[Path_, str]]:
    """Archive conditions name real fields; age tests need a date field or a store timestamp."""
    archive = data.get("archive")
    if not isinstance(archive, dict):
        return []
    out: list[tuple[Path_, str]] = []
    for i, cond in _items(archive.get("when")):
        if not isinstance(cond, dict) or not isinstance(cond.get("field"), str):
            continue
        name, path = cond["field"], ("archive", "when", i, "field")
        col = columns.get(name)
        if name in ARCHIVE_TIMESTAMPS:
            if "older_than_days" not in cond:
                out.append((path, f"{name!r} is the record's store time: use older_than_days"))
        elif not isinstance(col, dict):
            if name not in columns:
                known = list(columns) + list(ARCHIVE_TIMESTAMPS)
                out.append((path, f"archive field {name!r} is not a column or updated_at/"
                            "created_at" + _did_you_mean(name, known, always=False)))
        elif "older_than_days" in cond and col.get("type") not in ("date", "datetime"):
            out.append((path, f"older_than_days needs a date field or updated_at; {name!r} is "
                        f"type {col.get('type', 'string')}"))
    table, own = data.get("table"), archive.get("table")
    if isinstance(own, str) and (own == table or own.startswith("_sheetsync")):
        out.append((("archive", "table"), f"archive table {own!r} must differ from the live "
                    "table and not start with _sheetsync"))
    tab, source = archive.get("tab"), data.get("source")
    sheet = source.get("sheet") if isinstance(source, dict) else None
    if isinstance(tab, str) and tab in (sheet, data.get("report_tab", "sheetsync")):
        out.append((("archive", "tab"), f"archive tab {tab!r} is the synced sheet or the report tab"))
    elif isinstance(tab, str) and (not tab.strip() or len(tab) > 31 or set(tab) & set("[]:*?/\\")):
        out.append((("archive", "tab"), "a tab name is 1-31 characters without [ ] : * ? / \\"))
    return out




def backup_key_issues(data: dict, folder: Path, env: Mapping[str, str]) -> list[tuple[Path_, str]]:
    """`backup.encrypt: true` needs a key here: a readable `backup.key_file`, or
    SHEETSYNC_BACKUP_KEY(_FILE). Without one every run would sync and then fail its backup."""
    from .backup.crypto import ENV_KEY, ENV_KEY_FILE, load_key
    from .errors import SheetsyncError

    backup = data.get("backup") if isinstance(data.get("backup"), dict) else {}
    key_file = backup.get("key_file")
    if backup.get("encrypt") is not True and not isinstance(key_file, str):
        return []
    where: Path_ = ("backup", "key_file") if isinstance(key_file, str) else ("backup", "encrypt")
    try:
        key = load_key(env, folder / Path(key_file).expanduser() if isinstance(key_file, str) else None)
    except SheetsyncError as exc:
        return [(where, f"{exc.where}: {exc.message}; hint: {exc.hint}")]
    if key is None and backup.get("encrypt") is True:
        return [(where, f"set to true but no backup key is given: set {ENV_KEY} or "
                 f"{ENV_KEY_FILE} where sheetsync runs, or backup.key_file; hint: make a key "
                 "with `sheetsync snapshots keygen --out FILE`")]
    return []
