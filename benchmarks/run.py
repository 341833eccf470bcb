"""The performance table (issue 7): one command, one table, seconds and ratios measured in one run.

    python benchmarks/run.py            # 100k rows, the whole table (about 5-10 minutes here)
    python benchmarks/run.py --quick    # 10k rows, no openpyxl baseline, fake_1000 dedupe

Each area has its own script with more detail (sync_bench.py, xlsx_write_bench.py,
dedupe_bench.py, backup_bench.py); this one calls them and prints a single Markdown table.
"""
from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import backup_bench  # noqa: E402
import dedupe_bench  # noqa: E402
import xlsx_write_bench  # noqa: E402

from sheetsync.backup import snapshot  # noqa: E402
from sheetsync.connectors.xlsx import XlsxConnector  # noqa: E402
from sheetsync.model import ReportTab  # noqa: E402

Row = tuple[str, str, str, str, str]  # area, measurement, value, target, note


def sync_rows(rows: int, sources: list[str]) -> list[Row]:
    """Each source in a process of its own, as `sheetsync sync` runs: a first sync measured after
    another source's 100k rows came and went in the same process is up to ~1.5 s slower (a
    bigger, fragmented heap), which is the harness, not sheetsync."""
    out: list[Row] = []
    targets = {"first sync": "<= 5 s", "no-change resync": "<= 1.5x bare read",
               "no-change resync, every row compared": "<= 1.5x bare read"}
    def sync_bench(kind: str, *extra: str) -> Any:
        proc = subprocess.run([sys.executable, str(HERE / "sync_bench.py"), "--rows", str(rows),
                               "--sources", kind, "--json", *extra], capture_output=True, text=True, check=True)
        return json.loads(proc.stdout)

    for kind in sources:
        results = sync_bench(kind)
        bare = results[0][1]
        for step, secs, note in results:
            value = f"{secs:.2f} s" + ("" if step == "bare read" else f" ({secs / bare:.2f}x read)")
            out.append((f"sync {kind}, {rows:,} rows", step, value, targets.get(step, ""), note))
        if kind in ("xlsx", "csv"):  # the CLI's own case: a process that does nothing but the sync
            times = sync_bench(kind, "--fresh", "3")[kind]
            out.append((f"sync {kind}, {rows:,} rows", "first sync, each in a fresh process",
                        ", ".join(f"{t:.2f}" for t in times) + " s", "<= 5 s", "3 runs, imports not timed"))
    return out


def xlsx_write_rows(rows: int, count: int, baseline: bool) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.xlsx"
        data = xlsx_write_bench.build(src, rows)
        todo = xlsx_write_bench.patches(data, count)
        report = ReportTab("sheetsync", (("sheetsync report",), ("cell", "problem")))
        fast, slow = Path(tmp) / "fast.xlsx", Path(tmp) / "slow.xlsx"
        shutil.copy(src, fast)
        shutil.copy(src, slow)
        conn = XlsxConnector(fast)
        read = conn.read()
        t = time.perf_counter()
        applied = conn.apply(todo, report=report, expected=read.fingerprint)
        fast_s = time.perf_counter() - t
        out = [(f"xlsx write-back, {rows:,} rows", f"{count:,} patches (values, fills, notes), end to end",
                f"{fast_s:.2f} s", "<= 10 s", f"{len(applied.applied):,} applied, direct zip/XML patch")]
        if baseline:
            slow_conn = XlsxConnector(slow, allow_feature_loss=True)
            t = time.perf_counter()
            slow_conn._apply_openpyxl(slow.read_bytes(), list(todo), [], report)
            slow_s = time.perf_counter() - t
            out.append((f"xlsx write-back, {rows:,} rows", "the same through openpyxl load + save",
                        f"{slow_s:.2f} s ({slow_s / fast_s:.1f}x slower)", "", "the path it replaces"))
    return out


def dedupe_rows(quick: bool) -> list[Row]:
    name, loader, cfg = (("fake_1000", dedupe_bench.load_fake, dedupe_bench.FAKE_CFG) if quick else
                         ("historical_50k", dedupe_bench.load_hist, dedupe_bench.HIST_CFG))
    try:
        r = dedupe_bench.evaluate(name, *loader(), cfg)
    except FileNotFoundError as exc:
        return [("dedupe", name, "skipped", "", f"data not found: {exc}")]
    target = "F1 >= 0.80, P >= 0.97, <= 8 s" if name == "historical_50k" else ""
    return [("dedupe", f"{name} ({r['rows']:,} rows)",
             f"F1 {r['F1']:.3f}, P {r['P']:.3f}, R {r['R']:.3f}, {r['seconds']:.2f} s", target,
             f"{r['candidates']:,} candidate pairs" + ("; splink 5.0: F1 0.769 in 7.6 s" if target else ""))]


def backup_rows(rows: int) -> list[Row]:
    rng = random.Random(5)
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        store, folder = Path(tmp) / "store.db", Path(tmp) / "backup"
        con = backup_bench.build_store(store, rows, rng)
        steps = {"first snapshot": lambda: None,
                 "after 1% of one table changed": lambda: con.executemany(
                     "UPDATE customers SET credit = credit + 1 WHERE id = ?",
                     [(i,) for i in rng.sample(range(1, rows + 1), rows // 100)]),
                 "after a change in a small table only": lambda: con.execute(
                     "UPDATE lookup SET label = 'x' WHERE code = 'k3'")}
        size = store.stat().st_size
        for step, change in steps.items():
            change()
            con.commit()
            before = backup_bench.folder_bytes(folder)[0]
            t = time.perf_counter()
            snapshot(store, folder)
            secs = time.perf_counter() - t
            added = backup_bench.folder_bytes(folder)[0] - before
            out.append((f"backup, {rows:,}-row store ({size / 2**20:.1f} MiB)", step, f"{secs:.2f} s",
                        "bytes ~ changed tables", f"{added:,} bytes added"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10k rows, no openpyxl baseline, small dedupe set")
    ap.add_argument("--sources", default="xlsx,csv,gsheets")
    args = ap.parse_args()
    rows = 10_000 if args.quick else 100_000
    table: list[Row] = []
    for part in (lambda: sync_rows(rows, args.sources.split(",")),
                 lambda: xlsx_write_rows(rows, 1000, baseline=not args.quick),
                 lambda: dedupe_rows(args.quick), lambda: backup_rows(rows)):
        gc.collect()  # each area starts without the garbage of the one before
        table += part()
    print("| area | measurement | value | target | note |\n| --- | --- | --- | --- | --- |")
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
