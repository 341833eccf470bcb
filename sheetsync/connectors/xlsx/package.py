"""The workbook zip for the direct xlsx patch: members read lazily, changed ones rewritten, the rest
copied raw (compressed bytes untouched), plus the byte-level XML helpers every part editor shares.
"""
from __future__ import annotations

import io
import posixpath
import re
import zipfile
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree as DET

from ...text import XML_ILLEGAL as _ILLEGAL  # what openpyxl strips, too

P = rb"(?:[\w.-]+:)?"  # an optional namespace prefix on an element name
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


class Unsupported(Exception):
    """This workbook needs something the direct patch cannot do; the caller falls back to openpyxl."""


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
