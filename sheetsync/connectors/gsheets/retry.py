"""Google API calls through the one bounded retry (sheetsync/retry.py): which failures are
transient, and which writes may not be re-sent.

gspread's BackOffHTTPClient retries forever, ignores Retry-After and re-sends a POST after a
5xx; here a non-idempotent request is re-sent only when Google cannot have acted on it (the
connection failed before sending, or a 429), otherwise AmbiguousWrite tells the caller to
re-read before deciding.
"""
from __future__ import annotations

import datetime as _dt
from typing import Callable, TypeVar

import requests

from ...errors import SourceUnavailable
from ...retry import GaveUp, parse_retry_after, retry_call

T = TypeVar("T")

RETRY_STATUS = {429, 500, 502, 503, 504}
DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds: every request has one


class AmbiguousWrite(Exception):
    """A non-idempotent request may or may not have landed (5xx, timeout, reset after sending)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"the write may or may not have been applied ({describe(cause)})")
        self.cause = cause


def status_of(exc: BaseException) -> int | None:
    """HTTP status of a failed call (gspread's APIError and requests' HTTPError carry .response)."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def describe(exc: BaseException) -> str:
    """A short, key-free description: status and Google's message, or the transport failure."""
    status = status_of(exc)
    if status is not None:
        response = getattr(exc, "response")
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = (response.text or "")[:80].replace("\n", " ")
        return f"HTTP {status}: {message}"
    return type(exc).__name__


def not_sent(exc: BaseException) -> bool:
    """True when the request never reached the server (refused/unresolved/connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = repr(exc)
        return any(s in text for s in ("NewConnectionError", "ConnectionRefused", "NameResolution",
                                       "Failed to establish"))
    return False


def retry_after(exc: BaseException, now: Callable[[], _dt.datetime] | None = None) -> float | None:
    """Seconds the server asked us to wait (Retry-After as seconds or an HTTP date)."""
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    return parse_retry_after(value, now)


def _transient(exc: BaseException) -> bool:
    if status_of(exc) is not None:
        return status_of(exc) in RETRY_STATUS
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def call_with_retry(fn: Callable[[], T], *, deadline: float, max_tries: int = 6,
                    clock: Callable[[], float], sleep: Callable[[float], None],
                    rng: Callable[[], float], idempotent: bool, base: float = 1.0,
                    cap: float = 32.0, what: str = "Google Sheets request") -> T:
    """Call fn() until it succeeds, retrying transient failures within `deadline` (a clock() time).

    Raises the original exception for terminal errors (403, 404, 400...), AmbiguousWrite when a
    non-idempotent call failed after it may have been processed, and SourceUnavailable on giving up.
    """
    def worth_another_try(exc: BaseException) -> bool:
        if not _transient(exc):
            return False
        if not idempotent and status_of(exc) != 429 and not not_sent(exc):
            raise AmbiguousWrite(exc) from None
        return True

    try:
        return retry_call(fn, transient=worth_another_try, wait_hint=retry_after, max_tries=max_tries,
                          sleep=sleep, base=base, cap=cap, rng=rng, clock=clock, deadline=deadline)
    except GaveUp as gave:
        raise SourceUnavailable(f"{what} failed after {gave.tries} tries: {describe(gave.last)}",
                                hint="Google Sheets is busy or unreachable; the run ends partial and "
                                     "the next run finishes the work (quota: 60 requests/min/user)") from None
