"""Shared fixtures for the reliability and security suites, and the summary line that counts them.

Files map to suites (marker `reliability` or `security`); the terminal summary prints one line,
e.g. `reliability: 42 passed, 0 failed; security: 31 passed, 0 failed`.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SUITES = {
    "reliability": ("test_crash_matrix.py", "test_faults.py", "test_concurrency.py"),
    "security": ("test_hostile_inputs.py", "test_secrets.py"),
}
REPO = Path(__file__).resolve().parent.parent


def _suite_of(path: str) -> str | None:
    name = Path(path.split("::", 1)[0]).name
    return next((s for s, files in SUITES.items() if name in files), None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test of a suite file carries the suite's marker, so `-m security` selects it."""
    wants_slow = "slow" in (config.getoption("markexpr", "") or "") or os.environ.get("SHEETSYNC_SLOW_TESTS")
    wants_lo = "libreoffice" in (config.getoption("markexpr", "") or "") or os.environ.get("SHEETSYNC_LIBREOFFICE_TESTS")
    for item in items:
        suite = _suite_of(item.nodeid)
        if suite:
            item.add_marker(getattr(pytest.mark, suite))
        if item.get_closest_marker("slow") and not wants_slow:
            item.add_marker(pytest.mark.skip(reason="slow (minutes): run with -m slow or SHEETSYNC_SLOW_TESTS=1"))
        if item.get_closest_marker("libreoffice") and not wants_lo:
            item.add_marker(pytest.mark.skip(reason="LibreOffice rendering (minutes): run with -m libreoffice "
                                                    "or SHEETSYNC_LIBREOFFICE_TESTS=1 (.ci/run does)"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    counts = {s: {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0, "xpassed": 0} for s in SUITES}
    for outcome, key in (("passed", "passed"), ("failed", "failed"), ("error", "failed"),
                         ("skipped", "skipped"), ("xfailed", "xfailed"), ("xpassed", "xpassed")):
        for rep in terminalreporter.stats.get(outcome, []):
            suite = _suite_of(getattr(rep, "nodeid", ""))
            if suite and (outcome not in ("passed", "xpassed") or rep.when == "call"):
                counts[suite][key] += 1
    if not any(sum(c.values()) for c in counts.values()):
        return
    parts = []
    for suite, c in counts.items():
        text = f"{suite}: {c['passed']} passed, {c['failed']} failed"
        extra = "".join(f", {c[k]} {k}" for k in ("skipped", "xfailed", "xpassed") if c[k])
        parts.append(text + extra)
    terminalreporter.write_line("; ".join(parts))


# -- helpers shared by the suites -----------------------------------------------------------------

KILL_ENV = "SHEETSYNC_TEST_KILL_AT"


def sheetsync_cmd(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m sheetsync ARGS` in a real child process (so a SIGKILL kills only it)."""
    full_env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", "sheetsync", *args], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def cli():
    """The sheetsync_cmd helper, for tests that run the real command line in a child process."""
    return sheetsync_cmd


@pytest.fixture()
def emulator():
    from sheetsync.testing.sheets_emulator import SheetsEmulator
    with SheetsEmulator() as emu:
        yield emu


# -- one small customer sheet, as an xlsx file, a CSV file or a Sheets emulator spreadsheet -------

HEADER = ["ID", "Name", "Phone", "Email"]
TAB = "Customers"
LAYOUT_COLUMNS = {
    "id": {"header": "ID", "required": True, "pattern": r"^C\d{3}$"},
    "name": {"header": "Name", "required": True},
    "phone": {"header": "Phone", "type": "phone"},
    "email": {"header": "Email", "type": "email"},
}


def customer_rows(n: int = 30) -> list[list[Any]]:
    """n rows: every 4th phone needs reformatting, every 7th email is invalid, one is padded."""
    rows = []
    for i in range(1, n + 1):
        phone = f"138 {i:04d} {8000 + i}" if i % 4 == 0 else f"+86 138 {i:04d} {8000 + i}"
        email = f"user{i}@@example" if i % 7 == 0 else f"user{i}@example.com"
        rows.append([f"C{i:03d}", f"Person {i}", phone, f" USER{i}@Example.com " if i == 5 else email])
    return rows


class SheetFixture:
    """A sheet of one kind plus its layout file, editable as a person would and readable whole."""

    def __init__(self, kind: str, folder: Path, rows: list[list[Any]], emu: Any = None,
                 sid: str = "book", extra: dict[str, Any] | None = None) -> None:
        import yaml
        self.kind, self.folder, self.emu, self.sid = kind, Path(folder), emu, sid
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / ("customers.xlsx" if kind == "xlsx" else "customers.csv")
        if kind == "xlsx":
            import openpyxl
            wb = openpyxl.Workbook()
            ws = wb.active
            ws.title = TAB
            for r in [HEADER, *rows]:
                ws.append(r)
            wb.save(self.path)
            source = {"kind": "xlsx", "path": self.path.name, "sheet": TAB}
        elif kind == "csv":
            self._write_csv([HEADER, *rows])
            source = {"kind": "csv", "path": self.path.name}
        else:
            emu.add_spreadsheet(sid, {TAB: [HEADER, *rows]})
            source = {"kind": "gsheets", "spreadsheet_id": sid, "sheet": TAB, "endpoint": emu.url}
        data = {"table": "customers", "source": source, "key": "id", "columns": LAYOUT_COLUMNS,
                "store": "sheetsync.db", **(extra or {})}
        self.layout = self.folder / "customers.yaml"
        self.layout.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        self.db = self.folder / "sheetsync.db"

    def _write_csv(self, rows: list[list[Any]]) -> None:
        import csv
        with open(self.path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(["" if v is None else v for v in r] for r in rows)

    def edit(self, row: int, col: int, value: Any) -> None:
        """A person types `value` into the cell (1-based row and column, header is row 1)."""
        if self.kind == "xlsx":
            import openpyxl
            wb = openpyxl.load_workbook(self.path, rich_text=True)
            wb[TAB].cell(row=row, column=col).value = value
            wb.save(self.path)
        elif self.kind == "csv":
            import csv
            rows = list(csv.reader(self.path.read_text(encoding="utf-8-sig").splitlines()))
            while len(rows) < row:
                rows.append([""] * len(HEADER))
            rows[row - 1][col - 1] = "" if value is None else str(value)
            self._write_csv(rows)
        else:
            self.emu.set_cell(self.sid, TAB, row, col, value)

    def cells(self) -> dict[tuple[int, int], tuple[Any, Any, Any]]:
        """Every non-empty cell of the synced tab: (row, col) -> (text, fill, note)."""
        from sheetsync.model import canonical_text
        out = {}
        if self.kind == "xlsx":
            import openpyxl
            from sheetsync.connectors.xlsx import fill_code
            wb = openpyxl.load_workbook(self.path, rich_text=True)
            for row in wb[TAB].iter_rows():
                for c in row:
                    note = c.comment.text if c.comment else None
                    if c.value is not None or note or fill_code(c.fill):
                        out[(c.row, c.column)] = (canonical_text(c.value), fill_code(c.fill), note)
        elif self.kind == "csv":
            import csv
            for r, row in enumerate(csv.reader(self.path.read_text(encoding="utf-8-sig").splitlines()), 1):
                for c, v in enumerate(row, 1):
                    if v != "":
                        out[(r, c)] = (v, None, None)
        else:
            values = self.emu.values(self.sid, TAB)
            width = max(len(r) for r in values)
            for r in range(1, len(values) + 2):
                for c in range(1, width + 2):
                    v = self.emu.cell(self.sid, TAB, r, c)
                    note, fill = self.emu.note(self.sid, TAB, r, c), self.emu.fill(self.sid, TAB, r, c)
                    if v is not None or note or fill:
                        out[(r, c)] = (canonical_text(v), fill, note)
        return out


def store_state(db: Path, layout: str = "customers", table: str = "customers") -> dict[str, Any]:
    """Everything a crash must not disturb, minus timestamps and run ids."""
    from sheetsync.store import Store
    with Store(db) as store:
        recs = {k: {f: v for f, v in r.items() if not f.startswith("_") or f == "_deleted"}
                for k, r in store.records(table).items()}
        history = {k: [(h["field"], h["old"], h["new"], h["action"]) for h in store.history(table, k)]
                   for k in recs}
        inserts = dict(store.db.execute(
            "SELECT record_key, count(*) FROM _sheetsync_history WHERE tbl = ? AND action = 'insert' "
            "GROUP BY record_key", (table,)).fetchall())
        keys = [r[0] for r in store.db.execute(f'SELECT "_key" FROM "{table}"')]
        return {"records": recs, "history": history, "inserts": inserts,
                "keys_unique": len(keys) == len(set(keys)),
                "problems": sorted((p["ident"], p["field"], p["code"]) for p in store.problems(layout)),
                "marks": sorted((i, f, m.kind) for (i, f), m in store.marks(layout).items()),
                "outbox": store.outbox(layout),
                "integrity": store.db.execute("PRAGMA integrity_check").fetchone()[0]}
