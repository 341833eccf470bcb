"""`sheetsync demo`: copy the bundled messy workbook and its layout into a folder and sync it.

No account, no network: the whole cycle on a local .xlsx and a local SQLite file.
"""
from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from .errors import UsageError
from .report import summary_text

MARKER = ".sheetsync-demo"


def install_demo(folder: Path) -> Path:
    """Lay out folder/customers.xlsx and folder/layouts/customers.yaml; returns the layout path."""
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise UsageError(f"{folder} exists and is not a sheetsync demo folder",
                         hint="pass --dir NEW_FOLDER, or remove the folder")
    if (folder / MARKER).exists():
        shutil.rmtree(folder)
    (folder / "layouts").mkdir(parents=True)
    (folder / MARKER).write_text("created by `sheetsync demo`; safe to delete\n", encoding="utf-8")
    data = resources.files("sheetsync") / "data" / "demo"
    (folder / "customers.xlsx").write_bytes((data / "customers.xlsx").read_bytes())
    (folder / "layouts" / "customers.yaml").write_bytes((data / "customers.yaml").read_bytes())
    return folder / "layouts" / "customers.yaml"


def run_demo(folder: Path, *, as_json: bool = False) -> int:
    from .engine import sync_once
    layout = install_demo(folder)
    result = sync_once(layout)
    if as_json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
        return 0
    print(summary_text(result))
    print(f"""
Where to look:
  {folder / 'customers.xlsx'}   open it: corrected cells are green, invalid red, duplicates orange,
                      each with a note saying why; the "sheetsync" tab lists every open problem.
  {folder / 'sheetsync.db'}     the clean store (a plain SQLite file): table `customers`.
Try next (from {folder}):
  sheetsync status                         last run and open problems
  sheetsync history customers C00002       every change to one record, with its run
  sheetsync sync customers                 untouched, a second sync changes nothing
  edit a credit limit (protected) or fix a red cell in the workbook, then sync again""")
    return 0
