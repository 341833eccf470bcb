"""Byte-level rewriting of one worksheet part and of styles.xml for the direct xlsx patch: cell
values, row splicing, and cell styles cloned with a new fill or date format (existing styles are
never changed).
"""
from __future__ import annotations

import bisect
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Sequence
from xml.sax.saxutils import unescape

from ...model import WriteValue, column_letter
from .package import P, Unsupported, col_number, esc, fragment, get_attr, local, root_tag, set_attr

_KEEP: Any = object()


# ---------------------------------------------------------------- values and cells

def value_cell(prefix: bytes, ref: str, style: int, value: WriteValue) -> bytes:
    """A fresh <c> for a written value: text as an inline string (never a formula)."""
    head = b"<" + prefix + b'c r="' + ref.encode() + b'"' + (b' s="%d"' % style if style else b"")
    if value is None or value == "":  # openpyxl too writes an empty text as an empty cell
        return head + b"/>"
    if isinstance(value, bool):
        return head + b' t="b"><' + prefix + b"v>" + (b"1" if value else b"0") + b"</" + prefix + b"v></" + prefix + b"c>"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise Unsupported("a non-finite number")
        text = repr(value).encode() if isinstance(value, float) else str(int(value)).encode()
        return head + b"><" + prefix + b"v>" + text + b"</" + prefix + b"v></" + prefix + b"c>"
    t = prefix + b"t"
    return (head + b' t="inlineStr"><' + prefix + b"is><" + t + b' xml:space="preserve">' + esc(str(value))
            + b"</" + t + b"></" + prefix + b"is></" + prefix + b"c>")


def serial(value: dt.date, date1904: bool = False) -> int | float:
    """Excel's serial day number of a date or date-time, in the workbook's own date system
    (Mac Excel's 1904 system counts from 1904-01-01)."""
    moment = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())
    delta = moment.replace(tzinfo=None) - (_EPOCH_1904 if date1904 else _EPOCH_1900)
    days = delta.days + (delta.seconds + delta.microseconds / 1e6) / 86400
    return int(days) if float(days).is_integer() else days


_EPOCH_1900 = dt.datetime(1899, 12, 30)  # day 0 with Excel's 1900 leap-year bug folded in
_EPOCH_1904 = dt.datetime(1904, 1, 1)
_ENTITIES = {"&quot;": '"', "&apos;": "'"}

#: built-in number formats that show a date or a time (ECMA-376 18.8.30; 27-36 and 50-58 are
#: the East Asian date formats Chinese and Japanese Excel use)
DATE_BUILTINS = frozenset([*range(14, 23), *range(27, 37), 45, 46, 47, *range(50, 59)])
#: the format of a date written into a column that shows no date yet: ISO, as Google Sheets gets
#: too; it reads the same in every locale (built-in 14 is the viewer's short date, m/d/yyyy on an
#: American machine, beside people's typed `2024-01-15`)
DEFAULT_DATE, DEFAULT_DATETIME = "yyyy-mm-dd", "yyyy-mm-dd hh:mm"


def is_date_code(code: str) -> bool:
    """Does a number format code show a date or time? Quoted text, [colour]/[$-locale] parts and
    escaped characters do not count; d, m, y, h or s outside them do."""
    bare = re.sub(r'"[^"]*"|\\.|\[(?![hms]+\])[^\]]*\]|_.|\*.', "", code.split(";")[0])
    return re.search(r"[dmyhsDMYHS]|[eE](?![+-])", bare.replace("General", "")) is not None


# ---------------------------------------------------------------- styles

