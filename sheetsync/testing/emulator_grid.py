"""Field masks and grid data: how spreadsheets.get shapes cells, as recorded from Google.

Google omits proto3 defaults (a colour's zero channels, startRow 0), trims trailing empty cells
and rows of rowData, and keeps `{}` placeholders inside lists; the functions here do the same.
"""
from __future__ import annotations

from typing import Any

from .emulator_state import Cell, Sheet, effective, formatted

Mask = dict[str, Any] | None  # field name -> sub-mask; None = every field below

DEFAULT_FORMAT: dict[str, Any] = {
    "backgroundColor": {"red": 1, "green": 1, "blue": 1},
    "padding": {"top": 2, "right": 3, "bottom": 2, "left": 3},
    "verticalAlignment": "BOTTOM", "wrapStrategy": "OVERFLOW_CELL",
    "textFormat": {"foregroundColor": {}, "fontFamily": "arial,sans,sans-serif", "fontSize": 10,
                   "bold": False, "italic": False, "strikethrough": False, "underline": False,
                   "foregroundColorStyle": {"rgbColor": {}}},
    "backgroundColorStyle": {"rgbColor": {"red": 1, "green": 1, "blue": 1}},
}

_ACCENTS = [("TEXT", {}), ("BACKGROUND", {"red": 1, "green": 1, "blue": 1}),
            ("ACCENT1", {"red": 0.25882354, "green": 0.52156866, "blue": 0.95686275}),
            ("ACCENT2", {"red": 0.91764706, "green": 0.2627451, "blue": 0.20784314}),
            ("ACCENT3", {"red": 0.9843137, "green": 0.7372549, "blue": 0.015686275}),
            ("ACCENT4", {"red": 0.20392157, "green": 0.65882355, "blue": 0.3254902}),
            ("ACCENT5", {"red": 1, "green": 0.42745098, "blue": 0.003921569}),
            ("ACCENT6", {"red": 0.27450982, "green": 0.7411765, "blue": 0.7764706}),
            ("LINK", {"red": 0.06666667, "green": 0.33333334, "blue": 0.8})]
THEME: dict[str, Any] = {"primaryFontFamily": "Arial", "themeColors": [
    {"colorType": kind, "color": {"rgbColor": rgb}} for kind, rgb in _ACCENTS]}


def parse_mask(text: str | None) -> Mask:
    """"a.b,c(d,e/f)" -> {"a": {"b": None}, "c": {"d": None, "e": {"f": None}}}; "*" -> None."""
    if not text or text.strip() == "*":
        return None
    tree: dict[str, Any] = {}
    pos = _parse_list(text.replace(" ", ""), 0, tree)
    if pos != len(text.replace(" ", "")):
        raise ValueError(f"bad field mask: {text}")
    return tree


def _parse_list(text: str, pos: int, into: dict[str, Any]) -> int:
    while pos < len(text) and text[pos] != ")":
        start = pos
        while pos < len(text) and text[pos] not in ",()":
            pos += 1
        node = into
        parts = text[start:pos].replace("/", ".").split(".")
        for name in parts[:-1]:
            node = node.setdefault(name, {}) if node.get(name, {}) is not None else {}
        leaf = parts[-1]
        if pos < len(text) and text[pos] == "(":
            child = node.get(leaf) or {}
            pos = _parse_list(text, pos + 1, child) + 1
            node[leaf] = child
        elif leaf:
            node[leaf] = None
        if pos < len(text) and text[pos] == ",":
            pos += 1
    return pos


def apply_mask(obj: Any, mask: Mask) -> Any:
    """Keep only masked fields; a dict left empty is dropped from its parent dict, kept in lists."""
    if mask is None:
        return obj
    if isinstance(obj, list):
        return [apply_mask(item, mask) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, sub in mask.items():
        if key in obj:
            value = apply_mask(obj[key], sub)
            if value != {}:
                out[key] = value
    return out


def sub_mask(mask: Mask, *path: str) -> tuple[bool, Mask]:
    """(selected, mask below `path`): is sheets.data.rowData.values asked for, and which fields."""
    for name in path:
        if mask is None:
            return True, None
        if name not in mask:
            return False, None
        mask = mask[name]
    return True, mask


def hex_to_color(rgb: str) -> dict[str, float]:
    """"FFC7CE" -> {"red": 1, "green": 0.78, "blue": 0.81}, zero channels omitted as Google does."""
    rgb = rgb.lstrip("#")
    channels = zip(("red", "green", "blue"), (int(rgb[i:i + 2], 16) / 255 for i in (0, 2, 4)))
    return {k: (1 if v == 1 else round(v, 8)) for k, v in channels if v}


def color_to_hex(color: dict[str, float] | None) -> str | None:
    if color is None:
        return None
    return "".join(f"{round(color.get(k, 0) * 255):02X}" for k in ("red", "green", "blue"))


def user_format(cell: Cell) -> dict[str, Any]:
    """userEnteredFormat with the *Style mirrors Google adds for colours."""
    fmt = dict(cell.fmt)
    if "backgroundColor" in fmt:
        fmt["backgroundColorStyle"] = {"rgbColor": fmt["backgroundColor"]}
    text = fmt.get("textFormat")
    if isinstance(text, dict) and "foregroundColor" in text:
        fmt["textFormat"] = {**text, "foregroundColorStyle": {"rgbColor": text["foregroundColor"]}}
    return fmt


def cell_data(cell: Cell) -> dict[str, Any]:
    """The full CellData of one cell (before any field mask)."""
    out: dict[str, Any] = {}
    if cell.uev:
        out["userEnteredValue"] = dict(cell.uev)
        out["effectiveValue"] = effective(cell)
        out["formattedValue"] = formatted(cell)
    if cell.fmt:
        out["userEnteredFormat"] = user_format(cell)
        merged = {**DEFAULT_FORMAT, **user_format(cell)}
        out["effectiveFormat"] = merged
    if cell.note:
        out["note"] = cell.note
    return out


def grid_data(sheet: Sheet, r0: int, c0: int, r1: int, c1: int, cell_mask: Mask) -> dict[str, Any]:
    """GridData of one range, rows and cells trimmed like Google's answers."""
    rows: list[dict[str, Any]] = []
    for r in range(r0, r1):
        values = []
        for c in range(c0, c1):
            cell = sheet.cells.get((r, c))
            values.append(apply_mask(cell_data(cell), cell_mask) if cell else {})
        while values and values[-1] == {}:
            values.pop()
        rows.append({"values": values} if values else {})
    while rows and rows[-1] == {}:
        rows.pop()
    data: dict[str, Any] = {}
    if r0:
        data["startRow"] = r0
    if c0:
        data["startColumn"] = c0
    if rows:
        data["rowData"] = rows
    return data
