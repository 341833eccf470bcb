"""Alerts: tell an admin by webhook (JSON POST) or email (SMTP) when a layout's runs fail, keep
ending partial, hold back a mass delete, or leave too many invalid rows; once per change of state, then a reminder at most
every `remind_every`, and a "recovered" note when the condition clears. Never carries secrets.
"""
from __future__ import annotations

import json
import logging
import os
import re
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

from .layout import Alerts, EmailTarget, LoadedLayout, WebhookTarget, duration_seconds
from .layout_load import load_alerts_file
from .store import Store

log = logging.getLogger("sheetsync.alerts")
ENV_FILE = "SHEETSYNC_ALERTS"
KINDS = ("failed", "partial_streak", "invalid_share", "mass_delete", "column_missing")
#: problem codes that are not "the row is invalid" (marks, duplicates, conflicts, held rows)
NOT_INVALID = frozenset({"corrected", "duplicate", "conflict", "conflict_row", "protected", "pushed",
                         "deleted", "held_back", "suggestions", "mass_delete", "column_missing"})
COUNT_KEYS = ("rows_read", "inserted", "updated", "unchanged", "deleted", "corrected", "invalid",
              "duplicates", "conflicts", "patches_applied", "patches_deferred")
MAX_RETRY_AFTER = 30.0
TITLES = {"failed": "run failed", "partial_streak": "runs keep ending partial",
          "invalid_share": "too many invalid rows", "mass_delete": "rows not deleted (more than max_delete)",
          "column_missing": "column(s) of the layout not found in the sheet"}


@dataclass(frozen=True)
class Alert:
    """One message to send: which layout, which condition, whether it starts, repeats or ends."""

    layout: str
    kind: str                      # failed | partial_streak | invalid_share | mass_delete | column_missing
    state: str                     # firing | reminder | recovered
    outcome: str | None
    run_id: str | None
    counts: Mapping[str, Any] = field(default_factory=dict)
    detail: str = ""               # why the condition holds (e.g. "3 partial runs in a row")
    message: str = ""              # the last run's message, secrets removed
    at: float = 0.0

    @property
    def subject(self) -> str:
        what = TITLES.get(self.kind, self.kind)
        prefix = {"firing": "", "reminder": "still: ", "recovered": "recovered: "}.get(self.state, "")
        return f"[sheetsync] {self.layout}: {prefix}{what}"

    def text(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.at))
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        lines = [self.subject, f"layout: {self.layout}", f"state: {self.state} ({self.detail})",
                 f"last run: {self.run_id or '-'} outcome {self.outcome or '-'} at {when}"]
        if counts:
            lines.append(f"counts: {counts}")
        if self.message:
            lines.append(f"message: {self.message}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.subject, "layout": self.layout, "kind": self.kind, "state": self.state,
                "outcome": self.outcome, "run_id": self.run_id, "counts": dict(self.counts),
                "detail": self.detail, "message": self.message,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))}


# -- configuration -------------------------------------------------------------------------------

def alerts_config(loaded: LoadedLayout, global_file: Path | None = None,
                  env: Mapping[str, str] | None = None) -> Alerts | None:
    """The layout's own `alerts:`, else the global file (`global_file` or $SHEETSYNC_ALERTS)."""
    if loaded.layout.alerts is not None:
        return loaded.layout.alerts
    env = os.environ if env is None else env
    path = global_file or (Path(env[ENV_FILE]) if env.get(ENV_FILE) else None)
    return load_alerts_file(path) if path else None


def secrets_of(cfg: Alerts, env: Mapping[str, str]) -> list[str]:
    """Every value that must never appear in a message: passwords, header values, webhook paths."""
    out: list[str] = []
    if cfg.webhook:
        out += list(cfg.webhook.headers.values())
        out += [env.get(v, "") for v in cfg.webhook.headers_env.values()]
        parts = urlsplit(cfg.webhook.url)
        out += [parts.path, parts.query, parts.password or ""]
    if cfg.email and cfg.email.password_env:
        out.append(env.get(cfg.email.password_env, ""))
    return [s for s in out if s and len(s) >= 4 and s != "/"]


_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    re.compile(r'("(?:private_key|private_key_id|client_secret|refresh_token|access_token)"\s*:\s*)"[^"]*"'),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\b(\s*[=:]\s*)[^\s,;&]+"),
    re.compile(r"(://)[^/\s:@]+:[^/\s@]+@"),
]


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove known secret values and anything shaped like a key, token or password."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _PATTERNS[0].sub("***private key***", text)
    text = _PATTERNS[1].sub(r'\1"***"', text)
    text = _PATTERNS[2].sub(r"\1 ***", text)
    text = _PATTERNS[3].sub(r"\1\2***", text)
    return _PATTERNS[4].sub(r"\1***@", text)