class Styles:
    """cellXfs and fills of styles.xml: read fill codes, append (never change) xfs with a new fill."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.root = root_tag(body)
        self.fills, self.fills_block = self._block(b"fills", b"fill")
        self.xfs, self.xfs_block = self._block(b"cellXfs", b"xf")
        self.new_fills: list[bytes] = []
        self.new_xfs: list[bytes] = []
        self.new_formats: list[tuple[int, str]] = []
        self._codes: dict[int, str | None] = {}
        self.formats: dict[int, str] = {}  # custom number formats: id -> format code
        for tag in re.findall(rb"<" + P + rb"numFmt\s[^>]*>", body):
            fmt_id, code = get_attr(tag, b"numFmtId"), get_attr(tag, b"formatCode")
            if fmt_id is not None and fmt_id.isdigit() and code is not None:
                self.formats[int(fmt_id)] = unescape(code.decode("utf-8", "replace"), _ENTITIES)

    def _block(self, block: bytes, item: bytes) -> tuple[list[bytes], re.Match[bytes]]:
        m = re.search(rb"<(" + P + block + rb")\b[^>]*>(.*?)</\1>", self.body, re.S)
        if not m:
            raise Unsupported(f"styles.xml has no <{block.decode()}> list")
        items = re.findall(rb"<" + P + item + rb"\b(?:[^>]*?/>|[^>]*>.*?</" + P + item + rb">)",
                           m.group(2), re.S)
        return items, m

    def fill_code(self, xf: int) -> str | None:
        """The fill of cell style `xf`, as xlsx.fill_code gives it for openpyxl's view."""
        xfs = self.xfs + self.new_xfs
        fill_id = int(get_attr(xfs[xf] if 0 <= xf < len(xfs) else xfs[0], b"fillId") or 0)
        if fill_id not in self._codes:
            fills = self.fills + self.new_fills
            self._codes[fill_id] = _fill_code(fragment(self.root, fills[fill_id])) if fill_id < len(fills) else None
        return self._codes[fill_id]

    def with_fill(self, xf: int, code: str | None) -> int:
        """The index of a cell style like `xf` but with fill `code` (reused if one exists)."""
        if self.fill_code(xf) == code:
            return xf
        return self._variant(xf, {b"fillId": b"%d" % self._fill_id(code), b"applyFill": b"1"})

    def num_fmt(self, xf: int) -> int:
        xfs = self.xfs + self.new_xfs
        return int(get_attr(re.match(rb"<[^>]*>", xfs[xf] if 0 <= xf < len(xfs) else xfs[0]).group(0),
                            b"numFmtId") or 0)

    def is_date(self, xf: int) -> bool:
        """Does cell style `xf` show its number as a date or time?"""
        fmt = self.num_fmt(xf)
        return fmt in DATE_BUILTINS or (fmt in self.formats and is_date_code(self.formats[fmt]))

    def with_num_fmt(self, xf: int, fmt: int) -> int:
        """The index of a cell style like `xf` (fill, font, borders kept) with number format `fmt`."""
        if self.num_fmt(xf) == fmt:
            return xf
        return self._variant(xf, {b"numFmtId": b"%d" % fmt, b"applyNumberFormat": b"1"})

    def format_id(self, code: str) -> int:
        """The id of custom number format `code`, added to styles.xml when it has none."""
        found = next((i for i, c in self.formats.items() if c == code), None)
        if found is not None:
            return found
        new = max([163, *self.formats]) + 1  # ids below 164 are Excel's built-in formats
        self.formats[new] = code
        self.new_formats.append((new, code))
        return new

    def _variant(self, xf: int, attrs: dict[bytes, bytes]) -> int:
        """A clone of cell style `xf` with `attrs` set, appended (or an equal one reused)."""
        xfs = self.xfs + self.new_xfs
        start = re.match(rb"<[^>]*>", xfs[xf] if 0 <= xf < len(xfs) else xfs[0])
        assert start is not None
        tag = start.group(0)
        for name, value in attrs.items():
            tag = set_attr(tag, name, value)
        clone = tag + (xfs[xf] if 0 <= xf < len(xfs) else xfs[0])[start.end():]
        if clone in xfs:
            return xfs.index(clone)
        self.new_xfs.append(clone)
        return len(xfs)

    def _fill_id(self, code: str | None) -> int:
        fills = self.fills + self.new_fills
        for i in range(len(fills)):
            if i not in self._codes:
                self._codes[i] = _fill_code(fragment(self.root, fills[i]))
            if self._codes[i] == code:
                return i
        prefix = re.match(rb"<(" + P + rb")", self.fills_block.group(0))
        self.new_fills.append(_fill_xml(prefix.group(1) if prefix else b"", code))
        self._codes[len(fills)] = code
        return len(fills)

    def render(self) -> bytes:
        if not self.new_xfs and not self.new_formats:
            return self.body
        body = self.body
        for block, items, new in sorted([(self.xfs_block, self.xfs, self.new_xfs),
                                         (self.fills_block, self.fills, self.new_fills)],
                                        key=lambda t: -t[0].start()):
            if not new:
                continue
            text = block.group(0)
            start = re.match(rb"<[^>]*>", text)
            assert start is not None
            tag = start.group(0)
            if get_attr(tag, b"count") is not None:
                tag = set_attr(tag, b"count", b"%d" % (len(items) + len(new)))
            close = text.rindex(b"</")
            text = tag + text[start.end():close] + b"".join(new) + text[close:]
            body = body[:block.start()] + text + body[block.end():]
        return self._render_formats(body) if self.new_formats else body

    def _render_formats(self, body: bytes) -> bytes:
        """New <numFmt>s into <numFmts>, made as the style sheet's first child when absent (the
        schema's order); both come before fills and cellXfs, so their offsets are untouched."""
        prefix = re.match(rb"<(" + P + rb")", self.xfs_block.group(0))
        p = prefix.group(1) if prefix else b""
        items = b"".join(b'<%snumFmt numFmtId="%d" formatCode="%s"/>' % (p, i, esc(c, quote=True))
                         for i, c in self.new_formats)
        block = re.search(rb"<(" + P + rb"numFmts)\b[^>]*?(/>|>)", body)
        if block is None:
            root = re.search(rb"<(?:" + P + rb")styleSheet\b[^>]*>", body)
            at = root.end()
            return body[:at] + b'<%snumFmts count="%d">' % (p, len(self.new_formats)) + items + \
                b"</%snumFmts>" % p + body[at:]
        count = len(re.findall(rb"<" + P + rb"numFmt\s", body)) + len(self.new_formats)
        tag = set_attr(block.group(0).replace(b"/>", b">") if block.group(2) == b"/>" else block.group(0),
                       b"count", b"%d" % count)
        if block.group(2) == b"/>":
            return body[:block.start()] + tag + items + b"</%snumFmts>" % p + body[block.end():]
        close = body.index(b"</" + block.group(1) + b">", block.end())
        return body[:block.start()] + tag + body[block.end():close] + items + body[close:]


