"""Helpers of tests/test_workbook_corpus.py: a workbook's parts, its cells' kinds, number formats and
formulas, and ECMA-376 schema validation (tests/ooxml_schemas, by xmlschema: lxml is kept out of
the test environment, since openpyxl changes how it writes notes when lxml is installed).
"""
from __future__ import annotations

import io
import posixpath
import re
import zipfile
from functools import lru_cache
from pathlib import Path

from xml.etree.ElementTree import Element

import xmlschema
from defusedxml import ElementTree as DET

SCHEMAS = Path(__file__).parent / "ooxml_schemas"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
XML_NS = "http://www.w3.org/XML/1998/namespace"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
TEXT_KINDS = {"s", "str", "inlineStr"}
# ECMA-376 part 1, 18.8.30: number formats 0-49 are built in (ids, not codes, are compared for them)


def parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        # some producers write Windows separators (xl\\workbook.xml); readers treat them as "/"
        return {n.replace("\\", "/"): zf.read(n) for n in zf.namelist() if not n.endswith(("/", "\\"))}


def xml(body: bytes) -> Element:
    return DET.fromstring(body)


def namespace(el: Element) -> str | None:
    return el.tag[1:].split("}", 1)[0] if isinstance(el.tag, str) and el.tag.startswith("{") else None


def rels(pk: dict[str, bytes], part: str) -> dict[str, tuple[str, str]]:
    """rId -> (type, zip path) of one part's relationships (external targets left out)."""
    folder, base = posixpath.split(part)
    body = pk.get(posixpath.join(folder, "_rels", base + ".rels"))
    out: dict[str, tuple[str, str]] = {}
    for el in (xml(body) if body else ()):
        if el.get("TargetMode") == "External":
            continue
        target = el.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        out[el.get("Id", "")] = (el.get("Type", "").rsplit("/", 1)[-1], path)
    return out


def rels_part(part: str) -> str:
    folder, base = posixpath.split(part)
    return posixpath.join(folder, "_rels", base + ".rels")


def workbook_part(pk: dict[str, bytes]) -> str:
    return next(p for t, p in rels(pk, "").values() if t == "officeDocument")


def sheet_paths(pk: dict[str, bytes]) -> dict[str, str]:
    """Sheet name -> zip path of its part, for every sheet of the workbook."""
    book = workbook_part(pk)
    targets = rels(pk, book)
    return {el.get("name"): targets.get(el.get(f"{{{REL}}}id"), ("", ""))[1]
            for el in xml(pk[book]).iter(f"{{{MAIN}}}sheet")}


def styles_part(pk: dict[str, bytes]) -> str:
    return next(p for t, p in rels(pk, workbook_part(pk)).values() if t == "styles")


def number_formats(pk: dict[str, bytes]) -> list[str]:
    """Per cellXfs index, its number format: the code of a custom one, "builtin:N" for a built-in."""
    root = xml(pk[styles_part(pk)])
    codes = {el.get("numFmtId"): el.get("formatCode") for el in root.iter(f"{{{MAIN}}}numFmt")}
    xfs = root.find(f"{{{MAIN}}}cellXfs")
    out = []
    for xf in (xfs if xfs is not None else ()):
        fid = xf.get("numFmtId", "0")
        out.append(codes.get(fid) or f"builtin:{fid}")
    return out


def cells(pk: dict[str, bytes], sheet_part: str) -> dict[str, dict]:
    """Cell ref -> {kind, format, formula, value} of every cell that holds a value or a formula."""
    formats = number_formats(pk)
    out = {}
    for c in xml(pk[sheet_part]).iter(f"{{{MAIN}}}c"):
        f, v, inline = c.find(f"{{{MAIN}}}f"), c.find(f"{{{MAIN}}}v"), c.find(f"{{{MAIN}}}is")
        if f is None and v is None and inline is None:
            continue
        kind = c.get("t", "n")
        style = int(c.get("s", "0"))
        out[c.get("r")] = {
            "kind": "text" if kind in TEXT_KINDS else kind,
            "format": formats[style] if style < len(formats) else f"missing xf {style}",
            "formula": None if f is None else (f.text, sorted(f.attrib.items())),
            "value": None if v is None else v.text,
        }
    return out


# -- schema validation -------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _schema(name: str) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMAS / name))


def schema_for(part: str, root_ns: str | None) -> str | None:
    """Which schema file validates a part (None: not an XML part the XSDs cover, e.g. VML)."""
    if part == "[Content_Types].xml":
        return "opc-contentTypes.xsd"
    if part.endswith(".rels"):
        return "opc-relationships.xsd"
    return "sml.xsd" if root_ns == MAIN else None


_ROW = re.compile(rb"<(?:[\w.-]+:)?row\b[^>]*?(?:/>|>.*?</(?:[\w.-]+:)?row>)", re.S)


def rows(body: bytes) -> set[bytes]:
    """The raw bytes of every <row> of a sheet part."""
    return set(_ROW.findall(body))


def schema_errors(part: str, body: bytes, skip_rows: set[bytes] = frozenset()) -> set[str] | None:
    """The schema's complaints about one part, by element name and reason (no positions, so that
    two versions of a part compare); None when no schema covers it. `skip_rows`: rows left out
    (a sheet's rows byte-identical to the original's: validating a 1.5 MB sheet takes 14 s)."""
    if skip_rows:
        body = _ROW.sub(lambda m: b"" if m.group(0) in skip_rows else m.group(0), body)
    root = xml(body)
    which = schema_for(part, namespace(root))
    if which is None:
        return None
    return {f"{(e.elem.tag if e.elem is not None else '')}: {e.reason}"
            for e in _schema(which).iter_errors(understood(body))}


def understood(body: bytes) -> Element:
    """The part as a consumer that knows only ECMA-376 sees it (ECMA-376 part 3, markup
    compatibility): elements and attributes of the namespaces mc:Ignorable lists are dropped,
    mc:AlternateContent becomes its mc:Fallback. xml:space and the xml: attributes are dropped
    too: XML allows them on any element, the schemas leave them undeclared."""
    root = xml(body)
    prefixes = dict(re.findall(rb'\sxmlns:([\w.-]+)="([^"]*)"', body))
    ignorable = {prefixes[p].decode() for spec in re.findall(rb'\s[\w.-]+:Ignorable="([^"]*)"', body)
                 for p in spec.split() if p in prefixes}
    parent = {child: el for el in root.iter() for child in el}
    for alt in list(root.iter(f"{{{MC}}}AlternateContent")):
        fallback, up = alt.find(f"{{{MC}}}Fallback"), parent[alt]
        at = list(up).index(alt)
        up.remove(alt)
        for child in reversed(list(fallback) if fallback is not None else []):
            up.insert(at, child)
            parent[child] = up
    for el in list(root.iter()):
        up = parent.get(el)
        # an extension's content belongs to its ext uri, not to markup compatibility
        if up is not None and namespace(el) in ignorable and up.tag != f"{{{MAIN}}}ext":
            up.remove(el)
            continue
        for name in [n for n in el.attrib if n.startswith("{")]:
            if n_space(name) in ignorable | {MC, XML_NS}:
                del el.attrib[name]
    return root


def n_space(name: str) -> str:
    return name[1:].split("}", 1)[0]
