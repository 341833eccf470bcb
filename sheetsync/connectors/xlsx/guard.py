"""Guards for touching a local workbook file: zip-bomb limits, parts openpyxl would drop,
lock files of an open editor, and the checks before a save (the save itself: safe_write).
"""
from __future__ import annotations

import importlib.util
import logging
import posixpath
import re
import zipfile
from pathlib import Path
from typing import Callable, Iterable
from xml.sax.saxutils import unescape

from ...errors import FeatureLossError, SourceBusy, SourceChanged, SourceError
from ...model import CellError, UncalculatedFormula
from .. import ConnectorBase
from ..safe_write import fingerprint, real_path

log = logging.getLogger(__name__)

#: refuse workbooks whose members declare more than this many uncompressed bytes in all
MAX_UNCOMPRESSED = 1 << 30
#: ... or whose member (bigger than MIN_RATIO_SIZE) expands more than this many times
MAX_RATIO = 200
MIN_RATIO_SIZE = 1 << 20

# A formula cell keeps its cached result in <v> right after <f>; openpyxl drops that result.
_CACHED_FORMULA = re.compile(
    rb"<(?:\w+:)?f(?:\s[^>]*)?(?:/>|>[^<]*</(?:\w+:)?f>)\s*<(?:\w+:)?v>[^<]")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or a SourceError naming it (missing, a folder, unreadable)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SourceError("file not found", where=str(path),
                          hint="check source.path in the layout (relative to the layout file)") from None
    except OSError as exc:
        raise SourceError(f"cannot read the file: {exc.strerror or exc}", where=str(path),
                          hint="check the path and the file's permissions") from None


def check_zip(zf: zipfile.ZipFile, where: str) -> None:
    """Refuse zip bombs by the sizes the archive declares, before anything inflates them."""
    total = 0
    for info in zf.infolist():
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MIN_RATIO_SIZE and ratio > MAX_RATIO:
            raise SourceError(f"refusing a suspicious workbook: part {info.filename} expands "
                              f"{ratio:.0f} times", where=where,
                              hint="this looks like a zip bomb; open and re-save it in Excel if it is genuine")
    if total > MAX_UNCOMPRESSED:
        raise SourceError(f"refusing a workbook that expands to {total / 2**30:.1f} GiB", where=where,
                          hint="split the workbook; sheetsync reads workbooks up to 1 GiB unpacked")


def check_names(zf: zipfile.ZipFile, where: str) -> None:
    """Refuse a package whose parts are not under their Open XML names: entries named with
    backslashes (xl\\workbook.xml) or a lower-case [content_types].xml. calamine reads such files,
    but neither the direct patch nor openpyxl can write them back, so this is said before a run
    reads rows (and so before it commits), not after."""
    names = zf.namelist()
    odd = next((n for n in names if "\\" in n), None)
    problem = f"its zip names parts with backslashes ({odd})" if odd else None
    if problem is None and "[Content_Types].xml" not in names and "[content_types].xml" in map(str.lower, names):
        problem = "its zip names [Content_Types].xml in other letter case"
    if problem:
        raise SourceError(f"the workbook cannot be written back: {problem}, which Open XML does not allow",
                          where=where, hint="open it in Excel and save it again as .xlsx, then sync that file; "
                                            "nothing was changed")


def open_zip(data: bytes, where: str) -> zipfile.ZipFile:
    """Open workbook bytes as a checked zip; a corrupt or non-xlsx file is a SourceError."""
    import io
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise SourceError(f"not a valid .xlsx workbook ({exc})", where=where,
                          hint="open it in Excel and save it as .xlsx, or check source.kind") from None
    check_zip(zf, where)
    check_names(zf, where)
    return zf


_STRICT = b"purl.oclc.org/ooxml/"  # Strict Open XML's namespaces (Transitional's: schemas.openxmlformats.org)


