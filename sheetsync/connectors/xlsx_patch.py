"""Fast xlsx write-back: patch the synced sheet's XML, styles and notes inside the zip directly.

Only the patched cells' bytes change (plus appended styles, notes and the report tab); every other
zip member is copied raw, so nothing openpyxl would drop is lost. `Unsupported` means "use openpyxl".
"""
from __future__ import annotations

import bisect
import io
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any, Sequence
from xml.sax.saxutils import escape

from defusedxml import ElementTree as DET

from ..errors import SourceError
from ..model import Patch, ReportTab, WriteValue, column_letter
from . import is_our_note, merge_note, strip_note
from .xlsx_guard import read_comments

P = rb"(?:[\w.-]+:)?"  # an optional namespace prefix on an element name
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")  # what openpyxl strips, too
_KEEP: Any = object()


class Unsupported(Exception):
    """This workbook needs something the direct patch cannot do; the caller falls back to openpyxl."""


@dataclass
class PatchResult:
    data: bytes
    applied: tuple[Patch, ...]
    deferred: tuple[Patch, ...]
    prior_fills: dict[tuple[int, int], str | None] = field(default_factory=dict)


def esc(text: str, quote: bool = False) -> bytes:
    clean = _ILLEGAL.sub("", text)
    return escape(clean, {'"': "&quot;"} if quote else {}).encode("utf-8")


def col_number(letters: bytes | str) -> int:
    n = 0
    for ch in letters if isinstance(letters, str) else letters.decode():
        n = n * 26 + ord(ch) - 64
    return n


def fragment(root_tag: bytes, frag: bytes) -> Any:
    """Parse a slice of a part, with the namespace declarations of the part's root element."""
    decls = b"".join(re.findall(rb'\sxmlns(?::[\w.-]+)?="[^"]*"', root_tag))
    return DET.fromstring(b"<w" + decls + b">" + frag + b"</w>")[0]


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def root_tag(body: bytes) -> bytes:
    m = re.search(rb"<(?![?!])[^>]*>", body)
    if not m:
        raise Unsupported("a part without a root element")
    return m.group(0)


# ---------------------------------------------------------------- the zip package

class Package:
    """The workbook's zip: members read lazily, changed ones held here, the rest copied raw."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.zf = zipfile.ZipFile(io.BytesIO(data))
        self.names = set(self.zf.namelist())
        self.changed: dict[str, bytes] = {}
        self.dropped: set[str] = set()

    def read(self, name: str) -> bytes:
        return self.changed[name] if name in self.changed else self.zf.read(name)

    def has(self, name: str) -> bool:
        return (name in self.names or name in self.changed) and name not in self.dropped

    def write(self, name: str, body: bytes) -> None:
        self.changed[name] = body

    def rels(self, part: str) -> list[tuple[str, str, str]]:
        """(Id, Type, absolute target) of a part's relationships."""
        folder, base = posixpath.split(part)
        path = posixpath.join(folder, "_rels", base + ".rels")
        if not self.has(path):
            return []
        out = []
        for rel in DET.fromstring(self.read(path)):
            target = rel.get("Target", "")
            target = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
                posixpath.join(folder, target))
            out.append((rel.get("Id", ""), rel.get("Type", ""), target))
        return out

    def add_rel(self, part: str, kind: str, target: str) -> str:
        folder, base = posixpath.split(part)
        path = posixpath.join(folder, "_rels", base + ".rels")
        ids = {rid for rid, _, _ in self.rels(part)}
        n = 1 + max([int(i[3:]) for i in ids if re.fullmatch(r"rId\d+", i)] or [0])
        rid = f"rId{n}"
        body = self.read(path) if self.has(path) else (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Relationships xmlns="{RELS_NS}"></Relationships>').encode()
        rel = (f'<Relationship Id="{rid}" Type="{REL_NS}/{kind}" '
               f'Target="/{target}"/>').encode()
        self.write(path, insert_before_close(body, b"Relationships", rel))
        return rid

    def add_content_type(self, part: str | None, ctype: str, ext: str | None = None) -> None:
        body = self.read("[Content_Types].xml")
        if ext is not None:
            if re.search(rb'<' + P + rb'Default\s[^>]*Extension="' + ext.encode() + rb'"', body, re.I):
                return
            entry = f'<Default Extension="{ext}" ContentType="{ctype}"/>'
        else:
            entry = f'<Override PartName="/{part}" ContentType="{ctype}"/>'
        self.write("[Content_Types].xml", insert_before_close(body, b"Types", entry.encode()))

    def drop(self, name: str) -> None:
        self.dropped.add(name)

    def free_name(self, pattern: str) -> str:
        n = 1
        while self.has(pattern.format(n)):
            n += 1
        return pattern.format(n)

    def render(self) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for info in self.zf.infolist():
                if info.filename in self.dropped:
                    continue
                if info.filename in self.changed:
                    dst.writestr(_clone_info(info), self.changed[info.filename])
                else:
                    _copy_raw(self.data, info, dst)
            for name, body in self.changed.items():
                if name not in self.names:
                    dst.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), body,
                                 compress_type=zipfile.ZIP_DEFLATED)
        return out.getvalue()


