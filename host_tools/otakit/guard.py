"""Server hardening pieces for aiohttp apps: an admin token, rate limits, safe errors.

Reusable by every otakit server (the repository server, telemetry, the dashboard):

- `load_or_create_token(path)`: the admin token, generated at first start (``secrets``, 256 bits)
  and written with mode 0600 next to the server's state, never inside the served repository.
  There are no default credentials: without a token file there is a new random token.
- `token_middleware(token, prefixes)`: requests under the given path prefixes (default
  ``/admin/``) need ``Authorization: Bearer <token>``, compared in constant time; anything
  else is 401 (no hint whether the path exists). Any method other than GET/HEAD must be under
  a protected prefix, so a write endpoint can never be added without the token.
- `RateLimiter` / `rate_middleware`: a token bucket per client address; over the limit is 429
  with ``Retry-After``.
- `error_middleware`: an unexpected exception becomes a bare ``500 internal error`` (the
  traceback goes to the server's logger, never to the client).
- `LIMITS`: request size limits to pass to `web.Application` / `web.AppRunner`.
"""

from __future__ import annotations

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


def _unauthorized() -> web.Response:
    return web.Response(status=401, text="401: token required\n",
                        headers={"WWW-Authenticate": 'Bearer realm="otakit"'})


def token_middleware(token: str | None, prefixes: tuple[str, ...] = ("/admin/",)
                     ) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Require ``Authorization: Bearer <token>`` under ``prefixes``; refuse writes elsewhere.

    ``token`` None: every protected path is 401 (the endpoints are disabled).
    """
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        protected = any(path == p.rstrip("/") or path.startswith(p) for p in prefixes)
        if not protected:
            if request.method not in ("GET", "HEAD"):
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if expected is None or not hmac.compare_digest(given, expected):
            return _unauthorized()
        return await handler(request)

    return middleware


class RateLimiter:
    """A token bucket per key (client address): ``rate`` requests per second, ``burst`` at once.

    Keeps at most ``max_clients`` buckets (the least recently used go first).
    """

    def __init__(self, rate: float = 20.0, burst: int = 40, max_clients: int = 10000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_clients, self.clock = rate, burst, max_clients, clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> float:
        """0 if a request by ``key`` may go ahead now, else the seconds until it may."""
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
