"""Render the demo's synced sheet as a PNG (docs/demo-sheet.png), so people see what a sync leaves in
a workbook: run `sheetsync demo`, print the synced tab through headless LibreOffice, keep page 1.

    python scripts/render_demo_sheet.py [--out docs/demo-sheet.png] [--dpi 110]

Needs soffice (Debian: libreoffice-calc-nogui), pdftoppm (poppler-utils) and a CJK font
(fonts-wqy-zenhei) for the Chinese names.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fit_to_one_page(book: Path, sheet: str) -> None:
    """Landscape, one page wide, and only the synced tab, on a copy for printing: the cells,
    colours and notes stay as the sync left them."""
    import openpyxl
    wb = openpyxl.load_workbook(book, rich_text=True)
    for name in wb.sheetnames:
        if name != sheet:
            wb.remove(wb[name])
    ws = wb[sheet]
    ws.page_setup.orientation = "landscape"
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 1
    ws.print_options.gridLines = True
    wb.save(book)


def ink_box(pgm: bytes, pad: int) -> tuple[int, int, int, int]:
    """x, y, width, height of the non-white pixels of a binary PGM page, plus a margin: the crop
    that leaves out the empty rest of the printed page."""
    magic, width, height, maxval, pixels = pgm.split(maxsplit=4)
    assert magic == b"P5" and int(maxval) < 256
    w, h = int(width), int(height)
    rows = [y for y in range(h) if min(pixels[y * w:(y + 1) * w]) < 200]
    cols = [x for x in range(w) if min(pixels[x::w][:h]) < 200]
    x0, y0 = max(cols[0] - pad, 0), max(rows[0] - pad, 0)
    return x0, y0, min(cols[-1] + pad, w - 1) - x0, min(rows[-1] + pad, h - 1) - y0


def render(out: Path, dpi: int = 110) -> Path:
    missing = [t for t in ("soffice", "pdftoppm") if shutil.which(t) is None]
    if missing:
        raise FileNotFoundError(f"not installed: {', '.join(missing)} (apt-get install libreoffice-calc-nogui poppler-utils)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "sheetsync", "demo", "--dir", str(work / "demo")], check=True,
                       capture_output=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
        book = work / "print.xlsx"
        shutil.copyfile(work / "demo" / "customers.xlsx", book)
        fit_to_one_page(book, "Customers")
        subprocess.run(["soffice", f"-env:UserInstallation={(work / 'profile').as_uri()}", "--headless",
                        "--convert-to", "pdf", "--outdir", str(work), str(book)], check=True, capture_output=True)
        pdf = work / "print.pdf"
        subprocess.run(["pdftoppm", "-gray", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                        str(pdf), str(work / "gray")], check=True)
        x, y, w, h = ink_box((work / "gray.pgm").read_bytes(), pad=12)
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                        "-x", str(x), "-y", str(y), "-W", str(w), "-H", str(h), str(pdf), str(work / "page")],
                       check=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "page.png", out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "demo-sheet.png")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args()
    print(render(args.out, args.dpi))
    return 0


if __name__ == "__main__":
    sys.exit(main())
