"""The scheduler loop on real csv layouts and a real SQLite store, with a fake clock, fake sleep and
fake signals; plus a real second process and a real SIGTERM."""
from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import logging
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sheetsync.cli.run import add_run_command
from sheetsync.engine import sync_once
from sheetsync.scheduler import ClockScheduler, Runner
from sheetsync.store import Store

ROOT = Path(__file__).resolve().parents[1]
CSV = "id,name,phone\r\nA1,Ann,138 0013 8000\r\nA2,Bob,139 0013 9000\r\n"


class Clock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


class Signals:
    def __init__(self) -> None:
        self.handler = None
        self.restored = 0

    def install(self, handler) -> None:
        self.handler = handler

    def restore(self) -> None:
        self.restored += 1

    def fire(self, signum: int = signal.SIGTERM) -> None:
        self.handler(signum)


def make_layout(folder: Path, name: str, every: str = "1h", csv: str | None = CSV) -> Path:
    layouts = folder / "layouts"
    layouts.mkdir(parents=True, exist_ok=True)
    if csv is not None:
        (folder / f"{name}.csv").write_text(csv, encoding="utf-8", newline="")
    path = layouts / f"{name}.yaml"
    path.write_text(f"table: {name}\nsource: {{kind: csv, path: ../{name}.csv}}\nstore: ../sheetsync.db\n"
                    f"key: id\nschedule: {{every: {every}}}\ncolumns:\n  id: {{required: true}}\n"
                    "  name: {}\n  phone: {type: phone}\n", encoding="utf-8")
    return path


def runs(folder: Path, layout: str) -> list[dict]:
    with Store(folder / "sheetsync.db") as store:
        return store.runs(layout, limit=1000)


def runner(folder: Path, clock: Clock, **kw) -> Runner:
    kw.setdefault("signals", Signals())
    return Runner(folder / "layouts", clock=clock, sleep=clock.sleep, rng=random.Random(7), **kw)


def test_each_layout_runs_at_its_own_interval_with_jitter(tmp_path):
    make_layout(tmp_path, "fast", every="15m")
    make_layout(tmp_path, "slow", every="1h")
    clock = Clock()
    start = clock.t
    r = runner(tmp_path, clock, max_cycles=12, rescan=600)
    r.run()
    span = clock.t - start
    fast, slow = runs(tmp_path, "fast"), runs(tmp_path, "slow")
    assert span >= 2 * 3600  # 12 passes that ran something: about 2.5 hours of fake time
    # every 15 min + up to 90 s of jitter: one run at the start, then one per 15-16.5 min
    assert 1 + span // (16.5 * 60) <= len(fast) <= 1 + span // (15 * 60)
    assert 1 + span // (66 * 60) <= len(slow) <= 1 + span // 3600
    gaps = [a["started"] - b["started"] for a, b in zip(fast, fast[1:])]
    assert all(15 * 60 <= g <= 16.5 * 60 + 600 for g in gaps)
    assert len({round(g) for g in gaps}) > 1  # the jitter spreads them
    assert max(clock.slept) <= 1.0  # slept in 1 s ticks, so a stop signal is seen promptly


def test_jitter_stays_within_ten_percent_and_five_minutes():
    clock, rng = Clock(), random.Random(1)
    sched = ClockScheduler(clock, rng, 0.1, lambda: False)
    hourly = [sched.every(3600).do(lambda: None) for _ in range(50)]
    daily = sched.every(86400).do(lambda: None)
    offsets = [(j.next_run - hourly[0].next_run).total_seconds() for j in hourly]
    assert max(offsets) - min(offsets) <= 360 and len(set(offsets)) > 40
    ahead = sched.idle_seconds
    assert 3600 <= ahead <= 3960
    assert (daily.next_run - hourly[0].next_run).total_seconds() <= 86400 + 300


