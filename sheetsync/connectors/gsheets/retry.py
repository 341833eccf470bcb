"""Bounded retry for Google API calls: backoff with full jitter, Retry-After, a per-run deadline.

gspread's BackOffHTTPClient retries forever, ignores Retry-After and re-sends a POST after a
5xx; here a non-idempotent request is re-sent only when Google cannot have acted on it (the
connection failed before sending, or a 429), otherwise AmbiguousWrite tells the caller to
re-read before deciding.
"""
from __future__ import annotations

import datetime as _dt
import email.utils
from typing import Callable, TypeVar

import requests

from ...errors import SourceUnavailable

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
    last: BaseException | None = None
    for attempt in range(max_tries):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified just below
            if not _transient(exc):
                raise
            if not idempotent and status_of(exc) != 429 and not not_sent(exc):
                raise AmbiguousWrite(exc) from None
            last = exc
        wait = max(rng() * min(cap, base * 2 ** attempt), retry_after(last) or 0.0)
        if attempt + 1 >= max_tries or clock() + wait > deadline:
            break
        sleep(wait)
    raise SourceUnavailable(f"{what} failed after {attempt + 1} tries: {describe(last)}",
                            hint="Google Sheets is busy or unreachable; the run ends partial and "
                                 "the next run finishes the work (quota: 60 requests/min/user)")
