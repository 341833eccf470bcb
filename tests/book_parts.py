"""Workbooks built part by part for the tests: what openpyxl cannot write (Strict Open XML, an
OpenDocument spreadsheet, header pictures, threaded comments) made from its output by editing the
zip's parts, so every test file that needs one builds the same thing."""
from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Callable

import openpyxl

TRANSITIONAL = {b"http://schemas.openxmlformats.org/spreadsheetml/2006/main":
                b"http://purl.oclc.org/ooxml/spreadsheetml/main",
                b"http://schemas.openxmlformats.org/officeDocument/2006/relationships":
                b"http://purl.oclc.org/ooxml/officeDocument/relationships"}


def simple_book(path: Path, rows: list[list[object]], title: str = "Customers") -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def rewrite_parts(path: Path, edit: Callable[[str, bytes], bytes | None],
                  extra: dict[str, bytes] | None = None) -> None:
    """Rewrite every member through `edit(name, body)` (None drops it) and add `extra` ones."""
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    parts = {n: src.read(n) for n in src.namelist()}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, body in parts.items():
            new = edit(name, body)
            if new is not None:
                dst.writestr(name, new)
        for name, body in (extra or {}).items():
            dst.writestr(name, body)
    path.write_bytes(out.getvalue())


def strict_book(path: Path, rows: list[list[object]], title: str = "Customers") -> Path:
    """The same workbook in Excel's "Strict Open XML" namespaces (what Excel's "Strict Open XML
    Spreadsheet" save gives): calamine reads it."""
    simple_book(path, rows, title)

    def strict(name: str, body: bytes) -> bytes:
        if name == "[Content_Types].xml":
            return body
        for old, new in TRANSITIONAL.items():
            body = body.replace(old, new)
        return body
    rewrite_parts(path, strict)
    return path


def ods_book(path: Path, rows: list[list[str]], title: str = "Customers") -> Path:
    """A minimal OpenDocument spreadsheet (text cells), as LibreOffice's own files are laid out."""
    cells = "".join("<table:table-row>" + "".join(
        f'<table:table-cell office:value-type="string"><text:p>{c}</text:p></table:table-cell>' for c in row)
        + "</table:table-row>" for row in rows)
    content = ('<?xml version="1.0" encoding="UTF-8"?><office:document-content '
               'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
               'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
               'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
               f'<office:body><office:spreadsheet><table:table table:name="{title}">{cells}</table:table>'
               '</office:spreadsheet></office:body></office:document-content>')
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
                '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                '<manifest:file-entry manifest:full-path="/" manifest:media-type='
                '"application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry '
                'manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content)
        z.writestr("META-INF/manifest.xml", manifest)
    path.write_bytes(out.getvalue())
    return path


# 1x1 transparent PNG: a header logo
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
VML_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/vmlDrawing"
HF_VML = (b'<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
          b'xmlns:x="urn:schemas-microsoft-com:office:excel"><o:shapelayout v:ext="edit">'
          b'<o:idmap v:ext="edit" data="1"/></o:shapelayout><v:shapetype id="_x0000_t75" '
          b'coordsize="21600,21600" o:spt="75" o:preferrelative="t" path="m@4@5l@4@11@9@11@9@5xe" '
          b'filled="f" stroked="f"><v:stroke joinstyle="miter"/><o:lock v:ext="edit" aspectratio="t"/>'
          b'</v:shapetype><v:shape id="CH" o:spid="_x0000_s1025" type="#_x0000_t75" '
          b'style="position:absolute;margin-left:0;margin-top:0;width:60pt;height:20pt;z-index:1">'
          b'<v:imagedata o:relid="rId1" o:title="logo"/><o:lock v:ext="edit" rotation="t"/></v:shape></xml>')
_REL_XML = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns='
            b'"http://schemas.openxmlformats.org/package/2006/relationships">%s</Relationships>')


