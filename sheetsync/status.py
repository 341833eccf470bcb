"""`sheetsync status`: per layout, the last run, next due, open problems, duplicates, conflicts,
pending write-back, last snapshot and firing alerts; read-only and cheap enough for a monitoring check.

Exit codes (STYLE.md's table, the worst layout wins): 0 ok (open data problems included: they are
the team's work, not an outage), 2 broken layout, 3 last run partial, never synced or interrupted
(try later), 4 last run failed or the layout is overdue (the scheduled job is not doing its work).
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from .dedupe.step import open_pairs
from .engine.run_support import damaged_store
from .errors import LayoutError, SheetsyncError
from .layout import LoadedLayout, store_path
from .layout_load import format_issue, load_layout
from .store import Store

CONFLICT_CODES = ("conflict", "conflict_row")
MIN_GRACE = 300.0


def grace_for(interval: float) -> float:
    """How late a run may be before the layout counts as overdue: half an interval, at least 5 min
    (covers the scheduler's jitter and a long run)."""
    return max(interval * 0.5, MIN_GRACE)


def layout_status(path: Path, *, now: float | None = None, grace: float | None = None) -> dict[str, Any]:
    """Everything `status` shows for one layout file, as JSON-ready data with an `exit_code`."""
    now = time.time() if now is None else now
    try:
        loaded = load_layout(path)
    except LayoutError as exc:
        issues = [format_issue(i) for i in exc.issues] or [str(exc)]
        return {"layout": Path(path).stem, "path": str(path), "last_run": None, "open_problems": {},
                "outbox": 0, "exit_code": 2, "message": "layout is broken: " + "; ".join(issues)}
    db = store_path(loaded)
    interval = loaded.layout.schedule.seconds
    state: dict[str, Any] = {"layout": loaded.name, "table": loaded.layout.table, "store": str(db),
                             "interval_seconds": interval, "last_run": None, "next_due": None,
                             "overdue": False, "open_problems": {}, "duplicates": 0, "conflicts": 0,
                             "outbox": 0, "deferred": 0, "running": None, "alerts": {},
                             "last_snapshot": None, "exit_code": 0}
    if not db.exists():
        return {**state, "exit_code": 3, "message": "never synced"}
    try:
        with Store(db) as store:
            _fill_from_store(state, store, loaded, now)
    except Exception as exc:  # a damaged file shows up on any read, not only on opening it
        error = damaged_store(loaded, exc) or exc
        if not isinstance(error, SheetsyncError):
            raise
        return {**state, "exit_code": 4, "message": f"cannot read the store: {error}"}
    state["last_snapshot"] = last_snapshot(loaded, db)
    _judge(state, now, grace_for(interval) if grace is None else grace)
    return state


def _fill_from_store(state: dict[str, Any], store: Store, loaded: LoadedLayout, now: float) -> None:
    runs = store.runs(loaded.name, limit=5)
    problems = store.problems(loaded.name)
    state["open_problems"] = dict(Counter(p["code"] for p in problems))
    state["conflicts"] = sum(1 for p in problems if p["code"] in CONFLICT_CODES)
    state["duplicates"] = _open_pairs(store, loaded.name)
    state["outbox"] = len(store.outbox(loaded.name))
    holder = store.lease_holder(loaded.name)
    if holder and holder[1] > now:
        state["running"] = {"holder": holder[0], "lease_expires": holder[1]}
    try:
        from .alerts import active_alerts
        state["alerts"] = active_alerts(store, loaded.name)
    except ImportError:  # pragma: no cover - alerts are optional to status
        pass
    finished = [r for r in runs if r["finished"] is not None]
    if runs and runs[0]["finished"] is None and not state["running"]:
        state["interrupted"] = runs[0]["run_id"]
    if finished:
        run = finished[0]
        result = run["result"] or {}
        state["last_run"] = {"run_id": run["run_id"], "outcome": run["outcome"], "started": run["started"],
                             "finished": run["finished"], "message": run["message"],
                             "seconds": result.get("seconds"), "rows_read": result.get("rows_read")}
        state["deferred"] = int(result.get("patches_deferred") or 0)


def _open_pairs(store: Store, layout: str) -> int:
    return len(open_pairs(store, layout))


def _judge(state: dict[str, Any], now: float, grace: float) -> None:
    """next due, overdue and the exit code from the last finished run."""
    run = state["last_run"]
    if run is None:
        state["exit_code"] = 3
        state["message"] = "interrupted before its first run finished" if state.get("interrupted") else "never synced"
        return
    state["next_due"] = run["finished"] + state["interval_seconds"]
    state["overdue"] = now > state["next_due"] + grace and not state["running"]
    code = {"ok": 0, "problems": 0, "partial": 3, "failed": 4}.get(run["outcome"], 4)
    if state.get("interrupted"):
        code = max(code, 3)
    if state["overdue"]:
        code = 4
    state["exit_code"] = code


def last_snapshot(loaded: LoadedLayout, db: Path) -> dict[str, Any] | None:
    """The newest snapshot holding this layout, if the backup library is there and readable."""
    try:
        from .backup import list_snapshots
        from .backup.runner import backup_dir_for
    except ImportError:  # pragma: no cover - backups are optional to status
        return None
    folder = backup_dir_for(loaded, db)
    if not folder.is_dir():
        return None
    try:
        manifests = list_snapshots(folder)
    except Exception as exc:  # a damaged backup folder must not break the monitoring check
        return {"error": f"cannot list snapshots: {exc}"}
    mine = [m for m in manifests if not m.layouts or loaded.name in m.layouts]
    if not mine:
        return None
    m = mine[-1]
    return {"id": m.id, "created": m.created, "run_id": m.run_id, "label": m.label, "dir": str(folder)}


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t else "-"


def status_text(state: dict[str, Any]) -> str:
    """The human form of one layout's state: a head line, then indented details."""
    run = state["last_run"]
    if run is None:
        head = f"{state['layout']}: {state.get('message', 'never synced')}"
    else:
        head = f"{state['layout']}: last run {run['outcome']} at {_when(run['finished'])} (run {run['run_id']})"
    problems = ", ".join(f"{code} {n}" for code, n in sorted(state["open_problems"].items())) or "none"
    lines = [head]
    if state.get("next_due"):
        late = "  OVERDUE" if state.get("overdue") else ""
        lines.append(f"  next due: {_when(state['next_due'])}{late}")
    if state.get("running"):
        lines.append(f"  running now: {state['running']['holder']}")
    lines.append(f"  open problems: {problems}")
    if "duplicates" in state:
        lines.append(f"  duplicates: {state['duplicates']} open pair(s); conflicts: {state['conflicts']}")
    lines.append(f"  write-back waiting: {state['outbox']} patch(es)"
                 + (f"; deferred last run: {state['deferred']}" if state.get("deferred") else ""))
    snap = state.get("last_snapshot")
    if snap:
        lines.append(f"  last snapshot: {snap.get('id', '-')} at {snap.get('created', '-')}"
                     if "error" not in snap else f"  last snapshot: {snap['error']}")
    for kind, since in sorted((state.get("alerts") or {}).items()):
        lines.append(f"  alert firing: {kind} since {_when(since)}")
    if run and run.get("message"):
        lines.append(f"  {run['message']}")
    elif run and state.get("message"):
        lines.append(f"  {state['message']}")
    return "\n".join(lines)