def unwritable_format(zf: zipfile.ZipFile) -> str | None:
    """What kind of workbook this is when sheetsync can read it (calamine) but not write to it:
    .xlsb, .ods, or Excel's "Strict Open XML" .xlsx; None for an ordinary .xlsx/.xlsm. Checked
    before a run reads rows, so it never fails after the store has committed."""
    names = set(zf.namelist())
    if "xl/workbook.bin" in names:
        return "an Excel binary workbook (.xlsb)"
    if "mimetype" in names and zf.read("mimetype").startswith(b"application/vnd.oasis.opendocument"):
        return "an OpenDocument spreadsheet (.ods)"
    root = zf.read("_rels/.rels") if "_rels/.rels" in names else b""
    book = zf.read("xl/workbook.xml")[:4096] if "xl/workbook.xml" in names else b""
    if _STRICT in root or _STRICT in book:
        return 'an Excel "Strict Open XML" workbook'
    return None


def refuse_unwritable(zf: zipfile.ZipFile, where: str) -> None:
    kind = unwritable_format(zf)
    if kind:
        raise SourceError(f"the workbook is {kind}: sheetsync can read it but cannot write "
                          "corrections back into it", where=where,
                          hint="open it in Excel and save it as an Excel Workbook (.xlsx), then sync "
                               "that file; nothing was changed")


def lost_features(zf: zipfile.ZipFile) -> list[str]:
    """What openpyxl would drop on save, in words a person understands; empty when nothing."""
    names = zf.namelist()
    lost: list[str] = []

    def has(prefix: str) -> bool:
        return any(n.startswith(prefix) for n in names)

    sheets = [n for n in names if n.startswith("xl/worksheets/") and n.endswith(".xml")]
    drawings = [n for n in names if n.startswith("xl/drawings/") and n.endswith(".xml")]
    sheet_parts = [(n, zf.read(n)) for n in sheets]
    if any(_CACHED_FORMULA.search(body) for _, body in sheet_parts):
        lost.append("cached formula results (other programs see blanks until Excel recalculates)")
    if any(b"sparklineGroup" in body for _, body in sheet_parts):
        lost.append("sparklines")
    if any(b"x14:dataBar" in body or b"x14:conditionalFormatting" in body for _, body in sheet_parts):
        lost.append("Excel 2010 data bars / conditional formats")
    if any(b"legacyDrawingHF" in body for _, body in sheet_parts):  # with or without Pillow
        lost.append("pictures in the print header or footer")
    if any(re.search(rb"<(?:\w+:)?picture\b", body) for _, body in sheet_parts):
        lost.append("sheet background pictures")
    if any(b"x14:dataValidation" in body for _, body in sheet_parts):
        lost.append("drop-down lists that take their values from another sheet (Excel 2010 form)")
    if any(re.search(rb"<(?:xdr:)?(?:sp|cxnSp)[\s>]", zf.read(n)) for n in drawings):
        lost.append("shapes and text boxes")
    checks: Iterable[tuple[bool, str]] = (
        (has("xl/ctrlProps/") or has("xl/activeX/"), "form controls"),
        (has("xl/threadedComments/"), "threaded comments (replies would become plain notes)"),
        (has("xl/media/") and importlib.util.find_spec("PIL") is None, "images (Pillow is not installed)"),
        (has("xl/pivotTables/") or has("xl/pivotCache/"), "pivot tables"),
        (has("xl/slicers/") or has("xl/slicerCaches/") or has("xl/timelines/"), "slicers"),
        (has("xl/embeddings/"), "embedded objects"),
        (has("xl/richData/"), "pictures placed in cells"),
        (has("xl/connections.xml") or has("xl/queryTables/"), "data connections and refreshable queries"),
        (has("xl/model/"), "the Power Pivot data model"),
        (has("customXml/"), "custom XML data (such as SharePoint document properties)"),
        (has("xl/webextensions/"), "Office add-ins"),
    )
    lost.extend(label for present, label in checks if present)
    return lost


def guard_features(zf: zipfile.ZipFile, where: str, allow: bool) -> None:
    """Refuse to save a workbook that would lose parts, unless the layout allows the loss."""
    lost = lost_features(zf)
    if not lost:
        return
    if allow:
        log.warning("%s: writing anyway (allow_feature_loss); this will drop: %s", where, "; ".join(lost))
        return
    raise FeatureLossError("writing back would drop: " + "; ".join(lost), where=where,
                           hint="remove these from the workbook, or set `source.allow_feature_loss: true` "
                                "in the layout to accept the loss")


