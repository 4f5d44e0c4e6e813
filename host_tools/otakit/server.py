"""Serve a release repository directory read-only over HTTP/1.1 (aiohttp).

Invariants:
- Only regular files inside the repository are served. A path with ``..``, ``.``, empty or
  dot-file segments (in raw or percent-encoded form), a NUL or backslash, a directory, or a symlink
  that resolves outside the repository is 404. Dot-files are hidden so a writer's temporary files
  are never served half-written.
- GET and HEAD only. Every 200/206 carries an exact ``Content-Length`` (never chunked, so the
  simplest device clients work), ``Accept-Ranges: bytes`` and a strong ``ETag`` derived from the
  file's inode, size and mtime (an atomic replace changes it).
- ``Range: bytes=a-b | a- | -n`` (one range) gives 206 with ``Content-Range``; a range that starts
  past the end gives 416 with ``Content-Range: bytes */size``; a multi-range or malformed Range is
  ignored (200), as RFC 9110 allows. ``If-Range`` with a different ETag (or a date) ignores Range.
- ``If-None-Match`` matching the ETag (or ``*``) gives 304 with no body.
- One access-log line per request: time, peer, method, raw path, status, body bytes, ms; the
  fleet routes (``/.otakit/``, `otakit.fleet`) are logged without the peer address.
- Hardening (`otakit.guard`): ``/admin/`` (and the fleet dashboard) needs the admin token
  generated at first start; no other method than GET/HEAD outside it, except the device
  telemetry POST and the dashboard's login form; request lines and header fields ≤ 4 KiB, bodies
  ≤ 64 KiB; a rate limit per client (429); an unexpected error is a bare 500, never a traceback.

Fault injection for tests lives in `Faults`; the CLI never enables it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import ssl
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, cast
from urllib.parse import unquote

from aiohttp import web

from otakit import guard
from otakit.errors import OtakitError, RepoError
from otakit.fleet import OPEN_POSTS, Fleet, add_routes

CHUNK = 64 * 1024
SMALL = 16 * 1024  # bodies up to this size go out with their headers in one write
_FAULTS = web.AppKey("faults", "Faults")  # pyright: ignore[reportArgumentType] - defined below
_LOG = web.AppKey("access_log", object)
_ROOT = web.AppKey("root", Path)
_SENT = web.RequestKey("otakit_bytes", int)
_STARTED = web.AppKey("started", float)


@dataclass
class Faults:
    """Test-only fault injection; fields may be changed while the server runs.

    Attributes:
        drop_after: close the connection after sending this many body bytes of each response.
        ignore_range: answer 200 with the whole file even when a Range is asked for.
        fail_status: answer every request with this status (e.g. 500, 503) and no body.
        stall_seconds: sleep this long after sending the headers, before the body.
        reset: end a dropped connection with a TCP reset (abort) instead of a close.
        drip: send the body ``n`` bytes at a time, sleeping ``s`` seconds between: ``(n, s)``.
        truncate_to: announce and send only this many bytes of the body (a lying
            Content-Length: the headers agree with the short body).
        retry_after: the Retry-After header sent with ``fail_status``.
        garbage_at: replace 64 body bytes from this resource offset with garbage.
        redirect_loop: answer every request with a 302 to itself.
        only: apply the faults only to request paths containing this text (None: all).
        raise_error: the handler raises an unexpected exception (what the client sees of it).
        rate: send bodies at about this many bytes per second (a slow link).
    """

    drop_after: int | None = None
    ignore_range: bool = False
    fail_status: int | None = None
    stall_seconds: float = 0.0
    reset: bool = False
    drip: tuple[int, float] | None = None
    truncate_to: int | None = None
    retry_after: str | None = None
    garbage_at: int | None = None
    redirect_loop: bool = False
    only: str | None = None
    raise_error: bool = False
    rate: int | None = None


_NO_FAULTS = Faults()


class AccessLog:
    """Writes one line per request to a text stream (flushed, so tails and tests see it)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, request: web.BaseRequest, status: int, nbytes: int, ms: float) -> None:
        """Log one request."""
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        peer = "-" if request.path.startswith("/.otakit/") else request.remote or "-"
        self._stream.write(f"{now} {peer} {request.method} {request.raw_path} {status} "
                           f"{nbytes} {ms:.1f}ms\n")
        self._stream.flush()


