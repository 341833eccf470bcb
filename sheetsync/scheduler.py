"""`sheetsync run`: every layout at its own interval (plus jitter) on a `schedule.Scheduler`, one run
at a time, skipping a layout whose lease another process holds, catching up once after a sleep,
and stopping gracefully on SIGTERM/SIGINT. Clock, sleep, randomness and signals are parameters.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import schedule

from .errors import LayoutError, SheetsyncError, SourceBusy, SourceUnavailable
from .layout import LoadedLayout
from .layout_load import format_issue, layout_files, load_layout
from .model import EXIT_FOR_OUTCOME, RunResult
from .store import Store
from .engine.run_support import damaged_store
from .store.damage import damage

log = logging.getLogger("sheetsync.scheduler")


class RunAbandoned(SourceUnavailable):
    """A second stop signal: the run ends at its next step; the engine keeps the outbox."""


def _stamp(t: float) -> dt.datetime:
    """schedule compares naive datetimes: use naive UTC from our clock (no DST jumps)."""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).replace(tzinfo=None)


def _unstamp(moment: dt.datetime) -> float:
    return moment.replace(tzinfo=dt.timezone.utc).timestamp()


class ClockJob(schedule.Job):
    """A schedule.Job that reads our clock (not datetime.now) and draws its jitter from our rng."""

    def __init__(self, interval: float, scheduler: "ClockScheduler") -> None:
        super().__init__(interval, scheduler)  # type: ignore[arg-type]
        self.clock, self.rng, self.jitter = scheduler.clock, scheduler.rng, scheduler.jitter
        self.unit = "seconds"

    @property
    def should_run(self) -> bool:
        return self.next_run is not None and _stamp(self.clock()) >= self.next_run

    def run(self) -> Any:
        ret = self.job_func()
        self.last_run = _stamp(self.clock())
        self._schedule_next_run()
        return ret

    def _schedule_next_run(self) -> None:
        spread = min(self.interval * self.jitter, 300.0)
        self.next_run = _stamp(self.clock() + self.interval + self.rng.uniform(0, spread))


class ClockScheduler(schedule.Scheduler):
    """A schedule.Scheduler of ClockJobs whose run_pending stops starting jobs once asked to stop."""

    def __init__(self, clock: Callable[[], float], rng: random.Random, jitter: float,
                 stop: Callable[[], bool]) -> None:
        super().__init__()
        self.clock, self.rng, self.jitter, self.stop = clock, rng, jitter, stop

    def every(self, interval: float = 1) -> ClockJob:  # type: ignore[override]
        return ClockJob(interval, self)

    def run_pending(self) -> None:
        for job in sorted(j for j in self.jobs if j.should_run):
            if self.stop():
                return
            self._run_job(job)

    @property
    def idle_seconds(self) -> float | None:  # type: ignore[override]
        nxt = self.get_next_run()
        return None if nxt is None else _unstamp(nxt) - self.clock()


class SignalSource(Protocol):
    def install(self, handler: Callable[[int], None]) -> None: ...
    def restore(self) -> None: ...


class ProcessSignals:
    """SIGTERM and SIGINT of this process (main thread only; elsewhere signals are left alone)."""

    def __init__(self) -> None:
        self.saved: dict[int, Any] = {}

    def install(self, handler: Callable[[int], None]) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.saved[sig] = signal.signal(sig, lambda signum, frame: handler(signum))

    def restore(self) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)
        self.saved.clear()


SyncFn = Callable[..., RunResult]


@dataclass
class Entry:
    path: Path
    loaded: LoadedLayout
    interval: float
    job: ClockJob


@dataclass
class RunRecord:
    """What one attempt did, for the log, the exit code and tests."""

    layout: str
    status: str                  # ok | problems | partial | failed | busy | abandoned | error
    message: str = ""
    at: float = 0.0


def _default_sync(loaded: LoadedLayout, **kwargs: Any) -> RunResult:
    from .engine import sync_once
    return sync_once(loaded, **kwargs)


def _store_path(loaded: LoadedLayout) -> Path:
    from .layout import store_path
    return store_path(loaded)


@dataclass
class Runner:
    """The scheduler loop. `interval` overrides every layout's schedule.every (seconds)."""

    layouts_dir: Path
    interval: float | None = None
    max_cycles: int | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    signals: SignalSource = field(default_factory=ProcessSignals)
    rng: random.Random = field(default_factory=random.Random)
    jitter: float = 0.1          # up to this share of the interval (at most 5 min) added per run
    rescan: float = 60.0         # re-read the layouts folder at least this often while waiting
    tick: float = 1.0            # longest single sleep, so a stop signal is seen promptly
    sync: SyncFn = _default_sync
    alerts_file: Path | None = None
    stopping: bool = False
    abandon: bool = False
    records: list[RunRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sched = ClockScheduler(self.clock, self.rng, self.jitter, lambda: self.stopping)
        self.entries: dict[Path, Entry] = {}
        self.broken: dict[Path, str] = {}
        self.signals_seen = 0

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Loop until stopped (exit 0) or `max_cycles` passes (exit: the worst of each layout's
        latest attempt, as `sync --all`). A pass that finds nothing due does not count, unless
        there is no valid layout at all (so `--max-cycles` always ends)."""
        self.signals.install(self.on_signal)
        try:
            cycles = 0
            while not self.stopping:
                start = len(self.records)
                self.refresh()
                self.sched.run_pending()
                cycles += len(self.records) > start or not self.entries
                if self.max_cycles and cycles >= self.max_cycles:
                    return self.exit_code()
                self.wait()
            log.info("stopped")
            return 0
        finally:
            self.signals.restore()

    def exit_code(self) -> int:
        latest = {r.layout: r.status for r in self.records}
        return max((EXIT_FOR_OUTCOME.get(s, 4 if s == "error" else 0) for s in latest.values()), default=0)

    def wait(self) -> None:
        """Sleep until the next layout is due, at most `rescan` seconds, in `tick` slices."""
        idle = self.sched.idle_seconds
        until = self.clock() + max(0.0, min(self.rescan, self.rescan if idle is None else idle))
        while not self.stopping:
            left = until - self.clock()
            if left <= 0:
                return
            self.sleep(min(left, self.tick))

    def on_signal(self, signum: int) -> None:
        """First signal: finish the current run, then stop. Second: abandon it at its next step."""
        self.signals_seen += 1
        self.stopping = True
        if self.signals_seen == 1:
            log.info("signal %s: stopping after the current run (send again to abandon it)", signum)
        else:
            self.abandon = True
            log.warning("signal %s: abandoning the current run at its next step", signum)
            self.signals.restore()  # a third signal gets the default behaviour

    def hook(self, step: str) -> None:
        if self.abandon:
            raise RunAbandoned(f"run abandoned before step {step!r}: sheetsync run was stopped",
                               hint="the next run replays the outbox and finishes the work")

    # -- the layouts folder ------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the layouts folder: new layouts get a job, removed or broken ones lose theirs."""
        paths = layout_files([self.layouts_dir]) if self.layouts_dir.is_dir() else []
        if not self.layouts_dir.is_dir():
            log.error("layouts folder %s does not exist; waiting for it", self.layouts_dir)
        for path in set(self.entries) - set(paths):
            log.info("layout %s removed", path.name)
            self.sched.cancel_job(self.entries.pop(path).job)
        for path in paths:
            self._refresh_one(path)

    def _refresh_one(self, path: Path) -> None:
        try:
            loaded = load_layout(path)
        except LayoutError as exc:
            text = "; ".join(format_issue(i) for i in exc.issues) or str(exc)
            if self.broken.get(path) != text:
                log.error("layout %s is broken, not scheduled: %s", path.name, text)
            self.broken[path] = text
            entry = self.entries.pop(path, None)
            if entry:
                self.sched.cancel_job(entry.job)
            return
        if self.broken.pop(path, None) is not None:
            log.info("layout %s is valid again", path.name)
        interval = self.interval if self.interval is not None else loaded.layout.schedule.seconds
        entry = self.entries.get(path)
        if entry is None or entry.interval != interval:
            if entry:
                self.sched.cancel_job(entry.job)
            job = self.sched.every(interval).do(self.run_layout, path).tag(str(path))
            job.next_run = _stamp(self.clock())
            entry = self.entries[path] = Entry(path, loaded, interval, job)
        entry.loaded = loaded
        self._follow_store(entry)

    def _follow_store(self, entry: Entry) -> None:
        """Next due = last finished run (by anyone: cron, another `run`) + interval, if later."""
        last = self.last_finished(entry.loaded)
        if last is not None and entry.job.next_run is not None:
            due = _stamp(last + entry.interval)
            if due > entry.job.next_run:
                entry.job.next_run = due

    def last_finished(self, loaded: LoadedLayout) -> float | None:
        db = _store_path(loaded)
        if not db.exists():
            return None
        try:
            with Store(db, clock=self.clock) as store:
                runs = [r for r in store.runs(loaded.name, limit=5) if r["finished"] is not None]
        except Exception as exc:  # a damaged store must not stop the other layouts' runs
            error = damage(exc, db) or exc
            if not isinstance(error, SheetsyncError):
                raise
            log.error("layout %s: cannot read its store: %s", loaded.name, error)
            return None
        return max((r["finished"] for r in runs), default=None)

    # -- one run -----------------------------------------------------------------------------

    def run_layout(self, path: Path) -> None:
        """One sync of one layout; a busy lease is a skip, a failure is logged and alerted."""
        entry = self.entries.get(path)
        if entry is None:
            return
        loaded, failure, status, message = entry.loaded, None, "error", ""
        try:
            with Store(_store_path(loaded), clock=self.clock) as store:
                result = self.sync(loaded, store=store, clock=self.clock, hook=self.hook)
            status, message = result.outcome, result.message
            if self.abandon and result.outcome == "partial":
                status = "abandoned"
        except RunAbandoned as exc:
            status, message = "abandoned", exc.message
        except SourceBusy as exc:
            status, message = "busy", exc.message
        except SheetsyncError as exc:
            status, message = "failed", str(damaged_store(loaded, exc) or exc)
        except Exception as exc:  # a bug must not stop the other layouts
            log.exception("layout %s: internal error", loaded.name)
            status, message = "error", f"internal error: {type(exc).__name__}: {exc}"
            failure = message
        self._log(loaded.name, status, message)
        self.records.append(RunRecord(loaded.name, status, message, self.clock()))
        if status not in ("busy", "abandoned"):
            self._alerts(loaded, failure)

    def _log(self, name: str, status: str, message: str) -> None:
        if status == "busy":
            log.info("%s: skipped, another process is running it (%s)", name, message)
        elif status in ("failed", "error"):
            log.error("%s: %s: %s", name, status, message)
        elif status in ("partial", "abandoned"):
            log.warning("%s: %s: %s", name, status, message)
        else:
            log.info("%s: %s%s", name, status, f" ({message})" if message else "")

    def _alerts(self, loaded: LoadedLayout, failure: str | None) -> None:
        from .alerts import check_layout
        try:
            with Store(_store_path(loaded), clock=self.clock) as store:
                for alert in check_layout(loaded, store, clock=self.clock, failure=failure,
                                          global_file=self.alerts_file):
                    log.info("%s: alert sent: %s", loaded.name, alert.subject)
        except Exception as exc:  # alerts must never stop the scheduler
            log.error("%s: alerts not evaluated: %s", loaded.name, exc)
