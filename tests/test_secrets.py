"""Secrets: a service-account key never reaches logs, messages, run records, reports or snapshots;
a credentials file others can read is refused; the store and backups are private (0600/0700)."""
from __future__ import annotations

import json
import logging
import os
import stat
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import TAB, SheetFixture, customer_rows, sheetsync_cmd
from sheetsync.engine import sync_once
from sheetsync.errors import SheetsyncError
from sheetsync.store import Store


@pytest.fixture(scope="module")
def key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def secrets_of(pem: str) -> list[bytes]:
    """Recognisable pieces of the key: its PEM armour and slices of its base64 body."""
    body = "".join(pem.strip().splitlines()[1:-1])
    return [b"BEGIN PRIVATE KEY", body[100:140].encode(), body[-80:-40].encode(),
            b"SECRET-KEY-ID-4f1c2a"]


def write_credentials(folder: Path, pem: str, token_uri: str, mode: int = 0o600) -> Path:
    path = folder / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "demo", "private_key_id": "SECRET-KEY-ID-4f1c2a",
        "private_key": pem, "client_email": "sync@demo.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": token_uri}), encoding="utf-8")
    os.chmod(path, mode)
    return path


class _TokenRefuser(BaseHTTPRequestHandler):
    """A stand-in for Google's token endpoint that refuses every grant."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def token_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenRefuser)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token"
    server.shutdown()
    server.server_close()


def gsheets_layout(folder: Path, creds: Path, endpoint: str | None = None) -> Path:
    source = {"kind": "gsheets", "spreadsheet_id": "book", "sheet": TAB, "credentials": creds.name}
    if endpoint:
        source["endpoint"] = endpoint
    data = {"table": "customers", "source": source, "key": "id", "store": "sheetsync.db",
            "columns": {"id": {"header": "ID"}, "name": {"header": "Name"}}}
    path = folder / "customers.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def assert_clean(blob: bytes | str, pem: str, what: str) -> None:
    data = blob.encode() if isinstance(blob, str) else blob
    for piece in secrets_of(pem)[:3]:
        assert piece not in data, f"key material in {what}"


def all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*"))
                    if p.is_file() and p.name != "service-account.json")


def test_a_refused_token_grant_leaks_no_key_material(tmp_path, key_pem, token_server, caplog):
    creds = write_credentials(tmp_path, key_pem, token_server)
    layout = gsheets_layout(tmp_path, creds)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SheetsyncError, match="refused the service-account credentials") as info:
        sync_once(layout)
    assert str(creds) in str(info.value)
    text = "".join(traceback.format_exception(info.value)) + repr(info.value) + str(info.value.__dict__)
    assert_clean(text, key_pem, "the exception")
    assert_clean(caplog.text, key_pem, "the logs")
    proc = sheetsync_cmd("sync", str(layout), "--json")
    assert proc.returncode in (2, 4) and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert_clean(proc.stdout + proc.stderr, key_pem, "the command's output")
    with Store(tmp_path / "sheetsync.db") as store:
        assert_clean(json.dumps(store.runs()), key_pem, "the run records")
    assert_clean(all_bytes(tmp_path), key_pem, "files sheetsync wrote")


def test_a_broken_key_is_refused_without_echoing_it(tmp_path, key_pem, caplog):
    broken = key_pem.replace("\n", "", 3)[:-60] + "\n-----END PRIVATE KEY-----\n"
    creds = write_credentials(tmp_path, broken, "http://127.0.0.1:9/token")
    layout = gsheets_layout(tmp_path, creds)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SheetsyncError) as info:
        sync_once(layout)
    assert "service-account" in str(info.value) and str(creds) in str(info.value)
    assert_clean("".join(traceback.format_exception(info.value)), broken, "the exception")
    assert_clean(caplog.text, broken, "the logs")


def test_a_credentials_file_others_can_read_is_refused_with_chmod_600(tmp_path, key_pem):
    creds = write_credentials(tmp_path, key_pem, "http://127.0.0.1:9/token", mode=0o644)
    layout = gsheets_layout(tmp_path, creds)
    with pytest.raises(SheetsyncError) as info:
        sync_once(layout)
    assert f"chmod 600 {creds}" in info.value.hint and "readable by other users" in str(info.value)
    proc = sheetsync_cmd("sync", str(layout))
    assert proc.returncode != 0 and "chmod 600" in proc.stderr
    assert_clean(proc.stderr + proc.stdout, key_pem, "the refusal")


def test_a_synced_sheet_its_store_report_and_snapshots_hold_no_key(tmp_path, key_pem, emulator, caplog):
    creds = write_credentials(tmp_path, key_pem, "http://127.0.0.1:9/token")
    emulator.add_spreadsheet("book", {TAB: [["ID", "Name"], ["C001", "Ann"], ["C002", "Bo"]]})
    layout = gsheets_layout(tmp_path, creds, endpoint=emulator.url)
    caplog.set_level(logging.DEBUG)
    res = sync_once(layout)
    assert res.inserted == 2
    emulator.set_cell("book", TAB, 2, 2, "Ann B")
    sync_once(layout)
    assert list((tmp_path / "backups").rglob("*")), "no snapshot was taken"
    assert_clean(all_bytes(tmp_path), key_pem, "the store or the backups")
    assert_clean(json.dumps(emulator.values("book", "sheetsync"), ensure_ascii=False), key_pem, "the report tab")
    assert_clean(caplog.text, key_pem, "the logs")


def test_store_and_backups_are_created_private(tmp_path, monkeypatch):
    old = os.umask(0o022)  # a typical default: files 0644 unless sheetsync says otherwise
    try:
        sheet = SheetFixture("xlsx", tmp_path, customer_rows(5))
        sync_once(sheet.layout)
        sheet.edit(2, 2, "Changed")
        sync_once(sheet.layout)
    finally:
        os.umask(old)
    store_files = [p for p in tmp_path.iterdir() if p.name.startswith("sheetsync.db")]
    assert store_files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in store_files), \
        {p.name: oct(p.stat().st_mode) for p in store_files}
    backups = tmp_path / "backups"
    entries = [backups, *backups.rglob("*")]
    assert len(entries) > 3
    wrong = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in entries
             if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)}
    assert wrong == {}
