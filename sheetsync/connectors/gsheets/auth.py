"""Credentials and HTTP sessions for the Google Sheets connector.

Loads a service-account or authorized-user JSON with google-auth after refusing files other
users can read, and never lets key material reach a message or a log. With an endpoint (the
emulator) no credentials are needed: a session rewrites Google's hosts to that address.
"""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import requests

from ...errors import SourceError
from .retry import DEFAULT_TIMEOUT

SCOPES = ("https://www.googleapis.com/auth/spreadsheets",
          "https://www.googleapis.com/auth/drive.metadata.readonly")
GOOGLE_HOSTS = ("https://sheets.googleapis.com", "https://www.googleapis.com")


class EndpointSession(requests.Session):
    """A requests.Session sending Google API calls to `endpoint` (the emulator), timeouts always set.

    Patching gspread.urls would do nothing (its constants are imported by value); rewriting at
    the session is the seam gspread offers (`gspread.Client(auth=None, session=...)`).
    """

    def __init__(self, endpoint: str, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        for host in GOOGLE_HOSTS:
            if url.startswith(host):
                url = self.endpoint + url[len(host):]
                break
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


def check_private(path: Path) -> None:
    """Refuse a credentials file that group or others can read: it holds a private key."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SourceError(f"cannot read credentials file {path} ({exc.strerror})",
                          hint="give the path of the JSON key downloaded from Google Cloud",
                          where=str(path)) from None
    if sys.platform != "win32" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SourceError(f"credentials file {path} is readable by other users "
                          f"(mode {stat.filemode(mode)})",
                          hint=f"run `chmod 600 {path}` so only you can read the key",
                          where=str(path))


def credentials_path(given: Path | None) -> Path:
    if given is not None:
        return Path(given).expanduser()
    env = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if env:
        return Path(env).expanduser()
    raise SourceError("no Google credentials given",
                      hint="set `credentials:` in the layout or GOOGLE_APPLICATION_CREDENTIALS to a "
                           "service-account JSON file (see docs/google-sheets.md), or set "
                           "SHEETSYNC_SHEETS_ENDPOINT to use the local emulator")


def load_credentials(path: Path) -> tuple[Any, str | None]:
    """(google-auth credentials, service-account email or None) from a JSON key file.

    Every failure is re-raised without the original message or traceback context, because
    parsers may quote the input, and the input holds the private key.
    """
    check_private(path)
    bad = SourceError(f"credentials file {path} is not a Google service-account or "
                      "authorized-user JSON file",
                      hint="download a new JSON key for the service account (docs/google-sheets.md)",
                      where=str(path))
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        kind = info.get("type") if isinstance(info, dict) else None
    except Exception:  # noqa: BLE001 - never echo the file's text
        kind, info = None, None
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            creds = service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
            return creds, info.get("client_email")
        if kind == "authorized_user":
            from google.oauth2.credentials import Credentials

            return Credentials.from_authorized_user_info(info, scopes=list(SCOPES)), None
    except Exception:  # noqa: BLE001 - never echo key material
        info = None
    bad.__suppress_context__ = True
    raise bad


def make_session(credentials: Path | None, endpoint: str | None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> tuple[requests.Session, str | None]:
    """(session for gspread, service-account email for hints)."""
    if endpoint:
        return EndpointSession(endpoint, timeout), None
    creds, email = load_credentials(credentials_path(credentials))
    from google.auth.transport.requests import AuthorizedSession

    return AuthorizedSession(creds), email