def resolve(root: Path, raw_path: str) -> Path | None:
    """The regular file a raw request path names inside ``root``, or None (→ 404).

    Args:
        root: the repository directory, already resolved.
        raw_path: the request path as sent (still percent-encoded), query string removed.
    """
    if not raw_path.startswith("/"):
        return None
    parts = []
    for raw in raw_path[1:].split("/"):
        part = unquote(raw, errors="strict") if "%" in raw else raw
        if (not part or part.startswith(".") or "/" in part or "\\" in part or "\0" in part):
            return None
        parts.append(part)
    if not parts:
        return None
    try:
        real = root.joinpath(*parts).resolve(strict=True)
        st = real.stat()
    except (OSError, ValueError, RuntimeError):
        return None
    if not real.is_relative_to(root) or not stat.S_ISREG(st.st_mode):
        return None
    return real


def make_etag(st: os.stat_result) -> str:
    """A strong ETag from inode, size and modification time (changes on any atomic replace)."""
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def parse_range(value: str, size: int) -> tuple[int, int] | None | Literal[False]:
    """Parse one ``bytes=`` range against ``size``.

    Returns:
        (first, last) inclusive for a satisfiable range; False when unsatisfiable (→ 416);
        None when the header is to be ignored (malformed, another unit, several ranges).
    """
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash or not (first_s.isdigit() or first_s == "") or not (last_s.isdigit()
                                                                    or last_s == ""):
        return None
    if first_s == "":  # suffix: the last n bytes
        if last_s == "":
            return None
        n = int(last_s)
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else False
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None
    if first >= size:
        return False
    return first, min(last, size - 1)


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match (weak comparison): a list of entity tags, or ``*``."""
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


async def _handle(request: web.Request) -> web.StreamResponse:
    """GET/HEAD one file of the repository."""
    faults: Faults = request.app[_FAULTS]
    if faults.only is not None and faults.only not in request.raw_path:
        faults = Faults()
    if faults.fail_status:
        headers = {"Retry-After": faults.retry_after} if faults.retry_after else None
        return web.Response(status=faults.fail_status, text="", headers=headers)
    if faults.redirect_loop:
        return web.Response(status=302, headers={"Location": request.raw_path})
    if faults.raise_error:
        raise RuntimeError(f"injected failure in {__file__} (a detail clients must not see)")
    path = resolve(request.app[_ROOT], request.raw_path.split("?", 1)[0])
    if path is None:
        raise web.HTTPNotFound()
    try:
        f = path.open("rb")
    except OSError:
        raise web.HTTPNotFound() from None
    with f:
        st = os.fstat(f.fileno())
        return await _send(request, f, st, faults)


def _choose_range(request: web.Request, size: int, etag: str,
                  faults: Faults) -> tuple[int, int] | None | Literal[False]:
    """The byte range to send (None = whole file, False = unsatisfiable)."""
    value = request.headers.get("Range")
    if value is None or faults.ignore_range:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        return None
    return parse_range(value, size)


async def _send(request: web.Request, f: IO[bytes], st: os.stat_result,
                faults: Faults) -> web.StreamResponse:
    """Write the status, headers and (for GET) the body of an open file."""
    size, etag = st.st_size, make_etag(st)
    headers = {"ETag": etag, "Accept-Ranges": "bytes",
               "Last-Modified": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).strftime(
                   "%a, %d %b %Y %H:%M:%S GMT")}
    inm = request.headers.get("If-None-Match")
    if inm is not None and _etag_matches(inm, etag):
        return web.Response(status=304, headers=headers)
    rng = _choose_range(request, size, etag, faults)
    if rng is False:
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    first, last = rng if rng else (0, size - 1)
    length = last - first + 1
    if faults.truncate_to is not None:
        length = min(length, faults.truncate_to)
    if rng:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    if length <= SMALL and request.method == "GET" and faults == _NO_FAULTS:
        # a manifest: headers and body in one write
        f.seek(first)
        body = f.read(length)
        request[_SENT] = len(body)
        return web.Response(status=206 if rng else 200, headers=headers, body=body,
                            content_type="application/octet-stream")
    resp = web.StreamResponse(status=206 if rng else 200, headers=headers)
    resp.content_type = "application/octet-stream"
    resp.content_length = length
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    if faults.stall_seconds:
        await asyncio.sleep(faults.stall_seconds)
    await _copy(request, resp, f, first, length, faults)
    return resp


def _garble(data: bytes, offset: int, at: int | None) -> bytes:
    """``data`` (at resource ``offset``) with 64 bytes from ``at`` inverted (a fault)."""
    if at is None or not offset - 64 < at < offset + len(data):
        return data
    b = bytearray(data)
    for i in range(max(0, at - offset), min(len(b), at - offset + 64)):
        b[i] ^= 0xFF
    return bytes(b)


async def _copy(request: web.Request, resp: web.StreamResponse, f: IO[bytes], first: int,
                length: int, faults: Faults) -> None:
    """Copy ``length`` bytes from ``first`` to the response, counting them for the log."""
    f.seek(first)
    sent = 0
    drop_after = faults.drop_after
    limit = length if drop_after is None else min(length, drop_after)
    step = faults.drip[0] if faults.drip else CHUNK
    while sent < limit:
        # a 64 KB read from the page cache is faster than a hop to a thread (repositories are
        # local files; nginx reads them the same way)
        data = f.read(min(step, limit - sent))
        if not data:
            break  # the file shrank under us: the client sees a short body
        try:
            await resp.write(_garble(data, first + sent, faults.garbage_at))
        except ConnectionError:  # the client went away (a device reset mid-download)
            return
        sent += len(data)
        if faults.rate:
            await asyncio.sleep(len(data) / faults.rate)
        request[_SENT] = sent
        if faults.drip and sent < limit:
            await asyncio.sleep(faults.drip[1])
    if sent < length and request.transport is not None:
        if faults.reset:
            request.transport.abort()  # injected connection reset
        else:
            request.transport.close()  # injected drop, or a truncated file


@web.middleware
async def _log_middleware(request: web.Request,
                          handler: Callable[[web.Request], object]) -> web.StreamResponse:
    """Time each request and write its access-log line."""
    t0 = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)  # type: ignore[misc]
        status = resp.status
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        log = cast("AccessLog | None", request.app[_LOG])
        if log is not None:
            log.write(request, status, request.get(_SENT, 0),
                      (time.perf_counter() - t0) * 1000)


async def _admin_status(request: web.Request) -> web.Response:
    """GET /admin/status (token required): what is served, and for how long."""
    root = request.app[_ROOT]
    return web.json_response({
        "repo": str(root), "manifests": len(list(root.glob("*/*/*/manifest"))),
        "keyrings": len(list(root.glob("*/keyring"))),
        "uptime_s": round(time.monotonic() - request.app[_STARTED], 1)})


def make_app(repo: str | os.PathLike[str], *, access_log: IO[str] | None = None,
             faults: Faults | None = None, admin_token: str | None = None,
             rate: guard.RateLimiter | None = None,
             fleet: Fleet | None = None) -> web.Application:
    """The aiohttp application serving ``repo`` read-only.

    Args:
        repo: the release repository directory.
        access_log: a text stream for one line per request, or None for no log.
        faults: test-only fault injection (see `Faults`).
        admin_token: the token ``/admin/`` endpoints and the fleet dashboard need (see
            `otakit.guard`); None disables them (401 and 404).
        rate: a per-client rate limit (default: 20 requests/s, bursts of 40).
        fleet: telemetry ingest and dashboard (`otakit.fleet`); None: neither.

    Raises:
        RepoError: ``repo`` is not a directory.
    """
    root = Path(repo).resolve()
    if not root.is_dir():
        raise RepoError(f"not a directory: {repo}", reason="NO_REPO")
    app = web.Application(client_max_size=guard.MAX_BODY, middlewares=[  # pyright: ignore[reportArgumentType]
        _log_middleware, guard.error_middleware,
        guard.rate_middleware(rate or guard.RateLimiter()),
        guard.token_middleware(admin_token, open_posts=OPEN_POSTS)])
    app[_ROOT] = root
    app[_STARTED] = time.monotonic()
    app[_LOG] = AccessLog(access_log) if access_log is not None else None
    app[_FAULTS] = faults or Faults()
    app.router.add_get("/admin/status", _admin_status)
    add_routes(app, root, fleet or Fleet(), admin_token)
    app.router.add_get("/{tail:.*}", _handle)  # HEAD is routed here too
    return app


def tls_context(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """A server TLS context from PEM certificate (chain) and key files.

    Raises:
        OtakitError: the files cannot be read or do not match.
    """
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise OtakitError(f"cannot load TLS certificate/key: {e}", reason="BAD_TLS") from e
    return ctx


def _url(host: str, port: int, tls: bool) -> str:
    h = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{h}:{port}/"


async def _start(app: web.Application, host: str, port: int,
                 ssl_context: ssl.SSLContext | None) -> tuple[web.AppRunner, str]:
    """Start listening; return the runner and the URL actually bound (port 0 → a free one)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           **guard.RUNNER_LIMITS)  # pyright: ignore[reportArgumentType]
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True,
                       backlog=1024)  # a fleet checking at once must not overflow the queue
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise OtakitError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                          reason="LISTEN_FAILED") from e
    bound = runner.addresses[0]
    return runner, _url(host, bound[1], ssl_context is not None)


