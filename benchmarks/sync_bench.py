"""Sync benchmark (issue 2): 100k rows x 8 columns as xlsx and CSV, fixed seed.

Prints, per source: the bare read, the first sync, a no-change resync and a resync after 1% of
the rows changed, in seconds and as a ratio to the bare read. Run: python benchmarks/sync_bench.py
[--rows N]. Work files go to benchmarks/.work/ (ignored by git).
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from openpyxl import Workbook

from sheetsync.connectors import from_source
from sheetsync.engine import sync_once
from sheetsync.layout_load import load_layout

HEADER = ["Customer ID", "Name", "Phone", "Email", "City", "Signup date", "Tier", "Credit limit"]
CITIES = ["北京", "上海", "广州", "深圳", "Hangzhou", "Chengdu", "Wuhan", "Xi'an"]
SURNAMES = "王李张刘陈杨黄赵吴周"
GIVEN = "伟芳娜敏静丽强磊军洋"
MOBILE = [30, 31, 32, 33, 35, 36, 37, 38, 39, 50, 51, 52, 58, 59, 86, 87, 88, 89]
LAYOUT = """table: customers
source: {source}
store: {store}
key: customer_id
columns:
  customer_id: {{header: Customer ID, required: true, pattern: '^C\\d{{6}}$'}}
  name: {{header: Name, required: true}}
  phone: {{header: Phone, type: phone}}
  email: {{header: Email, type: email}}
  city: {{header: City}}
  signup_date: {{header: Signup date, type: date}}
  tier: {{header: Tier, type: enum, values: [VIP, Gold, Standard]}}
  credit_limit: {{header: Credit limit, type: integer, min: 0}}
dedupe:
  exact: [[phone]]
report_tab: null
backup: {{enabled: false}}
"""


def make_rows(n: int, seed: int = 7) -> list[list]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        name = rnd.choice(SURNAMES) + rnd.choice(GIVEN) + rnd.choice(GIVEN)
        phone = f"+86 1{rnd.choice(MOBILE)} {i // 10000:04d} {i % 10000:04d}"
        rows.append([f"C{i:06d}", name, phone, f"user{i}@example.cn", rnd.choice(CITIES),
                     f"20{rnd.randint(10, 24)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
                     rnd.choice(["VIP", "Gold", "Standard"]), rnd.randint(0, 100) * 100])
    return rows


def write_xlsx(path: Path, rows: list[list]) -> None:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sheet1")
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    wb.save(path)


def write_csv(path: Path, rows: list[list]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


class Emulated:
    """The Sheets emulator on loopback, holding the rows as a Google Sheet (source kind gsheets)."""

    def __init__(self) -> None:
        from sheetsync.testing.sheets_emulator import SheetsEmulator
        self.emu = SheetsEmulator().start()

    def write(self, rows: list[list]) -> None:
        """First call: create the sheet; later calls: edit the changed cells, as people would."""
        if not hasattr(self, "rows"):
            self.emu.add_spreadsheet("bench", {"Sheet1": [HEADER, *rows]})
        else:
            for r, (old, new) in enumerate(zip(self.rows, rows), start=2):
                for c, (a, b) in enumerate(zip(old, new), start=1):
                    if a != b:
                        self.emu.set_cell("bench", "Sheet1", r, c, b)
        self.rows = [list(r) for r in rows]

    def source(self) -> str:
        return f"{{kind: gsheets, spreadsheet_id: bench, sheet: Sheet1, endpoint: '{self.emu.url}'}}"


def _empty_folder(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _file_source(kind: str, data: Path) -> str:
    return f"{{kind: {kind}, path: {data.name}}}"


def _write_layout(folder: Path, source: str) -> Path:
    """The benchmark's layout for `source` (a YAML flow mapping), its store beside it."""
    path = folder / "customers.yaml"
    path.write_text(LAYOUT.format(source=source, store="sheetsync.db"), encoding="utf-8")
    return path


