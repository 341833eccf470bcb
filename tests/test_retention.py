"""Retention: a simulated year of hourly snapshots, gaps, labels, and forget + prune on a real folder."""
from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from sheetsync.backup import (RetentionPolicy, SheetCopy, forget, label, list_snapshots, prune,
                              select_kept, snapshot, unlabel, verify)
from sheetsync.backup.objects import Repository

H = timedelta(hours=1)
END = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)  # a Monday


def at_23(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 23, tzinfo=timezone.utc)


def last_day_of_month(year: int, month: int) -> date:
    first_next = date(year + month // 12, month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def test_a_year_of_hourly_snapshots_keeps_exactly_the_expected_set() -> None:
    start = END - timedelta(days=365)
    times = [start + i * H for i in range(365 * 24 + 1)]
    assert times[-1] == END
    kept = select_kept(times, RetentionPolicy(), now=END)

    # Expected, by counting buckets on the calendar (every hour of the year has a snapshot, so
    # the newest snapshot of an earlier day is its 23:00, of a week its Sunday 23:00, ...).
    newest5 = {END - i * H for i in range(5)}
    hours = {END - i * H for i in range(1, 26)}
    days = {at_23(END.date() - timedelta(days=d)) for d in range(1, 33)}
    last_sunday = END.date() - timedelta(days=END.isoweekday())
    weeks = {at_23(last_sunday - timedelta(weeks=w)) for w in range(12)}
    months, (y, m) = set(), (END.year, END.month)
    while (y, m) > (start.year, start.month):
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
        months.add(at_23(last_day_of_month(y, m)))
    assert len(months) == 12  # Oct 2026 back to Nov 2025: fewer than 96 months exist
    expected = newest5 | hours | days | weeks | months
    assert kept == expected
    # 5 newest + 21 more hours (09:00 on the 22nd .. 05:00 today), 31 more days (the 22nd's
    # 23:00 is already an hour), 7 more Sundays (5 fall in the daily window), 11 more month-ends
    # (31 October is a daily one).
    assert len(kept) == 5 + 21 + 31 + 7 + 11


def test_buckets_count_snapshots_not_wall_clock_time() -> None:
    """A machine switched off for 40 days keeps its older daily snapshots."""
    before = [datetime(2026, 9, 1, tzinfo=timezone.utc) + timedelta(days=d) for d in range(10)]
    after = [datetime(2026, 11, 1, 12, tzinfo=timezone.utc) + i * H for i in range(3)]
    policy = RetentionPolicy(keep_last=1, hourly=0, daily=5, weekly=0, monthly=0)
    kept = select_kept(before + after, policy)
    assert kept == {after[-1]} | set(before[-5:])


def test_future_snapshots_are_kept_and_do_not_push_others_out() -> None:
    times = [END - i * H for i in range(6)] + [END + timedelta(days=300)]
    policy = RetentionPolicy(keep_last=2, hourly=0, daily=0, weekly=0, monthly=0)
    assert select_kept(times, policy, now=END) == {END, END - H, END + timedelta(days=300)}


def test_policy_fields_are_checked() -> None:
    assert RetentionPolicy.model_validate({"daily": 7}).daily == 7
    with pytest.raises(ValidationError):
        RetentionPolicy.model_validate({"yearly": 3})
    with pytest.raises(ValidationError):
        RetentionPolicy(hourly=-1)


def _store(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER);"
                      "CREATE TABLE fixed(k TEXT); INSERT INTO fixed VALUES ('same');")
    return con


def test_forget_and_prune_on_a_real_backup_folder(tmp_path: Path) -> None:
    con = _store(tmp_path / "s.db")
    start = END - 6 * H
    snaps = []
    for i in range(12):  # every 30 minutes, each with a different table t
        con.execute("INSERT INTO t(v) VALUES (?)", (i,))
        con.commit()
        snaps.append(snapshot(tmp_path / "s.db", tmp_path / "bk",
                              clock=lambda i=i: start + i * timedelta(minutes=30)))
    label(tmp_path / "bk", snaps[0].id, "first")
    policy = RetentionPolicy(keep_last=2, hourly=2, daily=0, weekly=0, monthly=0)
    now = start + 6 * H
    wanted = select_kept([s.created_at for s in snaps], policy, now)
    dropped = forget(tmp_path / "bk", policy, now)
    assert dropped == sorted(s.id for s in snaps if s.created_at not in wanted and s is not snaps[0])
    remaining = [m.id for m in list_snapshots(tmp_path / "bk")]
    # newest two (11, 10), then the newest of hours 10:00-... : snapshot 9 (09:30) and 7 (08:30)
    assert remaining == [snaps[i].id for i in (0, 7, 9, 10, 11)]

    assert prune(tmp_path / "bk").deleted == []  # default grace: fresh objects are left alone
    report = prune(tmp_path / "bk", grace=timedelta(0))
    assert len(report.deleted) == len(dropped) and report.bytes_freed > 0  # each had its own t
    needed = {r.sha256 for m in list_snapshots(tmp_path / "bk") for r in m.objects.values()}
    assert set(Repository(tmp_path / "bk").object_names()) == needed
    assert verify(tmp_path / "bk").ok

    unlabel(tmp_path / "bk", snaps[0].id)
    assert forget(tmp_path / "bk", policy, now) == [snaps[0].id]
    assert prune(tmp_path / "bk", grace=timedelta(0)).deleted == [snaps[0].objects["store/table/t"].sha256]
    assert verify(tmp_path / "bk").ok


def test_forget_thins_each_layouts_snapshots_on_its_own(tmp_path: Path) -> None:
    _store(tmp_path / "s.db").close()
    made = {}
    for i, layout in enumerate(["a", "a", "a", "b", "a"]):
        made[i] = snapshot(tmp_path / "s.db", tmp_path / "bk", layouts=[layout],
                           sheets=[SheetCopy(layout, "S", ["x"], [[str(i)]], {})],
                           clock=lambda i=i: END + i * timedelta(minutes=1))
    policy = RetentionPolicy(keep_last=1, hourly=0, daily=0, weekly=0, monthly=0)
    forget(tmp_path / "bk", policy)
    assert [m.id for m in list_snapshots(tmp_path / "bk")] == [made[3].id, made[4].id]
