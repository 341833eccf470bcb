"""The Connector protocol and the registry of source kinds, imported lazily.

A connector reads one worksheet and applies patches to it. It knows nothing of rules or the
store: the engine hands it Patch objects and gets Applied back (see sheetsync.model).
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, Union, runtime_checkable

from ..errors import MissingExtra, UsageError
from ..model import Applied, CellValue, Patch, ReportTab, SheetData, canonical_text, row_hash

#: kind -> "module:Class"; plain strings so that importing sheetsync imports no gspread/openpyxl.
REGISTRY: dict[str, str] = {
    "xlsx": "sheetsync.connectors.xlsx:XlsxConnector",
    "csv": "sheetsync.connectors.csv:CsvConnector",
    "gsheets": "sheetsync.connectors.gsheets:GSheetsConnector",
    "excel": "sheetsync.connectors.excel:ExcelConnector",
    "memory": "sheetsync.connectors.memory:MemoryConnector",
}

#: the pip extra that provides each kind's optional dependency
EXTRAS: dict[str, str] = {"gsheets": "gsheets", "excel": "excel"}

#: every note sheetsync writes starts with this, so its own notes can be told from a person's
NOTE_PREFIX = "sheetsync: "
NOTE_SEPARATOR = "\n---\n"

#: the fill of each kind of mark when a layout names no `colours:` (layout.Colours takes its defaults
#: from here); a clear without `fill` treats these as sheetsync's own
MARK_COLOURS = {"corrected": "C6EFCE", "invalid": "FFC7CE", "duplicate": "FFD8A8",
                "conflict": "FFEB9C", "protected": "D9D2E9", "pushed": "DDEBF7"}


def default_mark_colours() -> frozenset[str]:
    """The default mark colours, upper-case: what a clear without `fill` may remove."""
    return frozenset(MARK_COLOURS.values())


@dataclass(frozen=True)
class Capabilities:
    """What a source can hold. CSV has no fills or notes; the engine then reports in a sidecar."""

    fills: bool = True
    notes: bool = True
    report_tab: bool = True
    remote: bool = False
    typed: bool = True  # cells hold numbers, dates, booleans (a Patch's value_type is honoured)


#: turns a path from a layout's `source:` into an absolute one (relative to the layout's folder)
Resolve = Callable[[Union[str, None]], Union[Path, None]]


@runtime_checkable
class Connector(Protocol):
    """The whole contract between the engine and a source: the engine uses nothing else."""

    capabilities: Capabilities
    path: Path | None  # the local file, if the source is one (archive writes a CSV's tab beside it)

    @classmethod
    def from_source(cls, source: Any, resolve: Resolve) -> "Connector":
        """Build the connector a layout's `source:` describes."""

    def read(self) -> SheetData:
        """Read the header and every data row. Raises SourceError, SourceBusy, SourceUnavailable."""

    def apply(self, patches: Sequence[Patch], *, report: ReportTab | None = None,
              expected: str | None = None) -> Applied:
        """Apply patches (and rewrite the report tab) in as few writes as the source allows.
        `expected` is the fingerprint of the read the patches were computed from: a connector
        that cannot check single cells refuses with SourceChanged if the source moved on.
        Patches whose cell or anchor no longer matches are returned as deferred, not applied.
        """

    def snapshot(self) -> bytes:
        """The source's current bytes (a file) or canonical JSON of its values (a remote sheet)."""

    def unchanged_since(self, fingerprint: str) -> bool:
        """True only when the source certainly still is the read with that fingerprint (a run may
        then skip reading it); False when unsure."""

    def call_counts(self) -> tuple[int, int] | None:
        """(Sheets, Drive) requests made so far by a remote source; None for one that makes none."""


class ConnectorBase:
    """The protocol's defaults, so that a connector writes only what it can do: no local file,
    no cheap unchanged check, no API calls to count."""

    path: Path | None = None

    def unchanged_since(self, fingerprint: str) -> bool:
        return False

    def call_counts(self) -> tuple[int, int] | None:
        return None


