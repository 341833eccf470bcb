"""The CSV connector: decodes utf-8-sig then gb18030, and writes back with the same encoding,
BOM, line endings and delimiter, re-serialising only the records it changed.

CSV holds no colours or notes: marks are accepted and ignored, problems go to a sidecar report.
"""
from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import SourceError
from ..model import Applied, Patch, ReportTab, SheetData, canonical_text, split_removals
from . import Capabilities, row_unchanged, still_applies
from .grid import rows_from_grid
from .safe_write import atomic_write, fingerprint, real_path
from .xlsx.guard import LocalFile, read_bytes

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z")
_ENDING = re.compile(r"(\r\n|\n|\r)\Z")
_FIRST_ENDING = re.compile(r"\r\n|\n|\r")
_SNIFF_DELIMITERS = ",;\t|"
#: sidecar cells starting with these would run as formulas in Excel; quoted there (never in data)
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ParsedCsv:
    """A decoded CSV: its records, the raw text of each record (none when parsed for a read
    alone), and how to write it back."""

    encoding: str
    bom: bool
    newline: str
    delimiter: str
    records: list[list[str]]
    raw: list[str]

    def encode(self) -> bytes:
        text = "".join(self.raw)
        return (codecs.BOM_UTF8 if self.bom else b"") + text.encode(self.encoding)

    def field(self, row: int, col: int) -> str:
        record = self.records[row - 1] if 0 < row <= len(self.records) else []
        return record[col - 1] if 0 < col <= len(record) else ""

    def set_field(self, row: int, col: int, text: str) -> None:
        """Change one field and re-serialise only that record, keeping its line ending."""
        record = self.records[row - 1]
        record.extend([""] * (col - len(record)))
        record[col - 1] = text
        ending = _ENDING.search(self.raw[row - 1])
        buf = io.StringIO()
        csv.writer(buf, delimiter=self.delimiter, lineterminator="\n").writerow(record)
        self.raw[row - 1] = buf.getvalue()[:-1] + (ending.group(1) if ending else "")

    def remove_record(self, row: int) -> None:
        """Drop one record (all its lines); a last record without a line ending leaves the one
        before it ending as it did, so the file's last line keeps its style."""
        del self.records[row - 1]
        del self.raw[row - 1]


def decode(data: bytes, encoding: str | None, where: str) -> tuple[str, str, bool]:
    """(text, encoding to write back with, had a UTF-8 BOM); strict, never guessing silently."""
    bom = data.startswith(codecs.BOM_UTF8)
    ladder = [encoding] if encoding else ["utf-8-sig", "gb18030"]
    for name in ladder:
        try:
            norm = codecs.lookup(name).name
        except LookupError:
            raise SourceError(f"unknown encoding {name!r}", where=where,
                              hint="set source.encoding to e.g. utf-8 or gb18030") from None
        if norm in ("utf-8", "utf-8-sig"):
            name, norm = "utf-8-sig", "utf-8"
        try:
            return data.decode(name), norm, bom and norm == "utf-8"
        except UnicodeDecodeError:
            continue
    raise SourceError(f"the file is not valid {' or '.join(ladder)}", where=where,
                      hint="save it as UTF-8 CSV, or set source.encoding in the layout")


def parse(data: bytes, encoding: str | None, delimiter: str | None, where: str, raw: bool = True) -> ParsedCsv:
    """The decoded records; `raw=False` (a read, which writes nothing back) skips keeping each
    record's own text, and so cutting the text into 100k line strings first."""
    text, enc, bom = decode(data, encoding, where)
    first_end = _FIRST_ENDING.search(text)
    ending = first_end.group() if first_end else "\r\n"
    delim = delimiter or _sniff(text[:65536])
    lines = _LINE.findall(text) if raw else []
    reader = csv.reader(iter(lines) if raw else io.StringIO(text, newline=""), delimiter=delim)
    try:
        records = list(reader)
    except csv.Error as exc:
        raise SourceError(f"malformed CSV near line {reader.line_num}: {exc}", where=where,
                          hint="fix the quoting on that line, or set source.delimiter") from None
    if not raw or len(records) == len(lines):  # a read keeps no text; a one-line record is its line
        return ParsedCsv(enc, bom, ending, delim, records, lines)
    reader = csv.reader(iter(lines), delimiter=delim)  # a quoted line break: records span lines
    records, texts, used = [], [], 0
    for record in reader:  # parsed once already, so no csv.Error here
        records.append(record)
        texts.append("".join(lines[used:reader.line_num]))
        used = reader.line_num
    return ParsedCsv(enc, bom, ending, delim, records, texts)


