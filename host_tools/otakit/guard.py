"""Server hardening pieces for aiohttp apps: an admin token, rate limits, safe errors.

Reusable by every otakit server (the repository server, telemetry, the dashboard). There is
one admin token mechanism, this one: `otakit serve --token-file` and the fleet dashboard
(`otakit.fleet`) use the same token and the same checks.

- `load_or_create_token(path)`: the admin token, generated at first start (``secrets``, 256 bits)
  and written with mode 0600 next to the server's state, never inside the served repository.
  There are no default credentials: without a token file there is a new random token.
- `is_admin(request, token, cookie)`: ``Authorization: Bearer <token>``, or (for the dashboard's
  pages) the session cookie `session_value(token)` set by its login form, compared in constant
  time.
- `token_middleware(token, prefixes, open_posts)`: requests under the given path prefixes
  (default ``/admin/``) need the bearer token; anything else is 401 (no hint whether the path
  exists). Any method other than GET/HEAD must be under a protected prefix or be a POST to one
  of the exact ``open_posts`` paths (device telemetry, the login and sign-out forms), so a write
  endpoint can never be added without the token by accident.
- `RateLimiter` / `rate_middleware`: a token bucket per client address; over the limit is 429
  with ``Retry-After``.
- `error_middleware`: an unexpected exception becomes a bare ``500 internal error`` (the
  traceback goes to the server's logger, never to the client).
- `LIMITS`: request size limits to pass to `web.Application` / `web.AppRunner`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from otakit.errors import OtakitError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("otakit.server")

# Request size limits: a request line or header field over 4 KiB is refused (400/431), a body
# over 64 KiB is 413 (the repository server takes none; telemetry reports are small).
MAX_LINE = 4096
MAX_FIELD = 4096
MAX_BODY = 64 * 1024
RUNNER_LIMITS = {"max_line_size": MAX_LINE, "max_field_size": MAX_FIELD}
TOKEN_BYTES = 32
SESSION_COOKIE = "otakit_admin"  # the dashboard's session cookie (see session_value)


def load_or_create_token(path: str | os.PathLike[str]) -> tuple[str, bool]:
    """The admin token stored at ``path``, created (mode 0600, exclusively) if absent.

    Returns:
        (token, created).

    Raises:
        OtakitError: the file is unreadable, empty, or readable by others (``BAD_TOKEN``).
    """
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_token(p)  # another process made it first
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token, True
    if p.stat().st_mode & 0o077:
        raise OtakitError(f"{p} is readable by others; chmod 600 it", reason="BAD_TOKEN")
    token = p.read_text().strip()
    if len(token) < 16:
        raise OtakitError(f"{p} holds no usable token (delete it to make a new one)",
                          reason="BAD_TOKEN")
    return token, False


def session_value(token: str) -> str:
    """The dashboard session cookie for ``token``: an HMAC of it, so the token itself never
    sits in a browser (and a new token ends every session)."""
    return hmac.new(token.encode(), b"otakit-admin-session-v1", hashlib.sha256).hexdigest()


def is_admin(request: web.BaseRequest, token: str | None, cookie: bool = False) -> bool:
    """Whether ``request`` carries the admin token: ``Authorization: Bearer <token>``, or with
    ``cookie`` the session cookie (`session_value`). Constant-time; ``token`` None: never."""
    if not token:
        return False
    given = request.headers.get("Authorization", "").encode()
    if hmac.compare_digest(given, f"Bearer {token}".encode()):
        return True
    if not cookie:
        return False
    value = request.cookies.get(SESSION_COOKIE, "")
    return bool(value) and hmac.compare_digest(value.encode(), session_value(token).encode())


def _unauthorized() -> web.Response:
    return web.Response(status=401, text="401: token required\n",
                        headers={"WWW-Authenticate": 'Bearer realm="otakit"'})


def token_middleware(token: str | None, prefixes: tuple[str, ...] = ("/admin/",),
                     open_posts: tuple[str, ...] = ()
                     ) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Require ``Authorization: Bearer <token>`` under ``prefixes``; refuse writes elsewhere,
    except a POST to one of the exact paths ``open_posts``.

    ``token`` None: every protected path is 401 (the endpoints are disabled).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        protected = any(path == p.rstrip("/") or path.startswith(p) for p in prefixes)
        if not protected:
            if request.method not in ("GET", "HEAD") and not (
                    request.method == "POST" and path in open_posts):
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
            return await handler(request)
        if not is_admin(request, token):
            return _unauthorized()
        return await handler(request)

    return middleware


class RateLimiter:
    """A token bucket per key (client address): ``rate`` requests per second, ``burst`` at once.

    Keeps at most ``max_clients`` buckets (the least recently used go first). ``rate`` 0: no
    limit (e.g. a load test whose simulated devices all come from one address).
    """

    def __init__(self, rate: float = 20.0, burst: int = 40, max_clients: int = 10000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_clients, self.clock = rate, burst, max_clients, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> float:
        """0 if a request by ``key`` may go ahead now, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.pop(next(iter(self._buckets)))
        return wait


def rate_middleware(limiter: RateLimiter
                    ) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """429 with ``Retry-After`` for a client over ``limiter``'s rate."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = limiter.allow(request.remote or "-")
        if wait:
            return web.Response(status=429, text="429: too many requests\n",
                                headers={"Retry-After": str(max(1, round(wait + 0.5)))})
        return await handler(request)

    return middleware


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unexpected exceptions become a bare 500; the traceback is logged, never sent."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # noqa: BLE001 - the point: nothing escapes to the client
        log.exception("error handling %s %s", request.method, request.path)
        return web.Response(status=500, text="500: internal error\n")