def sheet_part(zf: zipfile.ZipFile, sheet: str) -> str | None:
    """The zip path of worksheet `sheet`'s XML, via workbook.xml and its rels."""
    from defusedxml import ElementTree as ET
    names = set(zf.namelist())
    if "xl/workbook.xml" not in names or "xl/_rels/workbook.xml.rels" not in names:
        return None
    book = ET.fromstring(zf.read("xl/workbook.xml"))
    rid = None
    for el in book.iter():
        if el.tag.endswith("}sheet") and el.get("name") == sheet:
            rid = next((v for k, v in el.attrib.items() if k.endswith("}id")), None)
    target = _rel_target(zf, "xl/_rels/workbook.xml.rels", "xl", lambda r: r.get("Id") == rid)
    return target if rid and target in names else None


_ERROR_CELL = re.compile(rb'<c\b([^>]*\bt="e"[^>]*)>(.*?)</c>', re.S)
_REF = re.compile(rb'\br="([A-Z]+[0-9]+)"')
_VALUE = re.compile(rb"<v>([^<]*)</v>")
_TYPE = re.compile(rb'\bt="([a-zA-Z]+)"')
# a formula cell: its formula (None: a shared formula's follower), then its cached result if any
_FORMULA_CELL = re.compile(rb"<c\b([^>]*)>\s*(?:<f\b[^>]*/>|<f\b[^>]*>([^<]*)</f>)\s*"
                           rb"(?:<v>([^<]*)</v>|(<v\s*/>))?\s*</c>")


_FORMULA = re.compile(rb"<(?:x:)?f[\s>/]")
#: every sheet with a formula holds a closing </f> (a shared formula's children point at a master
#: cell that spells it out; the Open XML SDK writes </x:f>); few marks keep the streamed scan cheap
FORMULA_MARKS = (b"</f>", b"</x:f>")


def special_cells(zf: zipfile.ZipFile, part: str) -> tuple[dict[str, CellError], frozenset[tuple[int, int]]]:
    """The error cells and uncalculated formulas ("A1" -> CellError) and the formula cells
    ((row, col)) of a sheet part, in one streamed pass that finds none in the usual sheet; only
    then is the XML searched."""
    found = _has_marks(zf, part, (b't="e"', *FORMULA_MARKS))
    if not found:
        return {}, frozenset()
    xml = zf.read(part)
    errors: dict[str, CellError] = {}
    if b't="e"' in found:
        for attrs, body in _ERROR_CELL.findall(xml):
            ref, value = _REF.search(attrs), _VALUE.search(body)
            if ref:
                errors[ref.group(1).decode()] = CellError(value.group(1).decode("utf-8", "replace") if value else "#ERROR!")
    formulas = set()
    if found & set(FORMULA_MARKS):
        for m in _FORMULA.finditer(xml):  # from each <f> back to its cell's start tag
            ref = _REF.search(xml, xml.rfind(b"<c", 0, m.start()), m.start())
            if ref:
                formulas.add(_cell_of(ref.group(1).decode()))
        errors.update((ref, f) for ref, f in _uncalculated(xml) if ref not in errors)
    return errors, frozenset(formulas)


def _uncalculated(xml: bytes):
    """(ref, UncalculatedFormula) of each formula saved without its result: no <v> means never
    calculated; an empty <v> is a result only for a text formula (t="str")."""
    for m in _FORMULA_CELL.finditer(xml):
        ref, kind = _REF.search(m.group(1)), _TYPE.search(m.group(1))
        empty = m.group(4) is not None or m.group(3) == b""
        if ref and (m.group(3) is None and m.group(4) is None or empty and (not kind or kind.group(1) != b"str")):
            text = unescape(m.group(2).decode("utf-8", "replace"), {"&quot;": '"', "&apos;": "'"}) if m.group(2) else "…"
            yield ref.group(1).decode(), UncalculatedFormula("=" + text)


def date1904(zf: zipfile.ZipFile) -> bool:
    """Is the workbook in Mac Excel's 1904 date system (`<workbookPr date1904="1"/>`)? Calamine
    reads date-formatted cells right either way; a bare serial in a date column needs to know."""
    try:
        head = zf.read("xl/workbook.xml")
    except KeyError:
        return False
    return DATE1904.search(head) is not None