def _sniff(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=_SNIFF_DELIMITERS).delimiter
    except csv.Error:
        return ","


class CsvConnector(LocalFile):
    """One local CSV file; the report goes to `NAME.sheetsync.csv` beside it."""

    capabilities = Capabilities(fills=False, notes=False, report_tab=False, typed=False)

    def __init__(self, path: Path | str, header_row: int = 1, encoding: str | None = None,
                 delimiter: str | None = None) -> None:
        self.path = Path(path)
        self.header_row = header_row
        self.encoding = encoding
        self.delimiter = delimiter

    @property
    def report_path(self) -> Path:
        real = real_path(self.path)  # a symlinked CSV: beside the shared file the link points at
        return real.with_name(f"{real.stem}.sheetsync.csv")

    def _parse(self, data: bytes, raw: bool = True) -> ParsedCsv:
        return parse(data, self.encoding, self.delimiter, str(self.path), raw)

    def read(self) -> SheetData:
        data = read_bytes(self.path)
        parsed = self._parse(data, raw=False)
        header, rows = rows_from_grid(parsed.records, self.header_row, False, str(self.path))
        meta = {"kind": "csv", "encoding": parsed.encoding, "bom": parsed.bom,
                "newline": parsed.newline, "delimiter": parsed.delimiter}
        return SheetData(sheet=self.path.name, header=header, rows=rows, fingerprint=fingerprint(data),
                         header_row=self.header_row, source=str(self.path), meta=meta)

    def apply(self, patches: Sequence[Patch], *, report: ReportTab | None = None,
              expected: str | None = None) -> Applied:
        if not patches and report is None:
            return Applied(applied=())
        data = self.bytes_to_patch(expected, str(self.path), "CSV file")
        parsed = self._parse(data)
        applied, deferred, changed = [], [], False
        cells, removals = split_removals(patches)
        for patch in [*cells, *removals]:  # removals last, bottom-up: rows above keep their numbers
            if not _matches(parsed, patch):
                deferred.append(patch)
                continue
            if patch.kind == "remove":
                parsed.remove_record(patch.row)
                changed = True
            elif patch.write:
                parsed.set_field(patch.row, patch.col, canonical_text(patch.value))
                changed = True
            applied.append(patch)
        written = self._save(parsed, data) if changed else None
        if report is not None:
            self._write_report(report)
        return Applied(applied=tuple(applied), deferred=tuple(deferred), fingerprint=written)

    def _save(self, parsed: ParsedCsv, data: bytes) -> str:
        try:
            body = parsed.encode()
        except UnicodeEncodeError as exc:
            raise SourceError(f"a corrected value cannot be written in {parsed.encoding}: "
                              f"{exc.object[exc.start:exc.end]!r}", where=str(self.path),
                              hint="set source.encoding to utf-8 or gb18030 and save the file so") from None
        return atomic_write(self.path, lambda fh: fh.write(body), expected=data)

    def _write_report(self, report: ReportTab) -> None:
        """The sidecar report, UTF-8 with BOM so Excel shows Chinese text correctly."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        for row in report.rows:
            writer.writerow([_safe_export(str(v)) for v in row])
        body = codecs.BOM_UTF8 + buf.getvalue().encode("utf-8")
        atomic_write(self.report_path, lambda fh: fh.write(body))


def _matches(parsed: ParsedCsv, patch: Patch) -> bool:
    """A patch lands only on an existing record whose cell (and anchor) still read as expected."""
    if not 0 < patch.row <= len(parsed.records):
        return False
    if patch.kind == "remove":
        return row_unchanged(patch, parsed.records[patch.row - 1])
    return still_applies(patch, parsed.field)


def _safe_export(text: str) -> str:
    """Quote-prefix text that Excel would run as a formula (report sidecar only, not data)."""
    return "'" + text if text.startswith(_FORMULA_LEADS) else text
