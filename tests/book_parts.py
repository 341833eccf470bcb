"""Workbooks built part by part for the tests: what openpyxl cannot write (Strict Open XML, an
OpenDocument spreadsheet, header pictures, threaded comments) made from its output by editing the
zip's parts, so every test file that needs one builds the same thing."""
from __future__ import annotations

import io
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
