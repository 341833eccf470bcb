"""Guards for touching a local workbook file: zip-bomb limits, parts openpyxl would drop,
lock files of an open editor, and the temp-file + fsync + os.replace save (shared with CSV).
"""
from __future__ import annotations

import errno
import hashlib
import importlib.util
import logging
import os
import posixpath
import re
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable

from ..fileio import fsync_dir
from ..errors import FeatureLossError, SourceBusy, SourceChanged, SourceError

log = logging.getLogger(__name__)

#: refuse workbooks whose members declare more than this many uncompressed bytes in all
MAX_UNCOMPRESSED = 1 << 30
#: ... or whose member (bigger than MIN_RATIO_SIZE) expands more than this many times
MAX_RATIO = 200
MIN_RATIO_SIZE = 1 << 20

# A formula cell keeps its cached result in <v> right after <f>; openpyxl drops that result.
_CACHED_FORMULA = re.compile(
    rb"<(?:\w+:)?f(?:\s[^>]*)?(?:/>|>[^<]*</(?:\w+:)?f>)\s*<(?:\w+:)?v>[^<]")


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def open_zip(data: bytes, where: str) -> zipfile.ZipFile:
    """Open workbook bytes as a checked zip; a corrupt or non-xlsx file is a SourceError."""
    import io
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise SourceError(f"not a valid .xlsx workbook ({exc})", where=where,
                          hint="open it in Excel and save it as .xlsx, or check source.kind") from None
    check_zip(zf, where)
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


def error_cells(zf: zipfile.ZipFile, part: str) -> dict[str, str]:
    """"A1" -> error text of every error cell (t="e") in a sheet part; calamine reads them as
    empty. A byte scan that costs nothing when the sheet has no error cell."""
    if not _has_error_cell(zf, part):
        return {}
    xml = zf.read(part)
    out = {}
    for attrs, body in _ERROR_CELL.findall(xml):
        ref, value = _REF.search(attrs), _VALUE.search(body)
        if ref:
            out[ref.group(1).decode()] = value.group(1).decode("utf-8", "replace") if value else "#ERROR!"
    return out


def _has_error_cell(zf: zipfile.ZipFile, part: str, chunk: int = 1 << 20) -> bool:
    """Whether the part holds t="e" anywhere, read a megabyte at a time: a 100k-row sheet's XML
    inflates to ~50 MB, which this never holds at once (the usual answer is no)."""
    mark, tail = b't="e"', b""
    with zf.open(part) as stream:
        while block := stream.read(chunk):
            if mark in tail + block[:len(mark) - 1] or mark in block:
                return True
            tail = (tail + block)[-(len(mark) - 1):]  # a mark may start in this block and end in the next
    return False


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
    candidates = [path.with_name("~$" + path.name), path.with_name(f".~lock.{path.name}#")]
    return [p for p in candidates if p.exists()]


class LocalFile:
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


def atomic_write(path: Path, write: Callable[[object], None]) -> str:
    """Write via a temp file in the same folder, fsync, os.replace, then restore the file mode.

    Readers never see a half-written file, and a crash leaves the original intact. Returns the
    fingerprint of the bytes written, taken before they become visible to anyone else.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    if mode is not None and not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        # a rename would replace it anyway (and root may write anything): honour the owner's intent
        raise SourceBusy("the file is read-only", where=str(path),
                         hint="make it writable (chmod u+w) to let sheetsync write corrections; "
                              "nothing was written and the next run tries again")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _not_writable(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        written = fingerprint(Path(tmp).read_bytes())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _not_writable(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if mode is not None:
        os.chmod(path, mode)
    fsync_dir(path.parent)
    return written


def _not_writable(path: Path, exc: OSError) -> SourceBusy:
    """A read-only folder or a full disk: nothing was written, the outbox waits (exit 3)."""
    why = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
           errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(exc.errno, exc.strerror or str(exc))
    return SourceBusy(f"cannot write the file: {why}", where=str(path),
                      hint="make the file and its folder writable (or free some space); nothing was written "
                           "and the next run writes the corrections")


