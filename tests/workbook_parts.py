"""Helpers of tests/test_workbook_corpus.py: a workbook's parts, its cells' kinds, number formats and
formulas, and ECMA-376 schema validation (tests/ooxml_schemas) after markup-compatibility cleanup.
"""
from __future__ import annotations

import io
import posixpath
import re
import zipfile
from functools import lru_cache
from pathlib import Path

from lxml import etree

SCHEMAS = Path(__file__).parent / "ooxml_schemas"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
XML_NS = "http://www.w3.org/XML/1998/namespace"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
TEXT_KINDS = {"s", "str", "inlineStr"}
# ECMA-376 part 1, 18.8.30: number formats 0-49 are built in (ids, not codes, are compared for them)
_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        # some producers write Windows separators (xl\\workbook.xml); readers treat them as "/"
        return {n.replace("\\", "/"): zf.read(n) for n in zf.namelist() if not n.endswith(("/", "\\"))}


def xml(body: bytes) -> etree._Element:
    return etree.fromstring(body, _SAFE)


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
def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name)))


def schema_for(part: str, root_ns: str | None) -> str | None:
    """Which schema file validates a part (None: not an XML part the XSDs cover, e.g. VML)."""
    if part == "[Content_Types].xml":
        return "opc-contentTypes.xsd"
    if part.endswith(".rels"):
        return "opc-relationships.xsd"
    return "sml.xsd" if root_ns == MAIN else None


def schema_errors(part: str, body: bytes) -> set[str] | None:
    """The schema's complaints about one part, line numbers left out so that two versions of a
    part compare; None when no schema covers it."""
    root = xml(body)
    which = schema_for(part, etree.QName(root).namespace)
    if which is None:
        return None
    root = understood(root)
    schema = _schema(which)
    schema.validate(root)
    return {re.sub(r"^.*?ERROR:", "", str(e)) for e in schema.error_log}


def understood(root: etree._Element) -> etree._Element:
    """The part as a consumer that knows only ECMA-376 sees it (ECMA-376 part 3, markup
    compatibility): elements and attributes of the namespaces mc:Ignorable lists are dropped,
    mc:AlternateContent becomes its mc:Fallback. xml:space and the xml: attributes are dropped
    too: XML allows them on any element, the schemas leave them undeclared."""
    root = etree.fromstring(etree.tostring(root), _SAFE)
    ignorable: set[str] = set()
    for el in root.iter():
        spec = el.get(f"{{{MC}}}Ignorable")
        if spec:
            ignorable |= {el.nsmap.get(p) for p in spec.split()} - {None}
    for alt in list(root.iter(f"{{{MC}}}AlternateContent")):
        fallback = alt.find(f"{{{MC}}}Fallback")
        parent = alt.getparent()
        at = parent.index(alt)
        for child in reversed(list(fallback) if fallback is not None else []):
            parent.insert(at, child)
        parent.remove(alt)
    for el in list(root.iter()):
        if not isinstance(el.tag, str):
            continue
        parent = el.getparent()
        # an extension's content belongs to its ext uri, not to markup compatibility
        if parent is not None and etree.QName(el).namespace in ignorable and parent.tag != f"{{{MAIN}}}ext":
            parent.remove(el)
            continue
        for name in list(el.attrib):
            ns = etree.QName(name).namespace
            if ns in ignorable or ns in (MC, XML_NS):
                del el.attrib[name]
    return root