def _fill_code(el: Any) -> str | None:
    """fill_code() of one <fill> element, mirroring openpyxl's reading of it."""
    pattern = next((c for c in el if local(c.tag) == "patternFill"), None)
    if pattern is None:
        return "gradient" if len(el) else None
    kind = pattern.get("patternType")
    if not kind or kind == "none":
        return None
    fg = next((c for c in pattern if local(c.tag) == "fgColor"), None)
    attrs = fg.attrib if fg is not None else {}
    if "theme" in attrs:
        return f"{kind}|theme:{int(attrs['theme'])}:{float(attrs.get('tint', 0))}"
    if "indexed" in attrs and "rgb" not in attrs:
        return f"{kind}|indexed:{int(attrs['indexed'])}"
    rgb = attrs.get("rgb", "00000000")
    return rgb[-6:].upper() if kind == "solid" else f"{kind}|rgb:{rgb}"


def _fill_xml(prefix: bytes, code: str | None) -> bytes:
    """A <fill> for a fill code, as xlsx.make_fill builds it."""
    p = prefix.decode()
    if not code:
        return f"<{p}fill><{p}patternFill/></{p}fill>".encode()
    if "|" not in code:
        rgb = "00" + code.upper()
        return (f'<{p}fill><{p}patternFill patternType="solid"><{p}fgColor rgb="{rgb}"/>'
                f'<{p}bgColor rgb="{rgb}"/></{p}patternFill></{p}fill>').encode()
    pattern, _, spec = code.partition("|")
    kind, _, value = spec.partition(":")
    if kind == "theme":
        theme, _, tint = value.partition(":")
        colour = f'theme="{int(theme)}"' + (f' tint="{float(tint)}"' if tint and float(tint) else "")
    elif kind == "indexed":
        colour = f'indexed="{int(value)}"'
    else:
        colour = f'rgb="{esc(value, True).decode()}"'
    return (f'<{p}fill><{p}patternFill patternType="{esc(pattern, True).decode()}">'
            f'<{p}fgColor {colour}/></{p}patternFill></{p}fill>').encode()


