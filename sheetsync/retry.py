"""One bounded retry for every call to an outside service (the Google Sheets API, alert webhooks):
exponential backoff with jitter, the server's Retry-After honoured, a try count and a deadline.
The caller says which failures are worth another try; everything else is raised at once.
"""
from __future__ import annotations

import datetime as _dt
import email.utils
import math
import random
import time
from typing import Callable, TypeVar

T = TypeVar("T")


class GaveUp(Exception):
    """Every try failed with a transient error: `last` is the last failure, `tries` how many ran."""

    def __init__(self, last: BaseException, tries: int) -> None:
        super().__init__(f"gave up after {tries} tries: {last!r}")
        self.last, self.tries = last, tries


def parse_retry_after(value: str | None, now: Callable[[], _dt.datetime] | None = None) -> float | None:
    """Seconds a Retry-After header asks for (a number of seconds or an HTTP date); None if absent
    or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = now() if now else _dt.datetime.now(_dt.timezone.utc)
    return max(0.0, (when - current).total_seconds())


def retry_call(fn: Callable[[], T], *, transient: Callable[[BaseException], bool],
               max_tries: int, sleep: Callable[[float], None], base: float, cap: float,
               wait_hint: Callable[[BaseException], float | None] = lambda exc: None,
               rng: Callable[[], float] = random.random, clock: Callable[[], float] = time.monotonic,
               deadline: float = math.inf) -> T:
    """fn() until it succeeds. A failure `transient` calls False is raised as it is (`transient`
    may raise something clearer itself); after `max_tries` transient failures, or when the next
    wait would pass `deadline` (a clock() time), GaveUp. Each wait is full-jitter backoff
    (`rng() * min(cap, base * 2**attempt)`) but never shorter than what the server asked for."""
    last: BaseException | None = None
    for attempt in range(max_tries):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the caller's `transient` classifies it
            if not transient(exc):
                raise
            last = exc
        wait = max(rng() * min(cap, base * 2 ** attempt), wait_hint(last) or 0.0)
        if attempt + 1 >= max_tries or clock() + wait > deadline:
            break
        sleep(wait)
    assert last is not None  # max_tries >= 1 and every path above returned or failed
    raise GaveUp(last, attempt + 1)