def add_header_picture(path: Path, sheet: str = "xl/worksheets/sheet1.xml") -> None:
    """Give the sheet a print-header logo as Excel stores it: `&G` in the header, a
    `<legacyDrawingHF>` whose VML (same relationship type as the notes' VML, listed first in the
    sheet's rels) shows xl/media/headerlogo.png."""
    folder, base = sheet.rsplit("/", 1)
    rels = f"{folder}/_rels/{base}.rels"
    hf_rel = (f'<Relationship Id="rIdHF1" Type="{VML_REL}" Target="../drawings/vmlDrawingHF1.vml"/>').encode()
    names = set(zipfile.ZipFile(io.BytesIO(path.read_bytes())).namelist())
    image_rel = (b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                 b'relationships/image" Target="../media/headerlogo.png"/>')
    extra = {"xl/drawings/vmlDrawingHF1.vml": HF_VML, "xl/media/headerlogo.png": PNG,
             "xl/drawings/_rels/vmlDrawingHF1.vml.rels": _REL_XML % image_rel}
    if rels not in names:
        extra[rels] = _REL_XML % hf_rel

    def edit(name: str, body: bytes) -> bytes:
        if name == rels:  # first in the list, as Excel often writes it
            at = body.index(b">", body.index(b"<Relationships")) + 1
            return body[:at] + hf_rel + body[at:]
        if name == sheet:
            return _with_hf_elements(body)
        if name == "[Content_Types].xml":
            for ext, ctype in ((b"vml", b"application/vnd.openxmlformats-officedocument.vmlDrawing"),
                               (b"png", b"image/png")):
                if b'Extension="' + ext + b'"' not in body:
                    at = body.index(b">", body.index(b"<Types")) + 1
                    body = body[:at] + b'<Default Extension="' + ext + b'" ContentType="' + ctype + b'"/>' + body[at:]
        return body
    rewrite_parts(path, edit, extra)


def _with_hf_elements(body: bytes) -> bytes:
    """headerFooter and legacyDrawingHF in CT_Worksheet's order (pageMargins, pageSetup,
    headerFooter, ..., legacyDrawing, legacyDrawingHF, picture, ..., tableParts, extLst)."""
    if b"<headerFooter" not in body:
        m = re.search(rb"<pageSetup\b[^>]*/>|<pageMargins\b[^>]*/>", body)
        at = m.end() if m else body.index(b"</sheetData>") + len(b"</sheetData>")
        body = body[:at] + b"<headerFooter><oddHeader>&amp;C&amp;G</oddHeader></headerFooter>" + body[at:]
    m = re.search(rb"<(?:picture|oleObjects|controls|webPublishItems|tableParts|extLst)\b|</worksheet>", body)
    assert m is not None
    return (body[:m.start()] + b'<legacyDrawingHF xmlns:r="http://schemas.openxmlformats.org/'
            b'officeDocument/2006/relationships" r:id="rIdHF1"/>' + body[m.start():])


TC_REL = "http://schemas.microsoft.com/office/2017/10/relationships/threadedComment"
PERSON_REL = "http://schemas.microsoft.com/office/2017/10/relationships/person"


def add_threaded_comment(path: Path, sheet: str = "xl/worksheets/sheet2.xml", ref: str = "A1") -> None:
    """A threaded comment (Excel 365's "Comments", with replies) on one sheet, stored as Excel
    stores it: the threadedComments part, the workbook's persons list, both linked by rels."""
    folder, base = sheet.rsplit("/", 1)
    rels = f"{folder}/_rels/{base}.rels"
    tc = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<ThreadedComments xmlns='
          b'"http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments"><threadedComment ref="'
          + ref.encode() + b'" dT="2024-03-05T09:30:00.00" personId="{6D3D5B1C-0000-4000-8000-000000000001}" '
          b'id="{6D3D5B1C-0000-4000-8000-0000000000AA}"><text>Is this still right?</text></threadedComment>'
          b'</ThreadedComments>')
    persons = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<personList xmlns='
               b'"http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments"><person displayName='
               b'"Li Na" id="{6D3D5B1C-0000-4000-8000-000000000001}" userId="li@example.cn" providerId="None"/>'
               b'</personList>')
    names = set(zipfile.ZipFile(io.BytesIO(path.read_bytes())).namelist())
    tc_rel = f'<Relationship Id="rIdTC1" Type="{TC_REL}" Target="../threadedComments/threadedComment1.xml"/>'.encode()
    extra = {"xl/threadedComments/threadedComment1.xml": tc, "xl/persons/person.xml": persons}
    if rels not in names:
        extra[rels] = _REL_XML % tc_rel

    def edit(name: str, body: bytes) -> bytes:
        if name == rels:
            return body.replace(b"</Relationships>", tc_rel + b"</Relationships>")
        if name == "xl/_rels/workbook.xml.rels":
            return body.replace(b"</Relationships>", f'<Relationship Id="rIdP1" Type="{PERSON_REL}" '
                                f'Target="persons/person.xml"/></Relationships>'.encode())
        if name == "[Content_Types].xml":
            return body.replace(b"</Types>", b'<Override PartName="/xl/threadedComments/threadedComment1.xml" '
                                b'ContentType="application/vnd.ms-excel.threadedcomments+xml"/><Override PartName='
                                b'"/xl/persons/person.xml" ContentType="application/vnd.ms-excel.person+xml"/></Types>')
        return body
    rewrite_parts(path, edit, extra)