def _clone_info(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    new = zipfile.ZipInfo(info.filename, info.date_time)
    new.compress_type, new.external_attr = info.compress_type, info.external_attr
    new.create_system, new.comment = info.create_system, info.comment
    return new


def _copy_raw(data: bytes, info: zipfile.ZipInfo, dst: zipfile.ZipFile) -> None:
    """Copy one member's compressed bytes unchanged (no inflate, no deflate)."""
    start = info.header_offset
    if info.flag_bits & 0x1 or data[start:start + 4] != b"PK\x03\x04" or info.file_size > 0xFFFFFFF0:
        dst.writestr(_clone_info(info), zipfile.ZipFile(io.BytesIO(data)).read(info.filename))
        return
    name_len = int.from_bytes(data[start + 26:start + 28], "little")
    extra_len = int.from_bytes(data[start + 28:start + 30], "little")
    body = data[start + 30 + name_len + extra_len:][:info.compress_size]
    new = _clone_info(info)
    new.CRC, new.compress_size, new.file_size = info.CRC, info.compress_size, info.file_size
    new.flag_bits = info.flag_bits & ~0x08
    new.header_offset = dst.fp.tell()  # type: ignore[union-attr]
    dst.fp.write(new.FileHeader())  # type: ignore[union-attr]
    dst.fp.write(body)  # type: ignore[union-attr]
    dst.start_dir = dst.fp.tell()  # type: ignore[union-attr,attr-defined]
    dst.filelist.append(new)
    dst.NameToInfo[new.filename] = new
    dst._didModify = True  # type: ignore[attr-defined]


def insert_before_close(body: bytes, tag: bytes, entry: bytes) -> bytes:
    """Insert `entry` just before the last `</tag>`; a self-closing `<tag/>` is opened first."""
    close = re.compile(rb"</(" + P + tag + rb")\s*>")
    last = None
    for last in close.finditer(body):
        pass
    if last is not None:
        return body[:last.start()] + entry + body[last.start():]
    m = re.search(rb"<(" + P + tag + rb")\b([^>]*?)/>", body)
    if not m:
        raise Unsupported(f"no <{tag.decode()}> element")
    name = m.group(1)
    return body[:m.start()] + b"<" + name + m.group(2) + b">" + entry + b"</" + name + b">" + body[m.end():]


def set_attr(tag: bytes, name: bytes, value: bytes) -> bytes:
    """A start tag with attribute `name` set to `value` (replaced or added)."""
    pat = re.compile(rb"(\s" + name + rb'=")[^"]*(")')
    if pat.search(tag):
        return pat.sub(lambda m: m.group(1) + value + m.group(2), tag, count=1)
    end = len(tag) - (2 if tag.endswith(b"/>") else 1)
    return tag[:end] + b" " + name + b'="' + value + b'"' + tag[end:]


def get_attr(tag: bytes, name: bytes) -> bytes | None:
    m = re.search(rb"\s" + name + rb'="([^"]*)"', tag)
    return m.group(1) if m else None


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
        self._codes: dict[int, str | None] = {}

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
        xfs = self.xfs + self.new_xfs
        if self.fill_code(xf) == code:
            return xf
        fill_id = self._fill_id(code)
        start = re.match(rb"<[^>]*>", xfs[xf] if 0 <= xf < len(xfs) else xfs[0])
        assert start is not None
        tag = set_attr(set_attr(start.group(0), b"fillId", b"%d" % fill_id), b"applyFill", b"1")
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
        if not self.new_xfs:
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
        return body


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


# ---------------------------------------------------------------- notes (comments + VML)

VML_NS = {"v": "urn:schemas-microsoft-com:vml", "o": "urn:schemas-microsoft-com:office:office",
          "x": "urn:schemas-microsoft-com:office:excel"}
_SHAPETYPE = ('<{v}shapetype id="_x0000_t202" coordsize="21600,21600" {o}spt="202" '
              'path="m,l,21600r21600,l21600,xe"><{v}stroke joinstyle="miter"/>'
              '<{v}path gradientshapeok="t" {o}connecttype="rect"/></{v}shapetype>')
_SHAPE = ('<{v}shape id="_x0000_s{n}" type="#_x0000_t202" style="position:absolute;'
          'margin-left:59.25pt;margin-top:1.5pt;width:195pt;height:75pt;z-index:{z};visibility:hidden" '
          'fillcolor="#ffffe1" {o}insetmode="auto"><{v}fill color2="#ffffe1"/>'
          '<{v}shadow on="t" color="black" obscured="t"/><{v}path {o}connecttype="none"/>'
          '<{v}textbox style="mso-direction-alt:auto"><div style="text-align:left"></div></{v}textbox>'
          '<{x}ClientData ObjectType="Note"><{x}MoveWithCells/><{x}SizeWithCells/>'
          '<{x}Anchor>{c1}, 15, {r1}, 10, {c2}, 15, {r2}, 4</{x}Anchor><{x}AutoFill>False</{x}AutoFill>'
          '<{x}Row>{row}</{x}Row><{x}Column>{col}</{x}Column></{x}ClientData></{v}shape>')


class Notes:
    """The sheet's comments part and its legacy VML drawing (Excel shows a note only with both)."""

    def __init__(self, pkg: Package, sheet_path: str) -> None:
        self.pkg, self.sheet_path = pkg, sheet_path
        rels = pkg.rels(sheet_path)
        self.part = next((t for _, k, t in rels if k.endswith("/comments") and pkg.has(t)), None)
        self.vml = next((t for _, k, t in rels if k.endswith("/vmlDrawing") and pkg.has(t)), None)
        self.texts: dict[str, str] = read_comments(pkg.zf, self.part) if self.part else {}
        self.authors: list[str] = []
        self.author_of: dict[str, int] = {}
        if self.part:
            for el in DET.fromstring(pkg.read(self.part)).iter():
                if local(el.tag) == "author":
                    self.authors.append(el.text or "")
                elif local(el.tag) == "comment":
                    self.author_of[el.get("ref", "")] = int(el.get("authorId", 0))
        self.edits: dict[str, str | None] = {}

    def get(self, ref: str) -> str | None:
        return self.edits[ref] if ref in self.edits else self.texts.get(ref)

    def set(self, ref: str, text: str | None) -> None:
        self.edits[ref] = text or None

    def render(self, sheet: Sheet) -> list[tuple[int, int, int, bytes]]:
        """Write the comments and VML parts; returns the sheet edit that links new ones, if any."""
        edits = {r: t for r, t in self.edits.items() if t != self.texts.get(r)}
        if not edits:
            return []
        sheet_edit: list[tuple[int, int, int, bytes]] = []
        if self.part is None:
            if self.vml is not None or re.search(rb"<" + P + rb"legacyDrawing\s", sheet.body):
                raise Unsupported("a sheet with a legacy drawing but no comments")
            sheet_edit = self._create(sheet)
        elif self.vml is None:
            raise Unsupported("a comments part without its VML drawing")
        self._write_comments(edits)
        self._write_vml([r for r, t in edits.items() if t and r not in self.texts],
                        [r for r, t in edits.items() if not t and r in self.texts])
        return sheet_edit

    def _create(self, sheet: Sheet) -> list[tuple[int, int, int, bytes]]:
        pkg = self.pkg
        self.part = pkg.free_name("xl/comments{}.xml")
        self.vml = pkg.free_name("xl/drawings/vmlDrawing{}.vml")
        pkg.write(self.part, (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<comments xmlns='
                              f'"{MAIN_NS}"><authors></authors><commentList></commentList></comments>').encode())
        decls = " ".join(f'xmlns:{k}="{u}"' for k, u in VML_NS.items())
        pkg.write(self.vml, f'<xml {decls}><o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="1"/>'
                            f'</o:shapelayout>{_SHAPETYPE.format(v="v:", o="o:")}</xml>'.encode())
        pkg.add_rel(self.sheet_path, "comments", self.part)
        rid = pkg.add_rel(self.sheet_path, "vmlDrawing", self.vml)
        pkg.add_content_type(self.part, "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml")
        pkg.add_content_type(None, "application/vnd.openxmlformats-officedocument.vmlDrawing", ext="vml")
        xml = (b"<" + sheet.prefix + b'legacyDrawing xmlns:r="' + REL_NS.encode() + b'" r:id="'
               + rid.encode() + b'"/>')
        pos = _legacy_drawing_position(sheet)
        return [(pos, pos, 0, xml)]

    def _write_comments(self, edits: dict[str, str | None]) -> None:
        assert self.part is not None
        body = self.pkg.read(self.part)
        m = re.match(rb"<(" + P + rb")", root_tag(body))
        p = m.group(1) if m else b""

        def element(ref: str, text: str) -> bytes:
            author = self.authors[self.author_of[ref]] if ref in self.author_of and \
                self.author_of[ref] < len(self.authors) and self.authors[self.author_of[ref]] else "sheetsync"
            if author not in self.authors:
                self.authors.append(author)
                self.new_authors.append(author)
            return (b"<" + p + b'comment ref="' + ref.encode() + b'" authorId="%d"><' % self.authors.index(author)
                    + p + b"text><" + p + b't xml:space="preserve">' + esc(text) + b"</" + p + b"t></"
                    + p + b"text></" + p + b"comment>")

        self.new_authors: list[str] = []
        pending = dict(edits)

        def replace(m: re.Match[bytes]) -> bytes:
            ref = (get_attr(m.group(0)[:m.group(0).index(b">") + 1], b"ref") or b"").decode()
            if ref not in pending:
                return m.group(0)
            text = pending.pop(ref)
            return element(ref, text) if text else b""

        body = re.sub(rb"<(" + P + rb")comment\b[^>]*?(?:/>|>.*?</\1comment>)", replace, body, flags=re.S)
        new = b"".join(element(r, t) for r, t in pending.items() if t)
        if new:
            body = insert_before_close(body, b"commentList", new)
        if self.new_authors:
            body = insert_before_close(body, b"authors", b"".join(
                b"<" + p + b"author>" + esc(a) + b"</" + p + b"author>" for a in self.new_authors))
        self.pkg.write(self.part, body)

    def _write_vml(self, added: list[str], removed: list[str]) -> None:
        assert self.vml is not None
        body = self.pkg.read(self.vml)
        root = root_tag(body)
        prefixes = {u.decode(): k.decode() for k, u in re.findall(rb'\sxmlns:([\w.-]+)="([^"]*)"', root)}
        if any(u not in prefixes for u in VML_NS.values()):
            raise Unsupported("a VML drawing without the usual namespaces")
        names = {k: prefixes[u] + ":" for k, u in VML_NS.items()}
        gone = {_cell_of(r) for r in removed}

        def keep(m: re.Match[bytes]) -> bytes:
            row = re.search(rb"<" + P + rb"Row>\s*(\d+)\s*<", m.group(0))
            col = re.search(rb"<" + P + rb"Column>\s*(\d+)\s*<", m.group(0))
            note = b'ObjectType="Note"' in m.group(0)
            hit = note and row and col and (int(row.group(1)) + 1, int(col.group(1)) + 1) in gone
            return b"" if hit else m.group(0)

        body = re.sub(rb"<(" + P + rb")shape\b[^>]*>.*?</\1shape>", keep, body, flags=re.S)
        if b"_x0000_t202" not in body:
            body = insert_before_close(body, b"xml", _SHAPETYPE.format(**names).encode())
        n = max([int(i) for i in re.findall(rb"_x0000_s(\d+)", body)] or [1024])
        shapes = []
        for i, ref in enumerate(added, start=1):
            row, col = _cell_of(ref)
            shapes.append(_SHAPE.format(**names, n=n + i, z=i, c1=col, r1=max(row - 2, 0), c2=col + 2,
                                        r2=row + 3, row=row - 1, col=col - 1).encode())
        if shapes:
            body = insert_before_close(body, b"xml", b"".join(shapes))
        self.pkg.write(self.vml, body)


def _cell_of(ref: str) -> tuple[int, int]:
    m = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    assert m is not None
    return int(m.group(2)), col_number(m.group(1))


def _legacy_drawing_position(sheet: Sheet) -> int:
    """Where <legacyDrawing> goes in CT_Worksheet's element order (before these, or the end)."""
    later = rb"<" + P + rb"(?:legacyDrawingHF|drawingHF|picture|oleObjects|controls|webPublishItems|tableParts)\b"
    m = re.compile(later).search(sheet.body, sheet.end)
    end = sheet.body.rindex(b"</" + sheet.prefix + b"worksheet>")
    tail = sheet.body[sheet.end:end].rstrip()
    ext = b"</" + sheet.prefix + b"extLst>"
    if tail.endswith(ext):  # the worksheet's own extLst is its last child: find where it opens
        depth, pos = 0, sheet.end + len(tail)
        for t in reversed(list(re.finditer(rb"</?" + re.escape(sheet.prefix) + rb"extLst\b", sheet.body,
                                           ))):
            if t.start() >= pos or t.start() < sheet.end:
                continue
            depth += -1 if t.group(0).startswith(b"</") else 1
            if depth == 0:
                end = t.start()
                break
    return min(m.start(), end) if m else end


# ---------------------------------------------------------------- workbook, report tab, recalc

def workbook_part(pkg: Package) -> str:
    part = next((t for _, k, t in pkg.rels("") if k.endswith("/officeDocument")), None)
    if not part or not pkg.has(part):
        raise Unsupported("no workbook part")
    return part


def sheet_paths(pkg: Package, book: str) -> list[tuple[str, str]]:
    """(name, zip path) of every worksheet, in tab order."""
    targets = {rid: target for rid, _, target in pkg.rels(book)}
    out = []
    for el in DET.fromstring(pkg.read(book)).iter():
        if local(el.tag) == "sheet":
            rid = el.get(f"{{{REL_NS}}}id")
            out.append((el.get("name", ""), targets.get(rid or "", "")))
    return out


def write_report(pkg: Package, book: str, report: ReportTab) -> None:
    """Rewrite the report tab's cells (all inline strings), creating the tab when it is missing."""
    path = dict(sheet_paths(pkg, book)).get(report.name)
    if path is None:
        path = pkg.free_name("xl/worksheets/sheet{}.xml")
        pkg.write(path, f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns='
                        f'"{MAIN_NS}"><sheetData/></worksheet>'.encode())
        rid = pkg.add_rel(book, "worksheet", path)
        pkg.add_content_type(path, "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml")
        body = pkg.read(book)
        ids = [int(i) for i in re.findall(rb'<' + P + rb'sheet\s[^>]*?sheetId="(\d+)"', body)]
        p = re.match(rb"<(" + P + rb")", root_tag(body))
        entry = (b"<" + (p.group(1) if p else b"") + b'sheet name="' + esc(report.name, True)
                 + b'" sheetId="%d" xmlns:r="' % (max(ids or [0]) + 1) + REL_NS.encode()
                 + b'" r:id="' + rid.encode() + b'"/>')
        pkg.write(book, insert_before_close(body, b"sheets", entry))
    sheet = Sheet(pkg.read(path))
    rows = []
    for r, row in enumerate(report.rows, start=1):
        cells = b"".join(value_cell(sheet.prefix, f"{column_letter(c)}{r}", 0, str(text))
                         for c, text in enumerate(row, start=1) if text not in (None, ""))
        if cells:
            rows.append(b"<" + sheet.prefix + b'row r="%d">' % r + cells + b"</" + sheet.prefix + b"row>")
    body = sheet.body[:sheet.start] + b"".join(rows) + sheet.body[sheet.end:]
    width = max((len(r) for r in report.rows), default=1) or 1
    ref = f"A1:{column_letter(width)}{max(len(report.rows), 1)}".encode()
    body = re.sub(rb'(<' + P + rb'dimension\s+ref=")[^"]*"', lambda m: m.group(1) + ref + b'"', body, count=1)
    pkg.write(path, body)


def force_recalc(pkg: Package, book: str, drop_chain: bool) -> None:
    """Values changed under formulas: ask Excel to recalculate on open (as openpyxl's files do);
    a removed formula also drops calcChain.xml, which Excel rebuilds."""
    body = pkg.read(book)
    m = re.search(rb"<" + P + rb"calcPr\b[^>]*?/?>", body)
    if m:
        tag = m.group(0)
        body = body[:m.start()] + set_attr(tag, b"fullCalcOnLoad", b"1") + body[m.end():]
    else:
        p = re.match(rb"<(" + P + rb")", root_tag(body))
        later = re.compile(rb"<" + P + rb"(?:oleSize|customWorkbookViews|pivotCaches|smartTagPr|smartTagTypes|"
                           rb"webPublishing|fileRecoveryPr|webPublishObjects|extLst)\b|</" + P + rb"workbook>")
        sheets_end = body.find(b"sheets>")
        at = later.search(body, max(sheets_end, 0))
        assert at is not None
        body = body[:at.start()] + b"<" + (p.group(1) if p else b"") + b'calcPr fullCalcOnLoad="1"/>' + body[at.start():]
    pkg.write(book, body)
    chain = next((t for _, k, t in pkg.rels(book) if k.endswith("/calcChain")), "xl/calcChain.xml")
    if drop_chain and chain and pkg.has(chain):
        pkg.drop(chain)
        folder, base = posixpath.split(book)
        rels = posixpath.join(folder, "_rels", base + ".rels")
        pkg.write(rels, re.sub(rb"<" + P + rb'Relationship\s[^>]*?/calcChain"[^>]*/>', b"", pkg.read(rels)))
        pkg.write("[Content_Types].xml", re.sub(rb"<" + P + rb'Override\s[^>]*?PartName="/' + re.escape(chain.encode())
                                                + rb'"[^>]*/>', b"", pkg.read("[Content_Types].xml")))


# ---------------------------------------------------------------- the entry point

_NOT_MARKED: Any = object()


def patch_xlsx(data: bytes, sheet: str | None, patches: Sequence[Patch], report: ReportTab | None,
               where: str = "") -> PatchResult:
    """Apply patches (already checked against the read) and the report tab to workbook bytes."""
    pkg = Package(data)
    if any(n.startswith("xl/threadedComments/") for n in pkg.names):
        raise Unsupported("threaded comments")  # openpyxl's path (and its loss guard) decides
    book = workbook_part(pkg)
    sheets = sheet_paths(pkg, book)
    name = sheet or (sheets[0][0] if sheets else "")
    path = dict(sheets).get(name)
    if path is None or not pkg.has(path):
        raise SourceError(f"no sheet named {name!r}", where=where,
                          hint="sheets in this workbook: " + ", ".join(n for n, _ in sheets))
    if report is not None and report.name == name:
        raise SourceError("the report tab has the same name as the synced sheet", where=where,
                          hint="set a different `report_tab` name in the layout")
    ws = Sheet(pkg.read(path))
    styles_path = next((t for _, k, t in pkg.rels(book) if k.endswith("/styles")), None)
    if styles_path is None:
        raise Unsupported("a workbook without styles.xml")
    styles, notes = Styles(pkg.read(styles_path)), Notes(pkg, path)
    merged = ws.merged()
    applied, deferred, prior = [], [], {}
    for patch in patches:
        if any(r1 <= patch.row <= r2 and c1 <= patch.col <= c2 and (patch.row, patch.col) != (r1, c1)
               for r1, c1, r2, c2 in merged):
            deferred.append(patch)
            continue
        before = _apply_one(ws, styles, notes, patch)
        if before is not _NOT_MARKED:
            prior[(patch.row, patch.col)] = before
        applied.append(patch)
    if applied:
        pkg.write(path, ws.render(notes.render(ws)))
        pkg.write(styles_path, styles.render())
        if any(p.write for p in applied):
            force_recalc(pkg, book, ws.formula_removed)
    if report is not None:
        write_report(pkg, book, report)
    return PatchResult(pkg.render(), tuple(applied), tuple(deferred), prior)


def _apply_one(ws: Sheet, styles: Styles, notes: Notes, patch: Patch) -> Any:
    """One patch, with the same meaning as xlsx._apply_patch; returns the prior fill of a new mark."""
    from .xlsx import default_mark_colours
    ref = f"{column_letter(patch.col)}{patch.row}"
    if patch.write:
        ws.set(patch.row, patch.col, value=patch.value)
    cell = ws.cell(patch.row, patch.col)
    old_note = notes.get(ref)
    if patch.clear:
        current = styles.fill_code(cell.style)
        ours = {patch.fill.upper()} if patch.fill else default_mark_colours()
        if current is not None and current.upper() in ours:
            ws.set(patch.row, patch.col, style=styles.with_fill(cell.style, _norm(patch.restore_fill)))
        if is_our_note(old_note):
            notes.set(ref, strip_note(old_note))
        return _NOT_MARKED
    prior: Any = _NOT_MARKED
    if patch.fill:
        if not is_our_note(old_note):
            prior = styles.fill_code(cell.style)
        ws.set(patch.row, patch.col, style=styles.with_fill(cell.style, _norm(patch.fill)))
    if patch.note:
        notes.set(ref, merge_note(old_note, patch.note))
    return prior


def _norm(code: str | None) -> str | None:
    return code.upper() if code and "|" not in code else code
