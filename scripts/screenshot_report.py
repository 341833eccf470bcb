"""Build a demo store with a few runs (one with a hostile cell), write `sheetsync report --html`
and screenshot it in headless Chromium, so a person (or a test) can look at the page.

    python scripts/screenshot_report.py [--out DIR] [--width 1280] [--height 1600]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HOSTILE = "<script>alert('x')</script>"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 1600, timeout: float = 60) -> Path:
    """Render `html` in headless Chromium (no network, throwaway profile) into `png`."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="sheetsync-chromium-") as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={width},{height}", html.resolve().as_uri()]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot at {png}")
    return png


def build_demo(folder: Path) -> Path:
    """The bundled demo, synced, then edited and synced twice: a fix, a hostile row, a failure-free
    no-op run. Returns the layout path."""
    import openpyxl

    from sheetsync.demo import install_demo
    from sheetsync.engine import sync_once
    layout = install_demo(folder)
    sync_once(layout)
    book_path = folder / "customers.xlsx"
    book = openpyxl.load_workbook(book_path)
    ws = book["Customers"]
    ws.cell(6, 4).value = "bob@acme.com"                  # a person fixes a red cell
    book.save(book_path)
    sync_once(layout)
    book = openpyxl.load_workbook(book_path)
    ws = book["Customers"]
    row = ws.max_row + 1
    for col, value in enumerate(["C00099", HOSTILE, "12345", "<b>not@an@email</b>", "<img src=x>"], start=1):
        ws.cell(row, col).value = value
        ws.cell(row, col).data_type = "s"
    book.save(book_path)
    sync_once(layout)
    sync_once(layout)                                      # untouched: a no-op run
    return layout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="report-shot", help="folder for demo/, report.html, report.png")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=1600)
    args = p.parse_args(argv)
    from sheetsync.report import collect_reports
    from sheetsync.report_html import write_html
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    layout = build_demo(out / "demo")
    html = write_html(collect_reports([layout]), out / "report.html")
    png = screenshot(html, out / "report.png", args.width, args.height)
    print(f"{html} ({html.stat().st_size:,} bytes)\n{png} ({png.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
