"""`sheetsync status`: per layout, the last run, open problems by code and pending write-back.

Read-only, and cheap enough for a monitoring check: exit non-zero when a layout's last run failed
or ended partial, or when it has never run.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from .engine import store_path
from .layout import load_layout
from .store import Store


def layout_status(path: Path) -> dict[str, Any]:
    loaded = load_layout(path)
    db = store_path(loaded)
    state: dict[str, Any] = {"layout": loaded.name, "table": loaded.layout.table, "store": str(db),
                             "last_run": None, "open_problems": {}, "outbox": 0, "exit_code": 0}
    if not db.exists():
        state["exit_code"] = 3
        state["message"] = "never synced"
        return state
    with Store(db) as store:
        runs = store.runs(loaded.name, limit=1)
        problems = store.problems(loaded.name)
        state["outbox"] = len(store.outbox(loaded.name))
    state["open_problems"] = dict(Counter(p["code"] for p in problems))
    if runs:
        run = runs[0]
        state["last_run"] = {"run_id": run["run_id"], "outcome": run["outcome"],
                             "finished": run["finished"], "message": run["message"]}
        state["exit_code"] = {"failed": 4, "partial": 3, None: 4}.get(run["outcome"], 0)
    else:
        state["exit_code"] = 3
        state["message"] = "never synced"
    return state


def status_text(state: dict[str, Any]) -> str:
    run = state["last_run"]
    if run is None:
        head = f"{state['layout']}: {state.get('message', 'never synced')}"
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run["finished"])) if run["finished"] else "running"
        head = f"{state['layout']}: last run {run['outcome']} at {when} (run {run['run_id']})"
    problems = ", ".join(f"{code} {n}" for code, n in sorted(state["open_problems"].items())) or "none"
    lines = [head, f"  open problems: {problems}", f"  write-back waiting: {state['outbox']} patch(es)"]
    if run and run.get("message"):
        lines.append(f"  {run['message']}")
    return "\n".join(lines)