def connector_class(kind: str) -> type:
    """Import the connector class for `kind`; a missing optional dependency names its extra."""
    try:
        target = REGISTRY[kind]
    except KeyError:
        raise UsageError(f"unknown source kind {kind!r}",
                         hint=f"use one of: {', '.join(sorted(REGISTRY))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = EXTRAS.get(kind)
        if extra and module_name not in str(exc):
            raise MissingExtra(f"source kind {kind!r} needs an optional dependency ({exc.name})",
                               hint=f"pip install 'sheetsync[{extra}]'") from exc
        raise
    return getattr(module, class_name)


def open_connector(kind: str, **options: Any) -> Connector:
    return connector_class(kind)(**options)


def still_applies(patch: Patch, text_at: Callable[[int, int], str]) -> bool:
    """Does the cell still hold what the patch was computed from (`expected`), and does its row
    still carry the same key (`anchor`)? If not, a person changed it: the patch is deferred."""
    if patch.expected is not None and text_at(patch.row, patch.col) != patch.expected:
        return False
    if patch.anchor is not None:
        col, text = patch.anchor
        return text_at(patch.row, col) == text
    return True


def row_unchanged(patch: Patch, values: Sequence[CellValue]) -> bool:
    """May a `remove` patch take this row? Only when the row (its cells as read now, from
    column A) still hashes as it did when the removal was planned and still carries the key."""
    if patch.expected is not None and row_hash(values) != patch.expected:
        return False
    if patch.anchor is not None:
        col, text = patch.anchor
        return canonical_text(values[col - 1] if col <= len(values) else None) == text
    return True


def values_snapshot(data: SheetData) -> bytes:
    """Canonical JSON of a worksheet's values, for sources with no file bytes to copy (a Google
    Sheet, a live Excel window): equal content gives equal bytes."""
    doc = {"sheet": data.sheet, "header": list(data.header),
           "rows": [[r.number, [canonical_text(v) for v in r.values]] for r in data.rows]}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8")


def merge_note(existing: str | None, ours: str) -> str:
    """Put sheetsync's note on a cell without destroying a person's own note text."""
    human = strip_note(existing)
    ours = ours if ours.startswith(NOTE_PREFIX) else NOTE_PREFIX + ours
    return f"{human}{NOTE_SEPARATOR}{ours}" if human else ours


def strip_note(existing: str | None) -> str | None:
    """The person's part of a note, sheetsync's part removed; None when nothing is left."""
    if not existing:
        return None
    if existing.startswith(NOTE_PREFIX):
        return None
    human, sep, rest = existing.partition(NOTE_SEPARATOR)
    if sep and rest.startswith(NOTE_PREFIX):
        return human or None
    return existing


def remove_note(existing: str | None, ours: str | None = None) -> str | None:
    """The note left when sheetsync's mark goes: `ours` (the note text sheetsync wrote) is cut
    out wherever it stands, so text a person added before or after it stays; a note a person
    rewrote so that sheetsync's text is no longer in it is theirs now and kept whole. Without
    `ours` (a mark of an older version), sheetsync's recognisable part is removed."""
    if not existing:
        return None
    if ours:
        ours = ours if ours.startswith(NOTE_PREFIX) else NOTE_PREFIX + ours
        if ours in existing:
            before, _, after = existing.partition(ours)
            before = before.removesuffix(NOTE_SEPARATOR)
            after = after.removeprefix(NOTE_SEPARATOR) if not before.strip() else after
            left = (before.rstrip() + ("\n" if before.strip() and after.strip() else "") + after.strip()).strip()
            return left or None
    return strip_note(existing) if is_our_note(existing) else existing


def is_our_note(text: str | None) -> bool:
    return bool(text) and (text.startswith(NOTE_PREFIX) or (NOTE_SEPARATOR + NOTE_PREFIX) in text)


def from_source(source: Any, base_dir: Path) -> Connector:
    """Build the connector a layout's `source:` describes (its class from REGISTRY, which reads
    its own options); relative paths are from the layout's folder."""
    def resolve(p: str | None) -> Path | None:
        if p is None:
            return None
        path = Path(p).expanduser()
        return path if path.is_absolute() else base_dir / path
    return connector_class(source.kind).from_source(source, resolve)
