"""Layouts: one YAML file binds one worksheet to one store table. Pydantic models, extra keys forbidden.

load_layout() reports every mistake as (file, line, key, message) so `sheetsync check` can print
`file:line: key: message`.
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable, Literal, Union, get_args, get_origin

import phonenumbers
import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from .backup.retention import RetentionPolicy
from .errors import LayoutError
from .rules.pattern import compile_pattern

Issue = tuple[str, int, str, str]  # (file, line, dotted.key, message)
#: a layout expands to at most this many YAML nodes (aliases counted each time they are used)
MAX_NODES = 10_000
_HEX = re.compile(r"[0-9A-Fa-f]{6}")

FieldType = Literal["string", "integer", "number", "decimal", "boolean", "date", "datetime",
                    "enum", "email", "phone", "url"]
Normaliser = Literal["trim", "collapse_spaces", "nfkc", "strip_invisible", "lower", "upper", "title",
                     "phone", "date", "none"]
Colour = str  # "RRGGBB"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_region(value: str) -> str:
    region = value.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        close = difflib.get_close_matches(region, sorted(phonenumbers.SUPPORTED_REGIONS), n=3)
        raise ValueError(f"unknown phone region {value!r}" + (f"; did you mean {', '.join(close)}?"
                                                             if close else " (use e.g. CN, US, GB)"))
    return region


class RequiredIf(Strict):
    """This column is required when `field` equals (or is one of) the given value(s)."""

    field: str
    equals: Union[str, int, float, bool, None] = None
    one_of: list[Union[str, int, float, bool]] | None = None
    not_empty: bool = False


class Column(Strict):
    """One field of the table and the sheet column it comes from."""

    header: str | None = None            # header text in the sheet; defaults to the field name
    aliases: list[str] = []              # other header texts accepted (case/space-insensitive)
    type: FieldType = "string"
    required: bool = False
    required_if: RequiredIf | None = None
    protected: bool = False              # the sheet may not change it; edits are reverted
    normalise: list[Normaliser] | None = None  # None = the type's defaults
    pattern: str | None = None           # regex the normalised value must match (full match)
    min: float | None = None             # numbers: value; dates: use min_date/max_date
    max: float | None = None
    min_date: str | None = None
    max_date: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    one_of: list[str] | None = None      # allowed values (any type), compared after normalising
    values: list[str] | None = None      # type enum: the canonical values
    synonyms: dict[str, str] = {}        # type enum: typed text -> canonical value
    fuzzy: float = 0.85                  # type enum: near-miss correction threshold (0..1, 1 = off)
    unique: bool = False                 # no two records may share the value
    region: str | None = None            # type phone: default region, else the layout's
    format: Literal["E164", "international", "national"] | None = None  # type phone output
    input_formats: list[str] = []        # type date/datetime: extra strptime formats tried first
    day_first: bool = False              # type date: 03/04/2024 is 3 April
    decimals: int | None = None          # type decimal: places kept
    true_values: list[str] = []          # type boolean: extra words for true/false
    false_values: list[str] = []

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_pattern(value)
            except re.error as exc:
                raise ValueError(f"bad regex: {exc}") from None
            except ValueError as exc:
                raise ValueError(f"unsafe regex: {exc}") from None
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else _check_region(value)

    @field_validator("fuzzy")
    @classmethod
    def _fuzzy(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError("fuzzy must be between 0 and 1 (1 = no near-miss correction)")
        return value

    @field_validator("min_date", "max_date")
    @classmethod
    def _date(cls, value: str | None) -> str | None:
        from .rules.dates import parse_date
        if value is not None and parse_date(str(value)) is None:
            raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD)")
        return value


class CompareCheck(Strict):
    """Cross-field rule without code: `left op right`, e.g. end_date >= start_date."""

    left: str
    op: Literal["<", "<=", "==", "!=", ">=", ">"]
    right: str
    message: str | None = None


class Check(Strict):
    compare: CompareCheck


class Source(Strict):
    kind: Literal["xlsx", "csv", "gsheets", "excel", "memory"]
    path: str | None = None              # xlsx/csv/excel: file, relative to the layout file
    sheet: str | None = None             # worksheet (tab) name; default the first one
    header_row: int = Field(1, ge=1)     # rows above it (titles) are ignored
    encoding: str | None = None          # csv: default the ladder utf-8-sig -> gb18030
    delimiter: str | None = None         # csv: default sniffed
    allow_feature_loss: bool = False     # xlsx: write even if openpyxl would drop parts
    totals_row: bool = False             # xlsx: the last row is a totals row, not data
    spreadsheet_id: str | None = None    # gsheets
    url: str | None = None               # gsheets: alternative to spreadsheet_id
    credentials: str | None = None       # gsheets: service-account or OAuth file
    endpoint: str | None = None          # gsheets: API root, e.g. the local emulator
    save: bool = False                   # excel: save the workbook after writing
    name: str | None = None              # memory: name of a registered in-memory sheet


class Dedupe(Strict):
    exact: list[list[str]] = []          # each entry: fields whose normalised values must all match
    block_on: list[str] = []             # issue 4: blocking keys for fuzzy matching
    fields: dict[str, str] = {}          # issue 4: field -> comparator
    weights: dict[str, float] | None = None
    flag_above: float = 0.9


class RowScope(Strict):
    """The rows a sheet may create and edit, e.g. the East team's sheet: region equals East."""

    field: str
    equals: Union[str, int, float, bool, None] = None
    one_of: list[Union[str, int, float, bool]] | None = None

    def allows(self, value: object) -> bool:
        from .model import canonical_text
        text = canonical_text(value)
        allowed = self.one_of if self.one_of is not None else [self.equals]
        return text in {canonical_text(v) for v in allowed}

    def describe(self) -> str:
        return "one of " + ", ".join(map(str, self.one_of)) if self.one_of is not None else f"= {self.equals}"


