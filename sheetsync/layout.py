"""Layouts: one YAML file binds one worksheet to one store table. Pydantic models, extra keys forbidden.

load_layout() reports every mistake as (file, line, key, message) so `sheetsync check` can print
`file:line: key: message`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field

FieldType = Literal["string", "integer", "number", "decimal", "boolean", "date", "datetime",
                    "enum", "email", "phone", "url"]
Normaliser = Literal["trim", "collapse_spaces", "nfkc", "strip_invisible", "lower", "upper", "title",
                     "phone", "date", "none"]
Colour = str  # "RRGGBB"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class Colours(Strict):
    corrected: Colour = "C6EFCE"
    invalid: Colour = "FFC7CE"
    duplicate: Colour = "FFD8A8"
    conflict: Colour = "FFEB9C"
    protected: Colour = "D9D2E9"
    pushed: Colour = "DDEBF7"


class Schedule(Strict):
    every: str = "1h"                    # e.g. 15m, 1h, 1d


class Layout(Strict):
    """The whole of one layouts/*.yaml file."""

    version: Literal[1] = 1
    name: str | None = None              # defaults to the file name without .yaml
    table: str                           # store table; several layouts may share one
    source: Source
    key: list[str] | str | None = None   # field(s) identifying a record; None = row-managed id
    columns: dict[str, Column]
    checks: list[Check] = []
    language: Literal["en", "zh"] = "en"
    region: str = "CN"                   # default phone region
    phone_format: Literal["E164", "international", "national"] = "international"
    dedupe: Dedupe = Dedupe()
    conflict: Literal["store", "sheet", "flag"] = "flag"
    colours: Colours = Colours()
    report_tab: str | None = "sheetsync"  # None = no report tab
    store: str | None = None             # SQLite file; default sheetsync.db next to the layout
    schedule: Schedule = Schedule()

    @property
    def key_fields(self) -> list[str]:
        if self.key is None:
            return []
        return [self.key] if isinstance(self.key, str) else list(self.key)


class LoadedLayout(BaseModel):
    """A validated layout plus where it came from (paths in it are relative to `path`)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    layout: Layout
    path: Path
    name: str

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.path.parent / p)
