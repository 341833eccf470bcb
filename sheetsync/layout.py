"""Layouts: one YAML file binds one worksheet to one store table. Pydantic models, extra keys forbidden.

Reading YAML into them is layout_load.py, cross-key checks layout_checks.py; both import this
module, never the other way round.
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Union

import phonenumbers
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from .connectors import MARK_COLOURS
from .rules.pattern import compile_pattern

# -- the `max_delete:` key (the guard itself is engine/delete_guard.py; the key is checked as the
# layout loads, and a layout must not import the engine)
MAX_DELETE_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")

MaxDelete = Union[int, str, None]


def check_max_delete(value: MaxDelete) -> MaxDelete:
    """The layout key: a count of rows (200) or a share of the sheet's rows ("50%")."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("max_delete is a number of rows (e.g. 200) or a share of the rows (e.g. '50%')")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must be 0 or more rows (got {value})")
        return value
    m = MAX_DELETE_SHARE.match(value)
    if not m or float(m.group(1)) > 100:
        raise ValueError(f"{value!r} is neither a number of rows (e.g. 200) nor a share "
                         "from 0% to 100% (e.g. '50%')")
    return value.strip()


#: the layout's `max_delete:` key, checked as it is loaded
MaxDeleteKey = Annotated[MaxDelete, BeforeValidator(check_max_delete)]


_HEX = re.compile(r"[0-9A-Fa-f]{6}")

FieldType = Literal["string", "integer", "number", "decimal", "boolean", "date", "datetime",
                    "enum", "email", "phone", "url"]
Normaliser = Literal["trim", "collapse_spaces", "nfkc", "nfc", "strip_invisible", "strip_controls", "lower",
                     "upper", "title", "phone", "date", "none"]
Colour = str  # "RRGGBB"


class RetentionPolicy(BaseModel):
    """How many snapshots to keep; the same names as a layout's `retention:` mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last: int = Field(5, ge=0)   # the newest N, whatever their time
    hourly: int = Field(25, ge=0)     # newest of each of the N most recent earlier hours
    daily: int = Field(32, ge=0)
    weekly: int = Field(12, ge=0)     # ISO weeks (Monday to Sunday)
    monthly: int = Field(96, ge=0)


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
    day_first: bool | None = None        # date/datetime: 03/04/2024 is 3 April (true) or 4 March
                                         # (false); unset: the layout's, else the column's own dates decide
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
    corrected: Colour = MARK_COLOURS["corrected"]
    invalid: Colour = MARK_COLOURS["invalid"]
    duplicate: Colour = MARK_COLOURS["duplicate"]
    conflict: Colour = MARK_COLOURS["conflict"]
    protected: Colour = MARK_COLOURS["protected"]
    pushed: Colour = MARK_COLOURS["pushed"]

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
    key: list[str] | str | None = None   # field(s) identifying a record; None needs id_column
    id_column: str | None = None         # no key: header of a column sheetsync fills with record ids
    columns: dict[str, Column]
    checks: list[Check] = []
    language: Literal["en", "zh"] = "en"
    region: str = "CN"                   # default phone region
    phone_format: Literal["E164", "international", "national"] = "international"
    day_first: bool | None = None        # default of every date column's day_first
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
    max_delete: MaxDeleteKey = None         # rows one run may delete: 200 or "50%" (default 50% above 100 rows)

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


def default_path(layout_path: Path | None = None) -> Path:
    """$SHEETSYNC_DB, else sheetsync.db next to the layout (or in the working folder)."""
    env = os.environ.get("SHEETSYNC_DB")
    if env:
        return Path(env)
    return (layout_path.parent if layout_path else Path.cwd()) / "sheetsync.db"


def store_path(loaded: LoadedLayout) -> Path:
    """The layout's `store:`, else $SHEETSYNC_DB, else sheetsync.db next to the layout."""
    return loaded.resolve(loaded.layout.store) if loaded.layout.store else default_path(loaded.path)