class Access(Strict):
    """Access rules beyond protected columns: a read-only sheet only receives store data."""

    read_only: bool = False
    row_scope: RowScope | None = None


class Colours(Strict):
    corrected: Colour = "C6EFCE"
    invalid: Colour = "FFC7CE"
    duplicate: Colour = "FFD8A8"
    conflict: Colour = "FFEB9C"
    protected: Colour = "D9D2E9"
    pushed: Colour = "DDEBF7"

    @field_validator("*")
    @classmethod
    def _hex(cls, value: str) -> str:
        text = value.lstrip("#") if isinstance(value, str) else value
        if not isinstance(text, str) or not _HEX.fullmatch(text):
            raise ValueError(f"colour must be 6 hex digits like C6EFCE, not {value!r}")
        return text.upper()


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> float:
    """'90s', '15m', '1h', '1d', '1h30m' -> seconds; ValueError names the accepted forms."""
    compact = str(text).strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 1h, 1d or 1h30m)")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"a duration must be more than 0 seconds, not {text!r}")
    return seconds


class Schedule(Strict):
    every: str = "1h"                    # e.g. 15m, 1h, 1d

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        duration_seconds(value)
        return value

    @property
    def seconds(self) -> float:
        return duration_seconds(self.every)


class WebhookTarget(Strict):
    """An alert as a JSON POST. Secret headers come from the environment, never from the YAML."""

    url: str
    headers: dict[str, str] = {}         # plain headers (no secrets: the layout is not secret)
    headers_env: dict[str, str] = {}     # header -> environment variable holding its value
    timeout: float = Field(10.0, gt=0, le=120)
    retries: int = Field(2, ge=0, le=10)  # extra attempts after a failed POST (5xx, timeout)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"webhook url must start with http:// or https://, not {value[:40]!r}")
        return value