DATE1904 = re.compile(rb'<(?:[\w.-]+:)?workbookPr\b[^>]*?\bdate1904="(?:1|true)"')


def _cell_of(ref: str) -> tuple[int, int]:
    letters = ref.rstrip("0123456789")
    col = 0
    for ch in letters:
        col = col * 26 + ord(ch) - 64
    return int(ref[len(letters):]), col


def _has_marks(zf: zipfile.ZipFile, part: str, marks: tuple[bytes, ...], chunk: int = 1 << 20) -> set[bytes]:
    """Which of `marks` the part holds anywhere, read a megabyte at a time: a 100k-row sheet's
    XML inflates to tens of MB, which this never holds at once (the usual answer is none)."""
    longest, tail, found = max(map(len, marks)), b"", set()
    with zf.open(part) as stream:
        while block := stream.read(chunk):
            seam = tail + block[:longest - 1]  # a mark may start in one block and end in the next
            found.update(m for m in marks if m not in found and (m in block or m in seam))
            if len(found) == len(marks):
                break
            tail = (tail + block)[-(longest - 1):] if len(block) < longest else block[-(longest - 1):]
    return found


def sheet_comments_part(zf: zipfile.ZipFile, target: str | None) -> str | None:
    """The zip path of the comments part of the worksheet part `target` (see sheet_part), via
    that part's rels."""
    names = set(zf.namelist())
    if not target:
        return None
    folder, base = posixpath.split(target)
    rels = posixpath.join(folder, "_rels", base + ".rels")
    if rels not in names:
        return None
    part = _rel_target(zf, rels, folder, lambda r: r.get("Type", "").endswith("/comments"))
    return part if part in names else None


def _rel_target(zf: zipfile.ZipFile, rels: str, base: str,
                match: Callable[[object], bool]) -> str | None:
    from defusedxml import ElementTree as ET
    for rel in ET.fromstring(zf.read(rels)):
        if match(rel):
            target = rel.get("Target", "")
            if target.startswith("/"):
                return target.lstrip("/")
            return posixpath.normpath(posixpath.join(base, target))
    return None


def read_comments(zf: zipfile.ZipFile, part: str) -> dict[str, str]:
    """Cell reference ("B6") -> the comment's plain text, from one comments part."""
    from defusedxml import ElementTree as ET
    out: dict[str, str] = {}
    for el in ET.fromstring(zf.read(part)).iter():
        if el.tag.endswith("}comment") and el.get("ref"):
            texts = [t.text or "" for t in el.iter() if t.tag.endswith("}t")]
            out[el.get("ref")] = "".join(texts)
    return out


def lock_files(path: Path) -> list[Path]:
    """The lock files Excel (`~$name`) and LibreOffice (`.~lock.name#`) keep while a file is open."""
    names = {path, real_path(path)}  # an editor opened the symlink's target, or the link itself
    candidates = [p.with_name(n) for p in names for n in ("~$" + p.name, f".~lock.{p.name}#")]
    return [p for p in candidates if p.exists()]


class LocalFile(ConnectorBase):
    """What the xlsx and CSV connectors share: a file's bytes as its snapshot, its hash as its
    fingerprint, and the checks before a write (not open in an editor, unchanged since read)."""

    path: Path

    def snapshot(self) -> bytes:
        return read_bytes(self.path)

    def unchanged_since(self, fingerprint_: str) -> bool:
        """True when the file is byte-identical to the version with that fingerprint."""
        try:
            return fingerprint(read_bytes(self.path)) == fingerprint_
        except Exception:
            return False

    def bytes_to_patch(self, expected: str | None, where: str, what: str) -> bytes:
        """The file's bytes, once it is known not to be open elsewhere nor changed since `expected`."""
        refuse_if_open(self.path)
        data = read_bytes(self.path)
        if expected is not None and fingerprint(data) != expected:
            raise SourceChanged(f"the {what} changed since it was read", where=where,
                                hint="nothing was written; the next run reads it again and retries")
        return data


def refuse_if_open(path: Path) -> None:
    locks = lock_files(path)
    if locks:
        raise SourceBusy(f"the file is open in another program (lock file {locks[0].name})",
                         where=str(path), hint="close the workbook in Excel/LibreOffice and run again")