# -- conditions and their state ------------------------------------------------------------------

def invalid_share(store: Store, layout: str) -> float | None:
    """Share of the layout's rows with at least one open validation problem (None: no rows)."""
    rows = store.base_count(layout)
    if not rows:
        return None
    bad = {p["ident"] for p in store.problems(layout) if p["code"] not in NOT_INVALID}
    return len(bad) / rows


def held_deletes(store: Store, layout: str) -> str | None:
    """Why deletions are held back (delete_guard's open problem), or None."""
    held = next((p for p in store.problems(layout) if p["code"] == "mass_delete"), None)
    if held is None:
        return None
    n = held["params"]
    return (f"{n.get('gone')} of {n.get('rows')} rows gone from the sheet, limit {n.get('limit')}: nothing "
            "deleted; `sheetsync sync --allow-mass-delete` confirms")


def missing_columns(store: Store, layout: str) -> str | None:
    """Which layout columns the sheet's header lacks (engine/missing_columns' open problems), or None."""
    gone = [p["params"].get("header") for p in store.problems(layout) if p["code"] == "column_missing"]
    if not gone:
        return None
    return (f"column(s) {', '.join(map(str, gone))} not found in the sheet: their stored values are kept; "
            "rename the header back or set header: in the layout")


def conditions(cfg: Alerts, runs: list[dict[str, Any]], share: float | None,
               failure: str | None = None, held: str | None = None, missing: str | None = None) -> dict[str, str]:
    """Active conditions -> why, from the newest finished runs first (pure: tests call it alone)."""
    done = [r for r in runs if r.get("finished") is not None]
    active: dict[str, str] = {}
    if cfg.on_failure and (failure or (done and done[0]["outcome"] == "failed")):
        active["failed"] = "the last run failed"
    n = cfg.partial_streak
    if n and len(done) >= n and all(r["outcome"] == "partial" for r in done[:n]):
        active["partial_streak"] = f"{n} partial runs in a row"
    limit = cfg.invalid_share_above
    if limit is not None and share is not None and share > limit:
        active["invalid_share"] = f"{share:.0%} of rows invalid (threshold {limit:.0%})"
    if held:
        active["mass_delete"] = held
    if missing:
        active["column_missing"] = missing
    return active


def _transitions(store: Store, layout: str, cfg: Alerts, active: dict[str, str],
                 now: float) -> list[tuple[str, str, str, str | None]]:
    """(kind, state, detail, previous meta) to send; records the new state in the store's meta."""
    scope, remind = f"alerts:{layout}", duration_seconds(cfg.remind_every)
    out: list[tuple[str, str, str, str | None]] = []
    with store.transaction():
        for kind in KINDS:
            prev_raw = store.get_meta(scope, kind)
            prev = json.loads(prev_raw) if prev_raw else None
            if kind in active:
                state = "firing" if prev is None else "reminder" if now - prev["sent"] >= remind else None
                if state:
                    since = now if prev is None else prev["since"]
                    store.set_meta(scope, kind, json.dumps({"since": since, "sent": now}))
                    out.append((kind, state, active[kind], prev_raw))
            elif prev is not None:
                store.set_meta(scope, kind, None)
                if cfg.recovered:
                    out.append((kind, "recovered", "the condition cleared", prev_raw))
    return out


def active_alerts(store: Store, layout: str) -> dict[str, float]:
    """kind -> since (unix time) of every alert currently firing for the layout (for status)."""
    out = {}
    for kind in KINDS:
        raw = store.get_meta(f"alerts:{layout}", kind)
        if raw:
            out[kind] = json.loads(raw)["since"]
    return out


# -- the entry point after a run -----------------------------------------------------------------

Deliver = Callable[[Alert, Alerts, Mapping[str, str]], list[str]]


