"""engine/run_support.py on its own: dead leases, the kill seam, the store path (layout.py) and rows as written."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sheetsync.layout import Layout, LoadedLayout
from sheetsync.model import Patch, SheetData, SheetRow
from sheetsync.engine.lease import break_dead_lease
from sheetsync.engine.run_support import as_written, env_hook
from sheetsync.layout import store_path
from sheetsync.store import Store

HOST = socket.gethostname()


@pytest.fixture()
def clocked(tmp_path: Path):
    """A store on disk whose clock the test sets."""
    now = [1000.0]
    store = Store(tmp_path / "s.db", clock=lambda: now[0])
    yield store, now
    store.close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def _hold(store: Store, holder: str, run_id: str, ttl: float = 600) -> None:
    assert store.acquire_lease("customers", holder, ttl)
    store.start_run(run_id, "customers")


def test_no_lease_is_a_no_op(clocked) -> None:
    store, _ = clocked
    break_dead_lease(store, "customers")
    assert store.lease_holder("customers") is None and store.runs() == []


def test_lease_of_a_dead_process_on_this_host_is_released_and_its_run_failed(clocked) -> None:
    store, now = clocked
    holder = f"{HOST}:{_dead_pid()}:run-dead"
    _hold(store, holder, "run-dead")
    now[0] = 1010.0  # long before the lease would expire
    break_dead_lease(store, "customers")
    assert store.lease_holder("customers") is None
    (run,) = store.runs("customers")
    assert (run["run_id"], run["outcome"], run["finished"]) == ("run-dead", "failed", 1010.0)
    assert run["message"].startswith("the sync process died or hung before finishing")
    assert store.acquire_lease("customers", f"{HOST}:{os.getpid()}:next", 600)


def test_lease_of_a_live_process_is_kept(clocked) -> None:
    store, now = clocked
    holder = f"{HOST}:{os.getpid()}:run-live"
    _hold(store, holder, "run-live")
    now[0] = 1500.0
    break_dead_lease(store, "customers")
    assert store.lease_holder("customers") == (holder, 1600.0)
    (run,) = store.runs("customers")
    assert run["finished"] is None and run["outcome"] is None


def test_lease_of_another_host_is_kept_until_it_expires_then_taken_over(clocked) -> None:
    store, now = clocked
    holder = "other-host.example:1:run-far"
    _hold(store, holder, "run-far", ttl=60)
    now[0] = 1059.0  # that pid cannot be checked from here: only expiry frees it
    break_dead_lease(store, "customers")
    assert store.lease_holder("customers") == (holder, 1060.0)
    now[0] = 1060.0
    break_dead_lease(store, "customers")
    assert store.lease_holder("customers") is None
    assert store.runs("customers")[0]["outcome"] == "failed"
    assert store.acquire_lease("customers", f"{HOST}:{os.getpid()}:mine", 60)


def test_a_finished_run_keeps_its_outcome_when_its_lease_is_broken(clocked) -> None:
    store, now = clocked
    holder = f"{HOST}:{_dead_pid()}:run-done"
    _hold(store, holder, "run-done")
    with store.transaction():
        store.finish_run("run-done", "ok", {"inserted": 1})
    break_dead_lease(store, "customers")  # died after recording the run, before releasing
    assert store.lease_holder("customers") is None
    (run,) = store.runs("customers")
    assert (run["outcome"], run["result"], run["message"]) == ("ok", {"inserted": 1}, "")


# -- as_written ---------------------------------------------------------------------------------

def test_as_written_applies_landed_value_writes_only() -> None:
    rows = (SheetRow(2, ("C001", "ann", "138")), SheetRow(3, ("C002",)), SheetRow(4, ("C003", "Cy")))
    data = SheetData("S", ("ID", "Name", "Phone"), rows, "fp")
    landed = (Patch(row=2, col=2, kind="corrected", write=True, value="Ann"),
              Patch(row=2, col=3, kind="invalid", fill="FFC7CE", note="sheetsync: x"),  # a mark only
              Patch(row=3, col=4, kind="pushed", write=True, value=5),  # beyond the row's cells
              Patch(row=9, col=1, kind="corrected", write=True, value="nowhere"))
    out = as_written(data, landed)
    assert out == (SheetRow(2, ("C001", "Ann", "138")), SheetRow(3, ("C002", None, None, 5)),
                   SheetRow(4, ("C003", "Cy")))
    assert out[2] is rows[2]  # untouched rows are not copied
    assert as_written(data, ()) == rows


# -- store_path -----------------------------------------------------------------------------------

def _loaded(tmp_path: Path, store: str | None) -> LoadedLayout:
    layout = Layout.model_validate({"table": "t", "source": {"kind": "memory", "name": "m"},
                                    "key": "id", "columns": {"id": {}}, "store": store})
    return LoadedLayout(layout=layout, path=tmp_path / "layouts" / "t.yaml", name="t")


def test_store_path_from_the_layout_relative_to_the_layout_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SHEETSYNC_DB", str(tmp_path / "env.db"))  # the layout's own store: wins
    assert store_path(_loaded(tmp_path, "../data/s.db")) == tmp_path / "layouts" / ".." / "data" / "s.db"
    assert store_path(_loaded(tmp_path, str(tmp_path / "abs.db"))) == tmp_path / "abs.db"


def test_store_path_default_env_then_next_to_the_layout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SHEETSYNC_DB", str(tmp_path / "env.db"))
    assert store_path(_loaded(tmp_path, None)) == tmp_path / "env.db"
    monkeypatch.delenv("SHEETSYNC_DB")
    assert store_path(_loaded(tmp_path, None)) == tmp_path / "layouts" / "sheetsync.db"


# -- env_hook -------------------------------------------------------------------------------------

def test_env_hook_without_the_variable_is_a_no_op(monkeypatch) -> None:
    monkeypatch.delenv("SHEETSYNC_TEST_KILL_AT", raising=False)
    hook = env_hook()
    for step in ("lease", "read", "commit", "apply", "finish"):
        assert hook(step) is None  # and this process is still here


def test_env_hook_with_the_variable_ignores_other_steps(monkeypatch) -> None:
    monkeypatch.setenv("SHEETSYNC_TEST_KILL_AT", "commit")
    hook = env_hook()
    assert hook("read") is None and hook("apply") is None  # only "commit" would kill (not called here)
    monkeypatch.setenv("SHEETSYNC_TEST_KILL_AT", "")
    assert env_hook()("commit") is None  # an empty value means off


def test_a_sync_pauses_the_collector_and_leaves_it_as_it_found_it(tmp_path):
    """A run pauses the cyclic collector (benchmarks/README.md: it paid 0.4-1.5 s at 100k rows)
    through one seam, and the process gets it back as it was: on stays on, off stays off."""
    import gc

    from sheetsync.engine import sync_once
    from sheetsync.engine.run_support import pause_collector
    from sheetsync.layout_load import load_layout
    (tmp_path / "c.csv").write_text("ID,Name\nC1,Ann\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text("table: t\nsource: {kind: csv, path: c.csv}\nstore: s.db\nkey: id\n"
                                     "columns:\n  id: {header: ID}\n  name: {header: Name}\n"
                                     "report_tab: null\nbackup: {enabled: false}\n", encoding="utf-8")
    assert gc.isenabled()
    resume = pause_collector()
    assert not gc.isenabled()
    resume()
    assert gc.isenabled()
    assert sync_once(load_layout(tmp_path / "c.yaml")).inserted == 1 and gc.isenabled()
    gc.disable()
    try:
        pause_collector()()
        (tmp_path / "c.csv").write_text("ID,Name\nC1,Ann\nC2,Bo\n", encoding="utf-8")
        assert sync_once(load_layout(tmp_path / "c.yaml")).inserted == 1 and not gc.isenabled()
    finally:
        gc.enable()
