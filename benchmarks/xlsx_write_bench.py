"""xlsx write-back of 1,000 patches into a 100k x 8 workbook: direct zip/XML patch vs openpyxl.

    python benchmarks/xlsx_write_bench.py [--rows 100000] [--patches 1000] [--skip-openpyxl]

Builds the workbook once (fixed seed) in a temp folder, then times XlsxConnector.apply() on a copy
(fast path: lock check, fingerprint, calamine check of `expected`, patch, atomic save) and the
openpyxl path on another copy of the same bytes, and prints one table.
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sheetsync.connectors.xlsx import XlsxConnector  # noqa: E402
from sheetsync.connectors.xlsx.patch import patch_xlsx  # noqa: E402
from sheetsync.model import Patch, ReportTab, canonical_text  # noqa: E402

HEADER = ["id", "name", "phone", "email", "city", "limit", "joined", "note"]


def build(path: Path, rows: int, seed: int = 42) -> list[list[object]]:
    import openpyxl
    rng = random.Random(seed)
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Customers")
    ws.append(HEADER)
    data = []
    for i in range(rows):
        row = [f"C{i:06d}", f"name {rng.randrange(10**6)}", 13800000000 + rng.randrange(10**8),
               f"user{i}@example.com", rng.choice(["北京", "上海", "London"]), rng.randrange(100, 10**5),
               f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "" if i % 3 else "vip"]
        ws.append(row)
        data.append(row)
    wb.save(path)
    return data


def patches(data: list[list[object]], count: int, seed: int = 7) -> list[Patch]:
    """A mix like a real sync: corrected values with a green mark and note, invalid marks, pushes."""
    rng = random.Random(seed)
    out = []
    for n, i in enumerate(rng.sample(range(len(data)), count)):
        col = rng.randrange(2, 9)
        row, expected = i + 2, canonical_text(data[i][col - 1] or None)  # type: ignore[arg-type]
        anchor = (1, str(data[i][0]))
        if n % 3 == 0:
            out.append(Patch(row, col, "corrected", write=True, value=f"fixed {n}", fill="C6EFCE",
                             note=f"changed by rule {n}", expected=expected, anchor=anchor))
        elif n % 3 == 1:
            out.append(Patch(row, col, "invalid", fill="FFC7CE", note="not valid", expected=expected, anchor=anchor))
        else:
            out.append(Patch(row, col, "pushed", write=True, value=n, expected=expected, anchor=anchor))
    return out


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--patches", type=int, default=1000)
    parser.add_argument("--skip-openpyxl", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.xlsx"
        t_build, data = timed(lambda: build(src, args.rows))
        todo = patches(data, args.patches)  # type: ignore[arg-type]
        report = ReportTab("sheetsync", (("sheetsync report",), ("cell", "problem"))
                           + tuple((f"R{p.row}C{p.col}", p.kind) for p in todo))
        fast, slow = Path(tmp) / "fast.xlsx", Path(tmp) / "slow.xlsx"
        shutil.copy(src, fast)
        shutil.copy(src, slow)
        conn = XlsxConnector(fast)
        t_read, read = timed(conn.read)
        t_core, _ = timed(lambda: patch_xlsx(src.read_bytes(), None, todo, report))
        t_fast, applied = timed(lambda: conn.apply(todo, report=report, expected=read.fingerprint))
        t_again, _ = timed(lambda: XlsxConnector(fast).apply(
            [Patch(p.row, p.col, "clear", clear=True) for p in todo if p.fill], report=report))
        rows = [("build workbook (openpyxl write_only, not timed below)", t_build),
                ("read (calamine, for comparison)", t_read),
                ("direct patch, in memory (patch_xlsx)", t_core),
                ("direct patch, apply() end to end", t_fast),
                ("direct patch, apply() clearing the marks again", t_again)]
        if not args.skip_openpyxl:
            slow_conn = XlsxConnector(slow, allow_feature_loss=True)
            t_slow, _ = timed(lambda: slow_conn._apply_openpyxl(slow.read_bytes(), list(todo), [], report))
            rows.append(("openpyxl load + patch + save", t_slow))
        size = src.stat().st_size / 2**20
        print(f"\n{args.rows:,} rows x {len(HEADER)} columns ({size:.1f} MiB), {len(todo):,} patches "
              f"(values, fills, notes), report tab of {len(report.rows):,} rows; "
              f"applied {len(applied.applied):,}, deferred {len(applied.deferred):,}\n")  # type: ignore[attr-defined]
        print(f"| {'step':<52} | seconds | vs openpyxl |")
        print(f"| {'-' * 52} | ------: | ----------: |")
        base = rows[-1][1] if not args.skip_openpyxl else None
        for label, seconds in rows:
            ratio = f"{base / seconds:.1f}x" if base and label.startswith("direct") else ""
            print(f"| {label:<52} | {seconds:7.2f} | {ratio:>11} |")


if __name__ == "__main__":
    main()
