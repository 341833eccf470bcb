"""Fault injection for the Sheets emulator: what the next N matching requests suffer.

Kinds: "429" (with Retry-After), "500", "503" (an HTML body, as Google's front end sends),
"delay" (answer late, so the client times out), "reset" (drop the connection) and
"edit" (a person edits a cell right after the next read of values).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = ("429", "500", "503", "delay", "reset", "edit")
READ_KINDS = ("spreadsheets.get", "spreadsheets.getByDataFilter", "values.get", "values.batchGet")

HTML_503 = ("<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 503 (Service "
            "Unavailable)!!1</title><p><b>503.</b> <ins>That's an error.</ins><p>The service is "
            "currently unavailable. <ins>That's all we know.</ins></html>")


@dataclass
class Fault:
    """One armed fault. `match` limits it to request kinds containing that text (e.g. "batchUpdate").

    `land=True` makes the request take effect before the fault answers (a write that landed
    although the client saw a 500, a reset or a timeout).
    """

    kind: str
    count: int = 1
    match: str | None = None
    retry_after: str | None = "1"
    seconds: float = 2.0
    land: bool = False
    edit: dict[str, Any] = field(default_factory=dict)

    def applies_to(self, request_kind: str) -> bool:
        if self.kind == "edit":
            return request_kind in READ_KINDS
        return self.match is None or self.match in request_kind

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Fault":
        kind = str(data.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
        known = {"count", "match", "retry_after", "seconds", "land", "edit"}
        unknown = set(data) - known - {"kind"}
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        return cls(kind=kind, **{k: v for k, v in data.items() if k in known})


class FaultQueue:
    """Thread-safe list of armed faults; each request takes at most one (the first that matches)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def arm(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, request_kind: str, *, edits: bool = False) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.kind == "edit") == edits and fault.applies_to(request_kind):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)