def run(repo: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 8080,
        ssl_context: ssl.SSLContext | None = None, access_log: IO[str] | None = None,
        on_start: Callable[[str], None] | None = None, admin_token: str | None = None,
        rate: guard.RateLimiter | None = None, fleet: Fleet | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly.

    Args:
        repo: the release repository directory.
        host: the address to bind (loopback by default).
        port: the port; 0 picks a free one.
        ssl_context: serve https with this context.
        access_log: a text stream for the access log, or None.
        on_start: called with the URL once listening.
        admin_token: the admin token (`otakit.guard`).
        rate: the per-client rate limit (default: 20 requests/s, bursts of 40).
        fleet: telemetry ingest and dashboard (`otakit.fleet`).

    Raises:
        RepoError: ``repo`` is not a directory.
        OtakitError: the address cannot be bound.
    """
    app = make_app(repo, access_log=access_log, admin_token=admin_token, rate=rate, fleet=fleet)

    async def main() -> None:
        runner, url = await _start(app, host, port, ssl_context)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            if on_start:
                on_start(url)
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())


@contextlib.contextmanager
def serve_in_thread(repo: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0, *,
                    ssl_context: ssl.SSLContext | None = None,
                    access_log: IO[str] | None = None,
                    faults: Faults | None = None, admin_token: str | None = None,
                    rate: guard.RateLimiter | None = None,
                    fleet: Fleet | None = None) -> Iterator[str]:
    """Run the server in a background thread; yield its base URL (ends with ``/``).

    Example::

        with serve_in_thread(repo) as url:
            urllib.request.urlopen(url + "blobs/sha256/...")

    Raises:
        RepoError: ``repo`` is not a directory.
        OtakitError: the address cannot be bound.
    """
    app = make_app(repo, access_log=access_log, faults=faults, admin_token=admin_token,
                   rate=rate or guard.RateLimiter(rate=1000, burst=1000), fleet=fleet)
    loop = asyncio.new_event_loop()
    started: dict[str, object] = {}
    ready = threading.Event()

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        try:
            started["runner"], started["url"] = loop.run_until_complete(
                _start(app, host, port, ssl_context))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            started["error"] = e
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(started["runner"].cleanup())  # type: ignore[attr-defined]

    thread = threading.Thread(target=thread_main, name="otakit-serve", daemon=True)
    thread.start()
    ready.wait()
    if "error" in started:
        thread.join()
        loop.close()
        raise started["error"]  # type: ignore[misc]
    try:
        yield str(started["url"])
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