class EmailTarget(Strict):
    """An alert by SMTP. The password comes from the environment variable `password_env`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str
    port: int = Field(25, ge=1, le=65535)
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    ssl: bool = False                    # SMTP over TLS from the start (port 465)
    username: str | None = None
    password_env: str | None = None
    timeout: float = Field(10.0, gt=0, le=120)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address or any(c in address for c in "\r\n,;"):
                raise ValueError(f"not one email address: {address!r}")
        return value


class Alerts(Strict):
    """When to tell an admin (failed run, partial streak, invalid share) and where (webhook, email)."""

    webhook: WebhookTarget | None = None
    email: EmailTarget | None = None
    on_failure: bool = True
    partial_streak: int | None = Field(3, ge=1)        # None = never alert on partial runs
    invalid_share_above: float | None = Field(None, ge=0, le=1)
    remind_every: str = "1d"             # an alert still active is sent again at most this often
    recovered: bool = True               # say so when an alerted condition clears

    @field_validator("remind_every")
    @classmethod
    def _remind(cls, value: str) -> str:
        duration_seconds(value)
        return value


class AlertsFile(Strict):
    """The global alerts file ($SHEETSYNC_ALERTS): the same `alerts:` section a layout has."""

    alerts: Alerts


class Backup(Strict):
    """Where snapshots go and whether they are encrypted (issue 5)."""

    dir: str | None = None               # relative to the layout; default $SHEETSYNC_BACKUP_DIR,
                                         # else "backups" next to the store
    encrypt: bool = False                # key from key_file, else $SHEETSYNC_BACKUP_KEY
    key_file: str | None = None          # relative to the layout file
    enabled: bool = True                 # snapshot after every run that changed something


#: field names an archive condition may use besides the layout's columns (store timestamps)
ARCHIVE_TIMESTAMPS = {"updated_at": "_updated_at", "created_at": "_created_at"}


class ArchiveCondition(Strict):
    """One test on a record, declarative: exactly one of equals, one_of, older_than_days."""

    field: str
    equals: Union[str, int, float, bool, None] = None
    one_of: list[Union[str, int, float, bool]] | None = None
    older_than_days: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_test(self) -> "ArchiveCondition":
        given = [k for k in ("equals", "one_of", "older_than_days") if k in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("a condition needs exactly one of equals, one_of, older_than_days"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


class Archive(Strict):
    """Records matching every condition move to the archive table (and tab) on `sheetsync archive`."""

    when: list[ArchiveCondition] = Field(min_length=1)
    tab: str | None = "archive"          # tab (xlsx) or NAME.archive.csv beside a csv; None = store only
    table: str | None = None             # default "<table>_archive"


class Layout(Strict):
    """The whole of one layouts/*.yaml file."""

    version: Literal[1] = 1
    name: str | None = None              # defaults to the file name without .yaml
    table: str                           # store table; several layouts may share one
    source: Source
    key: list[str] | str | None = None   # field(s) identifying a record; None = row-managed id
    id_column: str | None = None         # no key: header of a column sheetsync fills with record ids
    columns: dict[str, Column]
    checks: list[Check] = []
    language: Literal["en", "zh"] = "en"
    region: str = "CN"                   # default phone region
    phone_format: Literal["E164", "international", "national"] = "international"
    dedupe: Dedupe = Dedupe()
    conflict: Literal["store", "sheet", "flag"] = "flag"
    colours: Colours = Colours()
    report_tab: str | None = "sheetsync"  # None = no report tab
    access: Access = Access()            # read-only sheets and row scopes
    store: str | None = None             # SQLite file; default sheetsync.db next to the layout
    schedule: Schedule = Schedule()
    backup: Backup = Backup()
    retention: RetentionPolicy = RetentionPolicy()
    archive: Archive | None = None
    alerts: Alerts | None = None         # default: the global alerts file, if any

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return _check_region(value)

    @property
    def key_fields(self) -> list[str]:
        if self.key is None:
            return []
        return [self.key] if isinstance(self.key, str) else list(self.key)

    @property
    def archive_table(self) -> str | None:
        """The store table archived records move to; None when the layout has no archive rule."""
        if self.archive is None:
            return None
        return self.archive.table or f"{self.table}_archive"


class LoadedLayout(BaseModel):
    """A validated layout plus where it came from (paths in it are relative to `path`)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    layout: Layout
    path: Path
    name: str

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.path.parent / p)


# -- loading: YAML with line numbers, every mistake as (file, line, key, message) ---------------

Path_ = tuple[Union[str, int], ...]


class _Loader(yaml.SafeLoader):
    """Safe loader (no tags beyond plain YAML) that counts nodes before building anything.

    Aliases are allowed (`<<: *defaults` shares column settings) but a document that expands to
    more than MAX_NODES nodes is refused, so an alias bomb costs milliseconds, not memory.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _count_nodes(node)
        return super().construct_document(node)


def _count_nodes(root: yaml.Node) -> None:
    seen, stack = 0, [root]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise LayoutError(
                f"the layout expands to more than {MAX_NODES} YAML nodes (aliases counted each use)",
                hint="a layout is a few hundred keys; remove the repeated &anchor/*alias use")
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _lines(node: yaml.Node, path: Path_, out: dict[Path_, int]) -> None:
    """Record the 1-based line of every key and item (after the node count made this safe)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                sub = path + (key_node.value,)
                out.setdefault(sub, key_node.start_mark.line + 1)
                _lines(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.setdefault(path + (i,), item.start_mark.line + 1)
            _lines(item, path + (i,), out)


def _read_yaml(path: Path) -> tuple[Any, dict[Path_, int]]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LayoutError("layout file not found", where=where, issues=[(where, 0, "", "file not found")],
                          hint="check the path; layouts live in layouts/*.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LayoutError(f"cannot read layout: {exc}", where=where, issues=[(where, 0, "", str(exc))],
                          hint="save the layout as UTF-8 text") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        message = f"YAML syntax error: {exc.problem or exc}"
        raise LayoutError(message, where=f"{where}:{line}", issues=[(where, line, "", message)],
                          hint="fix the YAML syntax (indentation, quotes, colons)") from None
    except yaml.YAMLError as exc:
        raise LayoutError(f"YAML error: {exc}", where=where, issues=[(where, 0, "", str(exc))],
                          hint="fix the YAML syntax") from None
    except LayoutError as exc:
        raise LayoutError(exc.message, where=where, hint=exc.hint,
                          issues=[(where, 1, "", exc.message)]) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is not None:
        lines[()] = 1
        _lines(node, (), lines)
    return data, lines


def load_layout(path: str | Path) -> LoadedLayout:
    """Read and validate one layout file; raise LayoutError listing every mistake found."""
    path = Path(path)
    data, lines = _read_yaml(path)
    issues = layout_issues(str(path), data, lines)
    if issues:
        first = format_issue(issues[0])
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        raise LayoutError(f"invalid layout: {first}{more}", where=str(path), issues=issues,
                          hint="fix the keys listed; `sheetsync check` prints every mistake")
    layout = Layout.model_validate(data)
    return LoadedLayout(layout=layout, path=path.resolve(), name=layout.name or path.stem)


def layout_issues(file: str, data: Any, lines: dict[Path_, int]) -> list[Issue]:
    """Every mistake in a parsed layout: schema errors, then cross-references between keys."""
    if not isinstance(data, dict):
        return [(file, 1, "", "a layout must be a mapping of keys (table, source, columns, ...)")]
    found: dict[tuple[str, str], int] = {}
    try:
        Layout.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path, key = _data_path(err["loc"], data, err["type"])
            found.setdefault((key, _message(err, path)), _line(lines, path))
    for path, message in semantic_issues(data):
        found.setdefault((_dotted(path), message), _line(lines, path))
    issues = [(file, line, key, msg) for (key, msg), line in found.items()]
    return _merge_unions(sorted(issues, key=lambda i: (i[1], i[2])))


def load_alerts_file(path: str | Path) -> Alerts:
    """Read the global alerts file (top key `alerts:`, as in a layout) with file:line:key errors."""
    path = Path(path)
    data, lines = _read_yaml(path)
    file = str(path)
    if not isinstance(data, dict):
        issues: list[Issue] = [(file, 1, "", "an alerts file is a mapping with one key, alerts:")]
    else:
        found: dict[tuple[str, str], int] = {}
        try:
            AlertsFile.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                at, key = _data_path(err["loc"], data, err["type"])
                found.setdefault((key, _message(err, at)), _line(lines, at))
        issues = sorted(((file, line, key, msg) for (key, msg), line in found.items()),
                        key=lambda i: (i[1], i[2]))
    if issues:
        raise LayoutError(f"invalid alerts file: {format_issue(issues[0])}", where=file, issues=issues,
                          hint="fix the keys listed; the alerts section is described in docs/scheduling.md")
    return AlertsFile.model_validate(data).alerts


def _merge_unions(issues: list[Issue]) -> list[Issue]:
    """A union (`key: str | list`) fails once per member: report one wrong-type line per key."""
    out: list[Issue] = []
    for issue in issues:
        prev = out[-1] if out else None
        if prev and prev[1:3] == issue[1:3] and "wrong type" in prev[3] and "wrong type" in issue[3]:
            out[-1] = (*prev[:3], prev[3].split(" (got")[0] + " or " +
                       issue[3].removeprefix("wrong type: "))
        else:
            out.append(issue)
    return out


def _data_path(loc: Iterable[Any], data: Any, kind: str) -> tuple[Path_, str]:
    """The loc parts that exist in the data (union member tags dropped), and the dotted key."""
    path: list[Union[str, int]] = []
    node = data
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif kind == "missing" and i == len(parts) - 1:
            return tuple(path), _dotted(tuple(path) + (part,))
    return tuple(path), _dotted(tuple(path))


def _dotted(path: Path_) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")


def _line(lines: dict[Path_, int], path: Path_) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _message(err: Any, path: Path_) -> str:
    kind, got = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return "unknown key" + _did_you_mean(str(path[-1]) if path else "", _known_keys(path))
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        known = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", "")) or \
            [err.get("ctx", {}).get("expected", "")]
        fields = [p for p in path if isinstance(p, str)]
        what = "rule" if fields and fields[-1] in ("type", "normalise") else "value"
        return (f"unknown {what} {got!r}; known: {', '.join(known)}"
                + _did_you_mean(str(got), known, always=False))
    text = str(err["msg"]).removeprefix("Value error, ")
    if kind == "value_error" or kind.startswith("assertion"):
        return text
    return f"wrong type: {text.replace('Input should be ', 'expected ')} (got {_short(got)})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(word: str, known: list[str], always: bool = True) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known keys: {', '.join(known)}" if always and known else ""


def _known_keys(path: Path_) -> list[str]:
    """Field names of the model the key at `path` sits in (for did-you-mean)."""
    model: Any = Layout
    for part in path[:-1]:
        model = _step(model, part)
        if model is None:
            return []
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _step(model: Any, part: Any) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        field = model.model_fields.get(part) if isinstance(part, str) else None
        return _unwrap(field.annotation) if field else None
    if get_origin(model) in (dict, list):
        return _unwrap(get_args(model)[-1])
    return None


def _unwrap(annotation: Any) -> Any:
    """Optional[X] / X | None -> X; a union of a model and other things -> the model."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, getattr(__import__("types"), "UnionType", Union)):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        containers = [a for a in args if get_origin(a) in (dict, list)]
        return (models or containers or args or [None])[0]
    return annotation


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


def fold_header(text: str) -> str:
    """Header texts match case-, width- and space-insensitively."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def _header_issues(columns: dict) -> list[tuple[Path_, str]]:
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


def _source_issues(source: Any) -> list[tuple[Path_, str]]:
    if not isinstance(source, dict):
        return []
    kind = source.get("kind")
    if kind in ("xlsx", "csv", "excel") and not source.get("path"):
        return [(("source",), f"source.path is required for kind {kind}")]
    if kind == "gsheets" and not (source.get("spreadsheet_id") or source.get("url")):
        return [(("source",), "kind gsheets needs spreadsheet_id or url")]
    if kind == "memory" and not source.get("name"):
        return [(("source",), "kind memory needs name")]
    return []


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


# -- entry points for `sheetsync check` --------------------------------------------------------

def layout_files(paths: Iterable[Path]) -> list[Path]:
    """Files to check: a directory means every *.yaml / *.yml directly in it."""
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            out.append(path)
    return out


def check_paths(paths: list[Path]) -> list[Issue]:
    """Load every layout named (files or directories) and return all their issues."""
    issues: list[Issue] = []
    for path in layout_files(paths):
        try:
            load_layout(path)
        except LayoutError as exc:
            issues += exc.issues or [(str(path), 0, "", exc.message)]
    return issues


def format_issue(issue: Issue) -> str:
    file, line, key, message = issue
    return f"{file}:{line}: {key}: {message}" if key else f"{file}:{line}: {message}"


def layout_schema() -> dict[str, Any]:
    """JSON Schema of a layout file, for editor autocompletion (`sheetsync check --schema`)."""
    schema = Layout.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "sheetsync layout", **{k: v for k, v in schema.items() if k != "title"}}
