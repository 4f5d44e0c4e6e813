"""Admin access to the fleet pages of `otakit serve` (dashboard, summary API), behind one small
interface so a stronger mechanism (issue 6's admin tokens and request limits) can replace it.

`Authorizer` is the interface the server uses; `TokenAuth` is the minimal implementation: one
admin token, given as ``Authorization: Bearer <token>`` or exchanged once on the login form for a
session cookie (an HMAC of the token, so the token itself never sits in the browser).

Invariants:
- Comparisons are constant-time (`hmac.compare_digest`).
- An empty or short token is refused at construction: the dashboard is never open by accident.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Protocol

from aiohttp import web

from otakit.errors import OtakitError

COOKIE = "otakit_admin"
TOKEN_ENV = "OTAKIT_ADMIN_TOKEN"
MIN_TOKEN = 16


class Authorizer(Protocol):
    """What the server asks of an admin-access mechanism."""

    def allows(self, request: web.BaseRequest) -> bool:
        """Whether the request carries admin credentials."""

    def login(self, token: str) -> str | None:
        """A session cookie value for a correct token, else None."""

    def allows_ingest(self, request: web.BaseRequest) -> bool:
        """Whether a device may post a telemetry report."""


class TokenAuth:
    """One admin token (Bearer header or session cookie); telemetry ingest is open."""

    def __init__(self, token: str) -> None:
        """Raises: OtakitError ``BAD_ARGUMENT`` when the token is shorter than 16 characters."""
        if len(token) < MIN_TOKEN:
            raise OtakitError(f"the admin token must be at least {MIN_TOKEN} characters",
                              reason="BAD_ARGUMENT")
        self._token = token.encode()
        self._session = hmac.new(self._token, b"otakit-admin-session-v1",
                                 hashlib.sha256).hexdigest()

    def allows(self, request: web.BaseRequest) -> bool:
        """Bearer token or session cookie."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(),
                                                                 self._token):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self._session.encode())

    def login(self, token: str) -> str | None:
        """The session cookie value when ``token`` is the admin token."""
        return self._session if hmac.compare_digest(token.encode(), self._token) else None

    def allows_ingest(self, request: web.BaseRequest) -> bool:  # noqa: ARG002
        """Reports are open: they are validated and bounded, and carry no authority."""
        return True


def token_from_env_or_file(path: str | None) -> str | None:
    """The admin token from a file (first line) or ``$OTAKIT_ADMIN_TOKEN``; None if neither.

    Raises:
        OtakitError: the file cannot be read.
    """
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().strip()
        except OSError as e:
            raise OtakitError(f"cannot read the admin token file {path}: {e.strerror}",
                              reason="BAD_ARGUMENT") from e
    return os.environ.get(TOKEN_ENV) or None


__all__ = ["COOKIE", "TOKEN_ENV", "Authorizer", "TokenAuth", "token_from_env_or_file"]
