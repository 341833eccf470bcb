"""Notes for the direct xlsx patch: the sheet's comments part and its legacy VML drawing (Excel
shows a note only with both), with the relationships and content types that link new ones.
"""
from __future__ import annotations

import re

from defusedxml import ElementTree as DET

from .. import NOTE_PREFIX, NOTE_SEPARATOR, strip_note
from .guard import read_comments
from .package import (MAIN_NS, REL_NS, P, Package, Unsupported, col_number, esc, get_attr,
                           insert_before_close, local, root_tag)
from .sheetxml import Sheet

# ---------------------------------------------------------------- notes (comments + VML)

VML_NS = {"v": "urn:schemas-microsoft-com:vml", "o": "urn:schemas-microsoft-com:office:office",
          "x": "urn:schemas-microsoft-com:office:excel"}
_SHAPETYPE = ('<{v}shapetype{d} id="_x0000_t202" coordsize="21600,21600" {o}spt="202" '
              'path="m,l,21600r21600,l21600,xe"><{v}stroke joinstyle="miter"/>'
              '<{v}path gradientshapeok="t" {o}connecttype="rect"/></{v}shapetype>')
_SHAPE = ('<{v}shape{d} id="_x0000_s{n}" type="#_x0000_t202" style="position:absolute;'
          'margin-left:59.25pt;margin-top:1.5pt;width:195pt;height:75pt;z-index:{z};visibility:hidden" '
          'fillcolor="#ffffe1" {o}insetmode="auto"><{v}fill color2="#ffffe1"/>'
          '<{v}shadow on="t" color="black" obscured="t"/><{v}path {o}connecttype="none"/>'
          '<{v}textbox style="mso-direction-alt:auto"><div style="text-align:left"></div></{v}textbox>'
          '<{x}ClientData ObjectType="Note"><{x}MoveWithCells/><{x}SizeWithCells/>'
          '<{x}Anchor>{c1}, 15, {r1}, 10, {c2}, 15, {r2}, 4</{x}Anchor><{x}AutoFill>False</{x}AutoFill>'
          '<{x}Row>{row}</{x}Row><{x}Column>{col}</{x}Column></{x}ClientData></{v}shape>')


class Notes:
    """The sheet's comments part and its legacy VML drawing (Excel shows a note only with both)."""

    def __init__(self, pkg: Package, sheet_path: str, sheet: Sheet) -> None:
        self.pkg, self.sheet_path = pkg, sheet_path
        rels = pkg.rels(sheet_path)
        self.part = next((t for _, k, t in rels if k.endswith("/comments") and pkg.has(t)), None)
        # The notes' VML is the one <legacyDrawing> names: a print-header picture's VML
        # (<legacyDrawingHF>) has the same relationship type and is often listed first.
        rid = _legacy_drawing_id(sheet)
        self.vml = next((t for i, k, t in rels if i == rid and k.endswith("/vmlDrawing") and pkg.has(t)), None)
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
            if self.vml is not None or _legacy_drawing_id(sheet) is not None:
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
        block = _free_idmap(pkg)  # shape ids apart from any other VML's (a header picture's)
        pkg.write(self.vml, f'<xml {decls}><o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="{block}"/>'
                            f'</o:shapelayout>{_SHAPETYPE.format(v="v:", o="o:", d="")}</xml>'.encode())
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
            kept = _persons_runs_kept(m.group(0), self.texts.get(ref), text, p) if text else None
            return kept if kept is not None else element(ref, text) if text else b""

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
        if all(u in prefixes for u in VML_NS.values()):
            names = {k: prefixes[u] + ":" for k, u in VML_NS.items()} | {"d": ""}
        else:  # declared on each element (openpyxl's VML): new shapes declare their own
            names = {k: k + ":" for k in VML_NS} | {"d": "".join(f' xmlns:{k}="{u}"' for k, u in VML_NS.items())}
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
        idmap = re.search(rb'idmap\b[^>]*\bdata="(\d+)', body)
        n = max([int(i) for i in re.findall(rb"_x0000_s(\d+)", body)] or [int(idmap.group(1)) * 1024 if idmap else 1024])
        shapes = []
        for i, ref in enumerate(added, start=1):
            row, col = _cell_of(ref)
            shapes.append(_SHAPE.format(**names, n=n + i, z=i, c1=col, r1=max(row - 2, 0), c2=col + 2,
                                        r2=row + 3, row=row - 1, col=col - 1).encode())
        if shapes:
            body = insert_before_close(body, b"xml", b"".join(shapes))
        self.pkg.write(self.vml, body)


def _persons_runs_kept(comment: bytes, old: str | None, new: str, p: bytes) -> bytes | None:
    """The comment element with the person's own note XML kept byte for byte (bold author line,
    fonts) and sheetsync's part as one run of its own after it, or without that run when the mark
    clears: so clearing restores their note exactly. None when the person's part changed (or there
    is none): the note is then written as plain text."""
    human = strip_note(new)
    if not human or human != strip_note(old) or not re.search(rb"</" + P + rb"text>", comment):
        return None
    ours = new[len(human):]  # "\n---\nsheetsync: ..." or "" when the mark clears

    def drop_ours(m: re.Match[bytes]) -> bytes:
        return b"" if _texts(m.group(0)).startswith(NOTE_SEPARATOR + NOTE_PREFIX) else m.group(0)

    body = re.sub(rb"<(" + P + rb")r>.*?</\1r>", drop_ours, comment, flags=re.S)
    if _texts(body) != human:  # our text is not a run of its own (another program rewrote the note)
        return None
    if ours:
        run = b"<" + p + b"r><" + p + b't xml:space="preserve">' + esc(ours) + b"</" + p + b"t></" + p + b"r>"
        body = insert_before_close(body, b"text", run)
    return body


def _texts(xml: bytes) -> str:
    """The text of every <t> in a slice of a comments part, entities resolved."""
    texts = re.findall(rb"<" + P + rb"t\b[^>]*>([^<]*)<", xml)
    return DET.fromstring(b"<t>" + b"".join(texts) + b"</t>").text or ""


_LEGACY_DRAWING = re.compile(rb"<" + P + rb"legacyDrawing(?=[\s/>])[^>]*?\s[\w.-]+:id=\"([^\"]*)\"")


def _legacy_drawing_id(sheet: Sheet) -> str | None:
    """The relationship id of the sheet's <legacyDrawing> (the notes' VML), not <legacyDrawingHF>;
    searched after <sheetData> only, where CT_Worksheet keeps it."""
    m = _LEGACY_DRAWING.search(sheet.body, sheet.end)
    return m.group(1).decode() if m else None


def _free_idmap(pkg: Package) -> int:
    """A VML shape-id block (o:idmap data) no VML part of the workbook uses yet."""
    used = {0}
    for name in pkg.names | set(pkg.changed):
        if name.endswith(".vml") and pkg.has(name):
            for m in re.finditer(rb'idmap\b[^>]*\bdata="([\d,\s]+)"', pkg.read(name)):
                used.update(int(n) for n in re.findall(rb"\d+", m.group(1)))
    return max(used) + 1


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
