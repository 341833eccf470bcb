"""Alerts against a real HTTP server and a real SMTP server (aiosmtpd) on loopback, on real runs."""
from __future__ import annotations

import email
import email.policy
import email.utils
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openpyxl
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from sheetsync.alerts import check_layout, conditions, deliver_alert, post_webhook, redact
from sheetsync.engine import sync_once
from sheetsync.errors import LayoutError, SheetsyncError
from sheetsync.layout import Alerts, WebhookTarget
from sheetsync.layout_load import load_alerts_file, load_layout
from sheetsync.store import Store

# loopback test server only: the real targets use STARTTLS or SSL
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
PASSWORD = "pa55-w0rd-XYZ"
TOKEN = "tok-ABCDEF123456"
HOOK_SECRET = "T000/B000/hooksecret999"


class Hook:
    """A webhook receiver: records every POST; answers the queued status codes, then 200."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.codes: list[int] = []
        self.retry_after = "2"
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(json.loads(data))
                hook.headers.append(dict(self.headers))
                code = hook.codes.pop(0) if hook.codes else 200
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", hook.retry_after)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/{HOOK_SECRET}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(envelope.content)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


@pytest.fixture
def smtp():
    box = Mailbox()

    def auth(server, session, envelope, mechanism, data):
        return AuthResult(success=data.login == b"alerts" and data.password == PASSWORD.encode())

    controller = Controller(box, hostname="127.0.0.1", port=_free_port(), authenticator=auth,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


ENV = {"ALERT_PW": PASSWORD, "HOOK_TOKEN": TOKEN}


def csv_layout(tmp_path: Path, hook: Hook, smtp: Mailbox | None, extra: str = "", rows: str | None = None) -> Path:
    if rows is not None:
        (tmp_path / "c.csv").write_text(rows, encoding="utf-8")
    email = (f"  email: {{host: 127.0.0.1, port: {smtp.port}, from: sheetsync@example.org, to: [admin@example.org], "
             "username: alerts, password_env: ALERT_PW}\n") if smtp else ""
    path = tmp_path / "c.yaml"
    path.write_text("table: c\nsource: {kind: csv, path: c.csv}\nkey: id\ncolumns:\n  id: {required: true}\n"
                    "  email: {type: email}\nalerts:\n"
                    f"  webhook: {{url: '{hook.url}', retries: 1, headers_env: {{Authorization: HOOK_TOKEN}}}}\n"
                    + email + extra, encoding="utf-8")
    return path


def check(path: Path, clock: Clock, **kw):
    loaded = load_layout(path)
    with Store(path.parent / "sheetsync.db", clock=clock) as store:
        return check_layout(loaded, store, clock=clock, env=ENV, **kw)


def fail(path: Path, clock: Clock) -> None:
    with pytest.raises(SheetsyncError):
        sync_once(path, store=Store(path.parent / "sheetsync.db", clock=clock), clock=clock)


def test_a_failed_run_alerts_once_then_reminds_daily_then_says_recovered(tmp_path, hook, smtp):
    path = csv_layout(tmp_path, hook, smtp)  # c.csv does not exist yet: the run fails
    clock = Clock()
    fail(path, clock)
    [alert] = check(path, clock)
    assert (alert.kind, alert.state, alert.outcome) == ("failed", "firing", "failed")
    assert len(hook.bodies) == 1 and len(smtp.messages) == 1
    body = hook.bodies[0]
    assert body["layout"] == "c" and "file not found" in body["message"] and body["text"] == "[sheetsync] c: run failed"
    assert hook.headers[0]["Authorization"] == TOKEN  # the secret header came from the environment
    mail = email.message_from_bytes(smtp.messages[0], policy=email.policy.default)
    assert mail["Subject"] == "[sheetsync] c: run failed" and mail["To"] == "admin@example.org"
    assert "c.csv: file not found" in mail.get_content() and "counts: rows_read 0" in mail.get_content()
    for hours in (1, 5, 23):  # failing every hour: no new message within a day
        clock.t += 3600 if hours == 1 else 3600 * 4 if hours == 5 else 3600 * 18
        fail(path, clock)
        assert check(path, clock) == []
    clock.t += 3600 * 2  # 25 h after the first message
    fail(path, clock)
    assert [a.state for a in check(path, clock)] == ["reminder"]
    (tmp_path / "c.csv").write_text("id,email\nA1,a@example.org\n", encoding="utf-8")
    clock.t += 3600
    assert sync_once(path, store=Store(tmp_path / "sheetsync.db", clock=clock), clock=clock).outcome == "ok"
    assert [(a.kind, a.state) for a in check(path, clock)] == [("failed", "recovered")]
    assert [b["state"] for b in hook.bodies] == ["firing", "reminder", "recovered"]
    assert len(smtp.messages) == 3
    assert check(path, clock) == []


def test_partial_runs_alert_after_the_streak(tmp_path, hook):
    wb = openpyxl.Workbook()
    wb.active.append(["id", "email"])
    wb.active.append(["A1", " a@example.org "])  # a correction to write back
    wb.save(tmp_path / "c.xlsx")
    (tmp_path / "~$c.xlsx").write_text("")  # open in Excel: every write-back is deferred
    path = tmp_path / "c.yaml"
    path.write_text("table: c\nsource: {kind: xlsx, path: c.xlsx}\nkey: id\ncolumns:\n  id: {}\n"
                    f"  email: {{type: email}}\nalerts:\n  webhook: {{url: '{hook.url}'}}\n  partial_streak: 3\n",
                    encoding="utf-8")
    clock, sent = Clock(), []
    for _ in range(4):
        clock.t += 3600
        result = sync_once(path, store=Store(tmp_path / "sheetsync.db", clock=clock), clock=clock)
        assert result.outcome == "partial"
        sent.append([(a.kind, a.state) for a in check(path, clock)])
    assert sent == [[], [], [("partial_streak", "firing")], []]
    assert "3 partial runs in a row" in hook.bodies[0]["detail"] and "lock file" in hook.bodies[0]["message"]


def test_a_high_share_of_invalid_rows_alerts(tmp_path, hook):
    rows = "id,email\nA1,a@example.org\nA2,bob@@x\nA3,nope\nA4,d@example.org\n"
    path = csv_layout(tmp_path, hook, None, "  invalid_share_above: 0.2\n", rows)
    clock = Clock()
    assert sync_once(path, store=Store(tmp_path / "sheetsync.db", clock=clock), clock=clock).outcome == "problems"
    [alert] = check(path, clock)
    assert alert.kind == "invalid_share" and alert.detail.startswith("50% of rows invalid")
    assert alert.counts["invalid"] == 2 and alert.counts["rows_read"] == 4


def test_messages_carry_no_secrets(tmp_path, hook, smtp):
    path = csv_layout(tmp_path, hook, smtp)
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANSECRETKEYDATA\n-----END PRIVATE KEY-----\n"
    failure = (f'cannot use {tmp_path}/creds.json: {{"private_key": "{key}"}} login failed for password={PASSWORD} '
               f"Authorization: Bearer {TOKEN} at {hook.url}")
    [alert] = check(path, Clock(), failure=failure)
    assert "creds.json" in alert.message  # the path is fine to show, its contents are not
    mail = email.message_from_bytes(smtp.messages[0], policy=email.policy.default)
    sent = json.dumps(hook.bodies) + smtp.messages[0].decode() + mail.get_content()
    for secret in (PASSWORD, TOKEN, HOOK_SECRET, "SECRETKEYDATA", "hooksecret999"):
        assert secret not in sent


def test_redact_removes_shapes_of_secrets():
    text = redact("token=abc123 api_key: zzz https://user:pw@host/x Bearer abcdefghijkl ok", ["s3cret!"])
    assert text == "token=*** api_key: *** https://***@host/x Bearer *** ok"


def test_webhook_retries_are_bounded_and_honour_retry_after(hook):
    slept: list[float] = []
    target = WebhookTarget(url=hook.url, retries=2, timeout=5)
    hook.codes = [503, 429]
    assert post_webhook(target, {"a": 1}, {}, slept.append) is None
    assert len(hook.bodies) == 3 and slept == [0.5, 2.0]
    hook.codes = [500, 500, 500, 500]
    error = post_webhook(target, {"a": 1}, {}, slept.append)
    assert error == f"webhook 127.0.0.1:{hook.server.server_port} answered HTTP 500" and len(hook.bodies) == 6
    hook.codes = [404]
    assert "HTTP 404" in post_webhook(target, {}, {}, slept.append) and len(hook.bodies) == 7  # no retry


def test_webhook_honours_retry_after_given_as_an_http_date(hook):
    # alerts kept their own copy of the retry and read Retry-After only as seconds: a date fell
    # back to 0.5 s; the one retry module reads both forms (and caps the wait at 30 s)
    slept: list[float] = []
    hook.retry_after = email.utils.formatdate(time.time() + 20, usegmt=True)
    hook.codes = [429]
    assert post_webhook(WebhookTarget(url=hook.url, retries=1, timeout=5), {"a": 1}, {}, slept.append) is None
    assert len(hook.bodies) == 2 and len(slept) == 1 and 15 <= slept[0] <= 20
    hook.retry_after = email.utils.formatdate(time.time() + 600, usegmt=True)
    hook.codes = [429]
    assert post_webhook(WebhookTarget(url=hook.url, retries=1, timeout=5), {"a": 1}, {}, slept.append) is None
    assert slept[1] == 30.0


def test_an_undelivered_alert_is_tried_again_after_the_next_run(tmp_path, hook):
    path = csv_layout(tmp_path, hook, None)
    clock = Clock()
    fail(path, clock)
    hook.codes = [500, 500]  # retries: 1 -> two attempts, both fail
    quick = lambda a, cfg, env: deliver_alert(a, cfg, env, sleep=lambda s: None)  # noqa: E731
    assert check(path, clock, deliver=quick) == []
    clock.t += 3600
    fail(path, clock)
    [alert] = check(path, clock)
    assert alert.state == "firing" and len(hook.bodies) == 3


def test_global_alerts_file_applies_to_layouts_without_their_own(tmp_path, hook):
    (tmp_path / "c.yaml").write_text("table: c\nsource: {kind: csv, path: c.csv}\nkey: id\ncolumns:\n  id: {}\n")
    glob = tmp_path / "alerts.yaml"
    glob.write_text(f"alerts:\n  webhook: {{url: '{hook.url}'}}\n  remind_every: 2h\n", encoding="utf-8")
    clock = Clock()
    fail(tmp_path / "c.yaml", clock)
    assert check(tmp_path / "c.yaml", clock) == []  # no file named: no alerts
    [alert] = check(tmp_path / "c.yaml", clock, global_file=glob)
    assert alert.kind == "failed" and hook.bodies[0]["layout"] == "c"
    clock.t += 7201
    assert [a.state for a in check(tmp_path / "c.yaml", clock, global_file=glob)] == ["reminder"]


def test_alerts_file_mistakes_name_file_line_and_key(tmp_path):
    bad = tmp_path / "alerts.yaml"
    bad.write_text("alerts:\n  webhook:\n    url: ftp://x\n  email: {host: h, to: [me@x], frm: a@b}\n"
                   "  remind_every: daily\n", encoding="utf-8")
    with pytest.raises(LayoutError) as exc:
        load_alerts_file(bad)
    found = {(line, key) for _, line, key, _ in exc.value.issues}
    assert {(3, "alerts.webhook.url"), (4, "alerts.email.frm"), (5, "alerts.remind_every")} <= found
    assert any("did you mean 'from'" in m for *_, m in exc.value.issues)


def test_conditions_from_runs_alone():
    cfg = Alerts(partial_streak=2, invalid_share_above=0.5)
    runs = [{"finished": 3, "outcome": "partial"}, {"finished": None, "outcome": None},
            {"finished": 2, "outcome": "partial"}, {"finished": 1, "outcome": "failed"}]
    assert set(conditions(cfg, runs, 0.6)) == {"partial_streak", "invalid_share"}
    assert set(conditions(cfg, runs[3:], 0.5)) == {"failed"}
    assert conditions(Alerts(on_failure=False), runs[3:], None) == {}