# ---------------------------------------------------------------- the worksheet

_CELL = re.compile(rb"<(" + P + rb")c(?=[\s/>])([^>]*?)(/>|>(.*?)</" + P + rb"c>)", re.S)


@dataclass
class Cell:
    xml: bytes | None  # the cell's current element, None when it does not exist
    style: int
    formula: bool = False


class Sheet:
    """One worksheet part: locate rows by a byte scan, rewrite only the rows that are patched."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        m = re.search(rb"<(" + P + rb")sheetData\b[^>]*?(/?)>", body)
        if not m:
            raise Unsupported("the sheet has no <sheetData>")
        self.prefix = m.group(1)
        close = b"</" + self.prefix + b"sheetData>"
        if m.group(2):  # an empty <sheetData/>: open it so rows can go in
            body = body[:m.start()] + m.group(0)[:-2].rstrip() + b">" + close + body[m.end():]
            self.body = body
            m = re.search(rb"<(" + P + rb")sheetData\b[^>]*?>", body)
            assert m is not None
        self.start = m.end()
        self.end = body.index(close, self.start)
        self.cells: dict[tuple[int, int], Cell] = {}
        self._rows: dict[int, tuple[int, int, bytes, list[tuple[int, bytes]], bytes]] = {}
        self._index: dict[int, tuple[int, int]] | None = None
        self.formula_removed = False
        self.values_written = 0

    def index(self) -> dict[int, tuple[int, int]]:
        """Row number -> (start, end) byte span of its <row> element."""
        if self._index is None:
            tag = b"<" + self.prefix + b"row"
            starts = re.compile(re.escape(tag) + rb'[\s>][^>]*?\br="(\d+)"')
            index: dict[int, tuple[int, int]] = {}
            close = b"</" + self.prefix + b"row>"
            for m in starts.finditer(self.body, self.start, self.end):
                gt = self.body.index(b">", m.end())
                end = gt + 1 if self.body[gt - 1] == 47 else self.body.index(close, gt) + len(close)
                index[int(m.group(1))] = (m.start(), end)
            if len(index) != self.body.count(tag + b" ", self.start, self.end) + \
                    self.body.count(tag + b">", self.start, self.end):
                raise Unsupported("rows without a row number")
            self._index = index
        return self._index

    def _row(self, row: int) -> tuple[int, int, bytes, list[tuple[int, bytes]], bytes]:
        """(start, end, start tag, [(col, cell xml)], other content) of a row, parsed once."""
        if row not in self._rows:
            span = self.index().get(row)
            if span is None:
                self._rows[row] = (-1, -1, b"<" + self.prefix + b'row r="%d">' % row, [], b"")
            else:
                text = self.body[span[0]:span[1]]
                gt = text.index(b">") + 1
                tag = text[:gt]
                inner = b"" if tag.endswith(b"/>") else text[gt:text.rindex(b"</")]
                cells = []
                for m in _CELL.finditer(inner):
                    ref = re.search(rb'\sr="([A-Z]+)(\d+)"', m.group(2))
                    if not ref or int(ref.group(2)) != row:
                        raise Unsupported("cells without a cell reference")
                    cells.append((col_number(ref.group(1)), m.group(0)))
                rest = _CELL.sub(b"", inner)
                self._rows[row] = (*span, tag, cells, rest if rest.strip() else b"")
        return self._rows[row]

    def peek_style(self, row: int, col: int) -> int | None:
        """The style of a cell that exists, looked up without touching it (for the column's date
        format); None when the row or cell is not there."""
        if row < 1 or (row not in self._rows and row not in self.index()):
            return None
        if (row, col) in self.cells:
            return self.cells[(row, col)].style
        xml = next((x for c, x in self._row(row)[3] if c == col), None)
        return None if xml is None else int(get_attr(xml[:xml.index(b">") + 1], b"s") or 0)

    def cell(self, row: int, col: int) -> Cell:
        if (row, col) not in self.cells:
            xml = next((x for c, x in self._row(row)[3] if c == col), None)
            style = 0
            if xml is not None:
                head = xml[:xml.index(b">") + 1]
                style = int(get_attr(head, b"s") or 0)
            formula = xml is not None and re.search(rb"<" + P + rb"f[\s>/]", xml) is not None
            self.cells[(row, col)] = Cell(xml, style, formula)
        return self.cells[(row, col)]

    def set(self, row: int, col: int, value: Any = _KEEP, style: int | None = None) -> None:
        cell = self.cell(row, col)
        if style is not None:
            cell.style = style
        ref = f"{column_letter(col)}{row}"
        if value is not _KEEP:
            self.values_written += 1
            if cell.formula:
                m = re.search(rb"<" + P + rb"f\b[^>]*>", cell.xml or b"")
                if m and get_attr(m.group(0), b"t") == b"shared" and get_attr(m.group(0), b"ref"):
                    raise Unsupported("overwriting the master cell of a shared formula")
                self.formula_removed = True
            cell.xml, cell.formula = value_cell(self.prefix, ref, cell.style, value), False
        elif cell.xml is None:
            cell.xml = b"<" + self.prefix + b'c r="' + ref.encode() + b'" s="%d"/>' % cell.style
        else:
            head = cell.xml.index(b">") + 1
            cell.xml = set_attr(cell.xml[:head], b"s", b"%d" % cell.style) + cell.xml[head:]

    def merged(self) -> list[tuple[int, int, int, int]]:
        """Merged ranges (r1, c1, r2, c2); <mergeCells> follows <sheetData>, so only that tail is scanned."""
        pat = re.compile(rb"<" + P + rb'mergeCell\s[^>]*?ref="([A-Z]+)(\d+):([A-Z]+)(\d+)"')
        return [(int(m.group(2)), col_number(m.group(1)), int(m.group(4)), col_number(m.group(3)))
                for m in pat.finditer(self.body, self.end)]

    def render_rows(self) -> list[tuple[int, int, int, bytes]]:
        """(start, end, replacement) byte edits, new rows as zero-length inserts in row order."""
        by_row: dict[int, dict[int, bytes]] = {}
        for (row, col), cell in self.cells.items():
            if cell.xml is not None:
                by_row.setdefault(row, {})[col] = cell.xml
        edits = []
        index = self.index()
        numbers = sorted(index)
        for row, changed in by_row.items():
            start, end, tag, cells, rest = self._row(row)
            merged = dict(cells)
            grew = bool(set(changed) - set(merged))
            merged.update(changed)
            if tag.endswith(b"/>"):
                tag = tag[:-2].rstrip() + b">"
            if grew:
                tag = re.sub(rb'\sspans="[^"]*"', b"", tag)
            xml = tag + b"".join(merged[c] for c in sorted(merged)) + rest + b"</" + self.prefix + b"row>"
            if start < 0:
                nxt = bisect.bisect_right(numbers, row)
                start = end = index[numbers[nxt]][0] if nxt < len(numbers) else self.end
            edits.append((start, end, row, xml))
        return edits

    def render(self, extra: Sequence[tuple[int, int, int, bytes]] = ()) -> bytes:
        """The sheet with its patched rows (and `extra` byte edits) replaced; the rest as it was."""
        out, pos = [], 0
        for start, end, _, xml in sorted([*self.render_rows(), *extra]):
            out += [self.body[pos:start], xml]
            pos = end
        out.append(self.body[pos:])
        return b"".join(out)