def check_layout(loaded: LoadedLayout, store: Store, *, clock: Callable[[], float] = time.time,
                 failure: str | None = None, global_file: Path | None = None,
                 env: Mapping[str, str] | None = None, deliver: Deliver | None = None) -> list[Alert]:
    """Evaluate the layout's alert conditions after a run and send what changed; returns the
    alerts sent. `failure` forces the failed condition (an exception the store did not record)."""
    env = os.environ if env is None else env
    cfg = alerts_config(loaded, global_file, env)
    if cfg is None or not (cfg.webhook or cfg.email):
        return []
    runs = store.runs(loaded.name, limit=max(cfg.partial_streak or 1, 1) + 1)
    active = conditions(cfg, runs, invalid_share(store, loaded.name), failure, held_deletes(store, loaded.name),
                        missing_columns(store, loaded.name))
    now = clock()
    todo = _transitions(store, loaded.name, cfg, active, now)
    last = next((r for r in runs if r.get("finished") is not None), None)
    secrets = secrets_of(cfg, env)
    sent = []
    for kind, state, detail, prev in todo:
        alert = _alert(loaded.name, kind, state, detail, last, failure, secrets, now)
        errors = (deliver or deliver_alert)(alert, cfg, env)
        for error in errors:
            log.error("alert for %s not delivered: %s", loaded.name, redact(error, secrets))
        if errors and len(errors) >= _target_count(cfg):
            with store.transaction():  # nothing went out: try again after the next run
                store.set_meta(f"alerts:{loaded.name}", kind, prev)
        else:
            sent.append(alert)
    return sent


def _alert(layout: str, kind: str, state: str, detail: str, last: dict[str, Any] | None,
           failure: str | None, secrets: list[str], now: float) -> Alert:
    result = (last or {}).get("result") or {}
    counts = {k: result[k] for k in COUNT_KEYS if k in result}
    message = failure or (last or {}).get("message") or result.get("message") or ""
    return Alert(layout=layout, kind=kind, state=state, detail=detail,
                 outcome="failed" if failure else (last or {}).get("outcome"),
                 run_id=(last or {}).get("run_id"), counts=counts,
                 message=redact(str(message), secrets)[:2000], at=now)


def _target_count(cfg: Alerts) -> int:
    return int(cfg.webhook is not None) + int(cfg.email is not None)


# -- delivery ------------------------------------------------------------------------------------

def deliver_alert(alert: Alert, cfg: Alerts, env: Mapping[str, str],
                  sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """Send to every target; returns one error text per target that failed (no secrets in it)."""
    errors = []
    if cfg.webhook:
        error = post_webhook(cfg.webhook, alert.to_json(), env, sleep)
        if error:
            errors.append(error)
    if cfg.email:
        error = send_email(cfg.email, alert, env)
        if error:
            errors.append(error)
    return errors


def post_webhook(target: WebhookTarget, payload: dict[str, Any], env: Mapping[str, str],
                 sleep: Callable[[float], None] = time.sleep) -> str | None:
    """JSON POST with a timeout; retries 5xx, 429 and network errors a bounded number of times."""
    headers = {"Content-Type": "application/json", "User-Agent": "sheetsync-alerts",
               **target.headers, **{h: env.get(v, "") for h, v in target.headers_env.items()}}
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    host = urlsplit(target.url).netloc.rpartition("@")[2]
    error = ""
    for attempt in range(target.retries + 1):
        wait = min(0.5 * 2 ** attempt, MAX_RETRY_AFTER)
        try:
            req = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=target.timeout) as resp:
                resp.read(65536)
            return None
        except urllib.error.HTTPError as exc:
            error = f"webhook {host} answered HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                return error
            wait = _retry_after(exc.headers.get("Retry-After"), wait)
        except (urllib.error.URLError, OSError) as exc:
            error = f"webhook {host} unreachable: {type(getattr(exc, 'reason', exc)).__name__}"
        if attempt < target.retries:
            sleep(wait)
    return error


def _retry_after(value: str | None, default: float) -> float:
    try:
        return max(0.0, min(float(value), MAX_RETRY_AFTER)) if value else default
    except ValueError:
        return default


def send_email(target: EmailTarget, alert: Alert, env: Mapping[str, str]) -> str | None:
    """One plain-text email by SMTP (optionally TLS or STARTTLS, optionally authenticated)."""
    password = env.get(target.password_env, "") if target.password_env else None
    if target.password_env and not password:
        return f"email: environment variable {target.password_env} is not set"
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = alert.subject, target.from_, ", ".join(target.to)
    msg.set_content(alert.text())
    try:
        smtp_cls = smtplib.SMTP_SSL if target.ssl else smtplib.SMTP
        with smtp_cls(target.host, target.port, timeout=target.timeout) as smtp:
            if target.starttls and not target.ssl:
                smtp.starttls(context=ssl.create_default_context())
            if target.username and password:
                smtp.login(target.username, password)
            smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        return f"email via {target.host}:{target.port} failed: {type(exc).__name__}"
    return None