def bench(kind: str, work: Path, n: int) -> list[tuple[str, float, str]]:
    """The four measurements of one source. Only the file (or the emulator's sheet) holds the
    rows while a sync runs, as in a `sheetsync sync` process: the generated rows and the bare
    read's result are dropped first (kept alive, they cost the first sync ~0.5 s here, through
    the bigger heap)."""
    rows = make_rows(n)
    folder = _empty_folder(work / kind)
    data = folder / f"customers.{kind}"
    emulated = Emulated() if kind == "gsheets" else None
    write = emulated.write if emulated else (lambda r: (write_xlsx if kind == "xlsx" else write_csv)(data, r))
    write(rows)
    del rows
    loaded = load_layout(_write_layout(folder, emulated.source() if emulated else _file_source(kind, data)))
    read_s = timed(lambda: len(from_source(loaded.layout.source, folder).read().rows))[0]
    first_s, first = timed(lambda: sync_once(loaded))
    again_s, again = timed(lambda: sync_once(loaded))
    full_s, full = timed(lambda: sync_once(loaded, full=True))
    rows = make_rows(n)  # the same rows again (fixed seed), now to change 1% of them
    changed = max(1, len(rows) // 100)
    rnd = random.Random(11)
    for i in rnd.sample(range(len(rows)), changed):
        rows[i][7] = rows[i][7] + 100
    write(rows)
    delta_s, delta = timed(lambda: sync_once(loaded))
    assert first.inserted == len(rows), first
    assert again.patches_applied == 0 and again.updated == 0, again
    assert full.patches_applied == 0 and full.updated == 0 and full.unchanged == len(rows), full
    assert delta.updated == changed, delta
    if emulated:
        emulated.emu.stop()
    calls = lambda r: f", {r.api_calls} Sheets + {r.drive_calls} Drive requests" if emulated else ""  # noqa: E731
    return [("bare read", read_s, ""), ("first sync", first_s, f"{first.inserted} inserted{calls(first)}"),
            ("no-change resync", again_s,
             f"{again.unchanged} unchanged (source unchanged: rows not compared){calls(again)}"),
            ("no-change resync, every row compared", full_s, f"{full.unchanged} unchanged (`--full`){calls(full)}"),
            ("1% changed resync", delta_s, f"{delta.updated} updated{calls(delta)}")]


_FRESH = """
import sys, time
from sheetsync.engine import sync_once
from sheetsync.layout_load import load_layout
loaded = load_layout(sys.argv[1])
started = time.perf_counter()
result = sync_once(loaded)
print(time.perf_counter() - started, result.inserted)
"""


def fresh_first_syncs(kind: str, work: Path, n: int, runs: int) -> list[float]:
    """First syncs each in a new Python process that does nothing else, as `sheetsync sync`
    does (imports not timed): the process has no heap left over from generating the rows or
    from another sync, so this is the number to trust when it and `bench` disagree."""
    folder = _empty_folder(work / f"{kind}-fresh")
    data, pristine = folder / f"customers.{kind}", folder / f"pristine.{kind}"
    (write_xlsx if kind == "xlsx" else write_csv)(pristine, make_rows(n))
    layout_path = _write_layout(folder, _file_source(kind, data))
    out = []
    for _ in range(runs):  # each from the same file and no store
        for stale in folder.glob("sheetsync.db*"):
            stale.unlink()
        shutil.copy(pristine, data)
        proc = subprocess.run([sys.executable, "-c", _FRESH, str(layout_path)], capture_output=True, text=True,
                              check=True)
        seconds, inserted = proc.stdout.split()
        assert int(inserted) == n, proc.stdout
        out.append(float(seconds))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--sources", default="xlsx,csv,gsheets")
    ap.add_argument("--json", action="store_true", help="print [step, seconds, note] lists (for run.py)")
    ap.add_argument("--fresh", type=int, default=0, metavar="N",
                    help="instead: N first syncs of each local source, each in a fresh process")
    args = ap.parse_args()
    work = Path(__file__).resolve().parent / ".work"
    if args.fresh:
        local = [k for k in args.sources.split(",") if k in ("xlsx", "csv")]
        if args.json:
            print(json.dumps({kind: fresh_first_syncs(kind, work, args.rows, args.fresh) for kind in local}))
            return
        for kind in local:
            times = fresh_first_syncs(kind, work, args.rows, args.fresh)
            print(f"{kind} first sync in a fresh process, {args.rows:,} rows: "
                  + ", ".join(f"{t:.2f}" for t in times) + f" s (min {min(times):.2f}, max {max(times):.2f})", flush=True)
        return
    if args.json:
        print(json.dumps([r for kind in args.sources.split(",") for r in bench(kind, work, args.rows)]))
        return
    print("| source | step | seconds | x bare read | note |\n| --- | --- | ---: | ---: | --- |")
    for kind in args.sources.split(","):
        results = bench(kind, work, args.rows)
        bare = results[0][1]
        for step, secs, note in results:
            print(f"| {kind} | {step} | {secs:.2f} | {secs / bare:.2f} | {note} |", flush=True)


if __name__ == "__main__":
    main()