def test_catches_up_once_after_the_machine_slept(tmp_path):
    make_layout(tmp_path, "c", every="1h")
    clock = Clock()
    naps = iter([10 * 3600.0])

    def sleep(seconds: float) -> None:  # the first sleep lasts ten hours (lid closed)
        clock.t += next(naps, seconds)

    r = Runner(tmp_path / "layouts", clock=clock, sleep=sleep, signals=Signals(), max_cycles=3)
    r.run()
    third, second, first = runs(tmp_path, "c")
    assert second["started"] - first["started"] >= 10 * 3600  # once after waking ...
    assert third["started"] - second["started"] >= 3600  # ... then back to hourly, no burst of ten


def test_a_fresh_scheduler_follows_the_last_run_in_the_store(tmp_path):
    make_layout(tmp_path, "recent", every="1h")
    make_layout(tmp_path, "stale", every="1h")
    clock = Clock()
    for name, ago in (("recent", 600), ("stale", 3 * 3600)):
        sync_once(tmp_path / "layouts" / f"{name}.yaml", store=Store(tmp_path / "sheetsync.db",
                  clock=lambda ago=ago: clock.t - ago), clock=lambda ago=ago: clock.t - ago)
    r = runner(tmp_path, clock, max_cycles=1)
    r.run()
    assert [(x.layout, x.status) for x in r.records] == [("stale", "ok")]  # recent is due in 50 min
    assert 3000 - 1 <= r.sched.idle_seconds <= 3000 + 1


def test_a_failing_or_broken_layout_does_not_stop_the_others(tmp_path, caplog):
    make_layout(tmp_path, "good")
    make_layout(tmp_path, "gone", csv=None)  # the csv does not exist: every run fails
    (tmp_path / "layouts" / "broken.yaml").write_text("table: t\nsource: {kind: csv}\ncolumns: {a: {}}\n")
    clock = Clock()
    caplog.set_level(logging.INFO, logger="sheetsync.scheduler")
    r = runner(tmp_path, clock, interval=60, max_cycles=3)
    assert r.run() == 4  # a layout's latest run failed
    statuses = [(x.layout, x.status) for x in r.records]
    assert statuses.count(("good", "ok")) == 2 and statuses.count(("gone", "failed")) == 2
    assert [x["outcome"] for x in runs(tmp_path, "gone")] == ["failed", "failed"]
    broken = [m for m in caplog.messages if "broken.yaml is broken" in m]
    assert len(broken) == 1 and "source.path is required" in broken[0]  # reported once, not per pass


def test_new_layouts_are_picked_up_while_running(tmp_path):
    make_layout(tmp_path, "first")
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.t += seconds
        if not (tmp_path / "layouts" / "second.yaml").exists():
            make_layout(tmp_path, "second")

    r = Runner(tmp_path / "layouts", clock=clock, sleep=sleep, signals=Signals(), max_cycles=2, interval=30)
    r.run()
    assert [x.layout for x in r.records] == ["first", "first", "second"]


def test_first_signal_finishes_the_current_run_then_stops_with_0(tmp_path):
    make_layout(tmp_path, "a")
    make_layout(tmp_path, "b")
    clock, signals = Clock(), Signals()

    def sync(loaded, **kw):
        signals.fire()  # SIGTERM arrives while a's run is under way
        return sync_once(loaded, **kw)

    r = runner(tmp_path, clock, signals=signals, sync=sync)
    assert r.run() == 0
    assert [(x.layout, x.status) for x in r.records] == [("a", "ok")]
    assert runs(tmp_path, "a")[0]["outcome"] == "ok" and runs(tmp_path, "b") == []
    assert signals.restored == 1


def test_second_signal_abandons_the_run_cleanly_and_the_next_run_finishes_it(tmp_path):
    path = make_layout(tmp_path, "a")
    clock, signals = Clock(), Signals()

    def sync(loaded, *, hook, **kw):
        def twice_at_apply(step: str) -> None:
            if step == "apply":  # committed, not yet written back
                signals.fire()
                signals.fire(signal.SIGINT)
            hook(step)
        return sync_once(loaded, hook=twice_at_apply, **kw)

    r = runner(tmp_path, clock, signals=signals, sync=sync)
    assert r.run() == 0
    assert [x.status for x in r.records] == ["abandoned"]
    [run] = runs(tmp_path, "a")
    assert run["outcome"] == "partial" and "abandoned" in run["message"]
    with Store(tmp_path / "sheetsync.db") as store:
        assert len(store.outbox("a")) >= 2 and store.lease_holder("a") is None
    assert "138 0013 8000" in (tmp_path / "a.csv").read_text()
    result = sync_once(path)  # the next run replays the outbox
    assert result.replayed >= 2
    assert "+86 138 0013 8000" in (tmp_path / "a.csv").read_text()


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


