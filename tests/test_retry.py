"""Bounded retry: the shared loop (sheetsync/retry.py) and the Google Sheets side of it
(connectors/gsheets/retry.py): backoff with jitter, Retry-After, deadline, no blind re-send of writes."""
from __future__ import annotations

import datetime as dt

import pytest
import requests

from sheetsync.connectors.gsheets.retry import AmbiguousWrite, call_with_retry, not_sent, retry_after
from sheetsync.errors import SourceUnavailable
from sheetsync.retry import GaveUp, parse_retry_after, retry_call


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def http_error(status: int, headers: dict[str, str] | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response._content = b'{"error": {"code": %d, "message": "x", "status": "X"}}' % status
    return requests.HTTPError(response=response)


def flaky(errors: list[BaseException], result: str = "ok"):
    calls = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result
    return fn, calls


def run(fn, clock: FakeClock, *, idempotent: bool = True, deadline: float = 100, tries: int = 6):
    return call_with_retry(fn, deadline=deadline, max_tries=tries, clock=clock, sleep=clock.sleep,
                           rng=lambda: 0.5, idempotent=idempotent)


def test_retry_after_seconds_is_honoured() -> None:
    clock = FakeClock()
    fn, calls = flaky([http_error(429, {"Retry-After": "7"})])
    assert run(fn, clock) == "ok"
    assert clock.sleeps == [7.0] and len(calls) == 2


def test_retry_after_http_date() -> None:
    now = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    exc = http_error(429, {"Retry-After": "Mon, 01 Jan 2024 12:00:09 GMT"})
    assert retry_after(exc, now=lambda: now) == 9.0


def test_backoff_grows_with_full_jitter() -> None:
    clock = FakeClock()
    fn, _ = flaky([http_error(503), http_error(500), http_error(502)])
    assert run(fn, clock) == "ok"
    assert clock.sleeps == [0.5, 1.0, 2.0]  # rng 0.5 x 1, 2, 4


def test_gives_up_at_the_deadline() -> None:
    clock = FakeClock()
    fn, calls = flaky([http_error(429, {"Retry-After": "30"})] * 10)
    with pytest.raises(SourceUnavailable) as info:
        run(fn, clock, deadline=50)
    assert len(calls) == 2 and clock.now <= 50
    assert info.value.exit_code == 3 and "429" in str(info.value)


def test_gives_up_after_max_tries() -> None:
    clock = FakeClock()
    fn, calls = flaky([requests.exceptions.ReadTimeout()] * 10)
    with pytest.raises(SourceUnavailable):
        run(fn, clock, tries=3)
    assert len(calls) == 3


def test_terminal_errors_are_not_retried() -> None:
    clock = FakeClock()
    fn, calls = flaky([http_error(404)])
    with pytest.raises(requests.HTTPError):
        run(fn, clock)
    assert len(calls) == 1 and clock.sleeps == []


def test_write_after_5xx_is_ambiguous_not_resent() -> None:
    clock = FakeClock()
    fn, calls = flaky([http_error(500)])
    with pytest.raises(AmbiguousWrite):
        run(fn, clock, idempotent=False)
    assert len(calls) == 1


def test_write_after_timeout_is_ambiguous() -> None:
    fn, calls = flaky([requests.exceptions.ReadTimeout()])
    with pytest.raises(AmbiguousWrite):
        run(fn, FakeClock(), idempotent=False)
    assert len(calls) == 1


def test_write_is_resent_after_429_and_unsent_connection_failure() -> None:
    refused = requests.exceptions.ConnectionError("NewConnectionError: Connection refused")
    fn, calls = flaky([http_error(429), refused])
    assert run(fn, FakeClock(), idempotent=False) == "ok"
    assert len(calls) == 3
    assert not_sent(refused) and not not_sent(requests.exceptions.ConnectionError("Connection aborted."))


# -- the shared loop (sheetsync/retry.py) --------------------------------------------------------

def test_retry_call_raises_a_failure_not_worth_another_try_at_once() -> None:
    clock = FakeClock()
    fn, calls = flaky([KeyError("x"), KeyError("y")])
    with pytest.raises(KeyError):
        retry_call(fn, transient=lambda e: isinstance(e, OSError), max_tries=5, sleep=clock.sleep,
                   base=1, cap=8, rng=lambda: 1.0, clock=clock)
    assert len(calls) == 1 and clock.sleeps == []


def test_retry_call_backs_off_honours_the_hint_and_gives_up_after_max_tries() -> None:
    clock = FakeClock()
    fn, calls = flaky([OSError("a"), OSError("b"), OSError("c"), OSError("d")])
    with pytest.raises(GaveUp) as info:
        retry_call(fn, transient=lambda e: True, max_tries=3, sleep=clock.sleep, base=1, cap=3,
                   wait_hint=lambda e: 5.0 if str(e) == "b" else None, rng=lambda: 1.0, clock=clock)
    assert (info.value.tries, str(info.value.last)) == (3, "c")
    assert len(calls) == 3 and clock.sleeps == [1.0, 5.0]  # 1*2**0, then the hint beats 1*2**1


def test_retry_call_stops_before_a_wait_past_the_deadline() -> None:
    clock = FakeClock()
    fn, calls = flaky([OSError("a")] * 9)
    with pytest.raises(GaveUp) as info:
        retry_call(fn, transient=lambda e: True, max_tries=9, sleep=clock.sleep, base=2, cap=100,
                   rng=lambda: 1.0, clock=clock, deadline=5.0)
    assert info.value.tries == 2 and clock.sleeps == [2.0]  # the next wait (4 s) would end at 6 s


def test_parse_retry_after_seconds_date_and_garbage() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("7") == 7.0 and parse_retry_after("-3") == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:09 GMT", now=lambda: now) == 9.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