def test_a_layout_leased_by_a_live_process_is_skipped_not_failed(tmp_path):
    make_layout(tmp_path, "a")
    other = _sleeper()
    try:
        with Store(tmp_path / "sheetsync.db") as store:
            assert store.acquire_lease("a", f"{socket.gethostname()}:{other.pid}:cron", 900)
        clock = Clock(time.time())
        r = runner(tmp_path, clock, interval=60, max_cycles=2)
        assert r.run() == 0
        assert [x.status for x in r.records] == ["busy", "busy"] and runs(tmp_path, "a") == []
    finally:
        other.kill()
        other.wait()
    r = runner(tmp_path, Clock(time.time()), max_cycles=1)
    r.run()  # the holder died: the engine breaks its lease and runs
    assert [x.status for x in r.records] == ["ok"] and len(runs(tmp_path, "a")) == 1


def test_a_second_process_is_skipped_while_the_scheduler_holds_the_lease(tmp_path):
    path = make_layout(tmp_path, "a")
    seen: list[subprocess.CompletedProcess] = []

    def sync(loaded, *, hook, **kw):
        def at_commit(step: str) -> None:
            if step == "commit":  # the lease is ours: a cron `sheetsync sync` starts now
                seen.append(subprocess.run([sys.executable, "-m", "sheetsync", "sync", "--json", str(path)],
                                           capture_output=True, text=True, cwd=ROOT, timeout=60))
            hook(step)
        return sync_once(loaded, hook=at_commit, **kw)

    r = runner(tmp_path, Clock(time.time()), sync=sync, max_cycles=1)
    assert r.run() == 0
    [other] = seen
    assert other.returncode == 3 and "another run holds layout 'a'" in other.stderr + other.stdout
    assert len(runs(tmp_path, "a")) == 1  # run once, by the scheduler only


def test_run_command_with_interval_and_max_cycles(tmp_path):
    make_layout(tmp_path, "a")
    parser = argparse.ArgumentParser()
    add_run_command(parser.add_subparsers())
    args = parser.parse_args(["run", "--interval", "0.02", "--max-cycles", "3",
                              "--layouts-dir", str(tmp_path / "layouts")])
    started = time.monotonic()
    assert args.func(args) == 0
    assert time.monotonic() - started < 5
    assert len(runs(tmp_path, "a")) == 3


def test_a_real_sigterm_stops_sheetsync_run_with_exit_0(tmp_path):
    make_layout(tmp_path, "a")
    code = ("import argparse, sys\nfrom sheetsync.cli.run import add_run_command\n"
            "p = argparse.ArgumentParser(); add_run_command(p.add_subparsers())\n"
            "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, "run", "--interval", "0.3", "--layouts-dir",
                             str(tmp_path / "layouts")], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ((tmp_path / "sheetsync.db").exists() and runs(tmp_path, "a")):
            time.sleep(0.05)
        assert runs(tmp_path, "a"), "the scheduler never ran the layout"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store(tmp_path / "sheetsync.db") as store:
        assert store.lease_holder("a") is None
        assert all(r["finished"] is not None for r in store.runs("a"))


def test_a_failing_layout_alerts_once_not_every_pass(tmp_path):
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        path = make_layout(tmp_path, "gone", csv=None)
        path.write_text(path.read_text() + f"alerts:\n  webhook: {{url: 'http://127.0.0.1:{server.server_port}/x'}}\n")
        r = runner(tmp_path, Clock(), interval=600, max_cycles=4)
        assert r.run() == 4
    finally:
        server.shutdown()
        server.server_close()
    assert [x.status for x in r.records] == ["failed"] * 4
    assert [(p["layout"], p["kind"], p["state"]) for p in posts] == [("gone", "failed", "firing")]
