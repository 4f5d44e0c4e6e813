"""Serve a release repository directory read-only over HTTP/1.1 (aiohttp).

Invariants:
- Only regular files inside the repository are served. A path with ``..``, ``.``, empty or
  dot-file segments (in raw or percent-encoded form), a NUL or backslash, a directory, or a symlink
  that resolves outside the repository is 404. Dot-files are hidden so a writer's temporary files
  are never served half-written.
- GET and HEAD only. Every 200/206 carries an exact ``Content-Length`` (never chunked, so the
  simplest device clients work), ``Accept-Ranges: bytes`` and a strong ``ETag`` derived from the
  file's inode, size and mtime (an atomic replace changes it). The body is written by
  `otakit.filebody.FileBody` (``sendfile`` over plain TCP).
- ``Range: bytes=a-b | a- | -n`` (one range, `otakit.http_request`) gives 206 with
  ``Content-Range``; a range that starts past the end gives 416 with ``Content-Range: bytes */size``;
  a multi-range or another unit is ignored (200), as RFC 9110 allows; a malformed ``bytes=`` range
  (not ASCII digits, last < first, junk) is 400. ``If-Range`` with a different ETag (or a date)
  ignores Range.
- A path with bad percent-encoding (``%ff``, ``%zz``, a lone ``%``) is 400.
- ``If-None-Match`` matching the ETag (or ``*``) gives 304 with no body.
- A channel with a withhold threshold (`otakit.withhold`) whose release crossed it is served
  as the previous release's signed manifest, or 503 when the repository keeps none; the check
  runs after every device report taken and records a withhold in ``<repo>/.otakit/
  withheld.json``, the only file the server writes there. It needs a telemetry store
  (``fleet``).
- One access-log line per request: time, peer, method, raw path, status, body bytes, ms; the
  fleet routes (``/.otakit/``, `otakit.fleet`) are logged without the peer address.
- Hardening (`otakit.guard`): ``/admin/`` (and the fleet dashboard) needs the admin token
  generated at first start; no other method than GET/HEAD outside it, except the device
  telemetry POST and the dashboard's login and sign-out forms; request lines and header fields
  ≤ 4 KiB, bodies ≤ 64 KiB; a rate limit per client (429); a client that stops taking a
  response body is closed (`otakit.connguard`); an unexpected error is a bare 500, never a
  traceback.

There is no test code on this path: the tests' fault injection (`otakit.sim.faults`) is a
middleware they add through ``middlewares``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, cast

from aiohttp import web

from otakit import guard
from otakit.errors import OtakitError, RepoError
from otakit.fleet import OPEN_POSTS, Fleet, add_routes
from otakit.connguard import HEADER_TIMEOUT, CappedSite, ConnectionLimits, ProtocolLog
from otakit.filebody import SEND_TIMEOUT_KEY, SENT, FileBody
from otakit.http_request import (MALFORMED, BadPath, choose_range, etag_matches, make_etag,
                                 resolve)
from otakit.withhold import Withholder, store_health

_LOG = web.AppKey("access_log", object)
_ROOT = web.AppKey("root", Path)
_STARTED = web.AppKey("started", float)
_WITHHOLD = web.AppKey("withhold", object)
Middleware = Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                      Awaitable[web.StreamResponse]]


class AccessLog:
    """Writes one line per request to a text stream, flushed (so tails and tests see it) once
    the event loop has run the callbacks ready with it: the lines of the requests finished in
    one pass of the loop go out in one write."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._second, self._stamp = -1, ""  # the time field, formatted once a second
        self._flush_due = False

    def write(self, request: web.BaseRequest, status: int, nbytes: int, ms: float) -> None:
        """Log one request."""
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        now = self._stamp
        peer = "-" if request.path.startswith("/.otakit/") else request.remote or "-"
        self._stream.write(f"{now} {peer} {request.method} {request.raw_path} {status} "
                           f"{nbytes} {ms:.1f}ms\n")
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        self._stream.flush()


async def _handle(request: web.Request) -> web.StreamResponse:
    """GET/HEAD one file of the repository."""
    app = request.app
    try:
        path = resolve(app[_ROOT], request.raw_path.split("?", 1)[0])
    except BadPath as e:
        raise web.HTTPBadRequest(text=f"400: {e}\n") from None
    if path is None:
        raise web.HTTPNotFound()
    withholder = app[_WITHHOLD]
    if withholder is not None and path.endswith("/manifest"):
        path = withholder.substitute(path)  # type: ignore[attr-defined]
        if path is None:  # withheld, and no previous release's manifest to serve instead
            raise web.HTTPServiceUnavailable(text="503: this channel's release is withheld\n",
                                             headers={"Retry-After": "3600",
                                                      "Cache-Control": "no-store"})
    try:
        f = open(path, "rb")  # noqa: SIM115 - FileBody closes it once sent
    except OSError:
        raise web.HTTPNotFound() from None
    try:
        resp = _respond(request, f, os.fstat(f.fileno()))
    except BaseException:
        f.close()
        raise
    if not isinstance(resp, FileBody):
        f.close()
    return resp


def _respond(request: web.Request, f: IO[bytes], st: os.stat_result) -> web.StreamResponse:
    """The response for an open file: 304, 416, 400 (a malformed Range) or a `FileBody`."""
    size, etag = st.st_size, make_etag(st)
    headers = {"ETag": etag, "Accept-Ranges": "bytes",
               "Last-Modified": _http_date(int(st.st_mtime))}
    inm = request.headers.get("If-None-Match")
    if inm is not None and etag_matches(inm, etag):
        return web.Response(status=304, headers=headers)
    rng = choose_range(request.headers.get("Range"), request.headers.get("If-Range"), size, etag)
    if rng == MALFORMED:
        return web.Response(status=400, text="400: malformed Range\n")
    if rng is False:
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    first, last = rng if rng else (0, size - 1)
    if rng:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return FileBody(f, first, last - first + 1, status=206 if rng else 200, headers=headers,
                    send_timeout=request.app.get(SEND_TIMEOUT_KEY))


@functools.lru_cache(maxsize=256)
def _http_date(seconds: int) -> str:
    """An HTTP date (``Last-Modified``); files keep their mtimes, so each is formatted once."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds))


@web.middleware
async def _log_middleware(request: web.Request,
                          handler: Callable[[web.Request], object]) -> web.StreamResponse:
    """Time each request and write its access-log line."""
    t0 = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)  # type: ignore[misc]
        status = resp.status
        if isinstance(resp, FileBody):
            await resp.prepare(request)  # writes the body, so the line has its size and time
        return resp
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        log = cast("AccessLog | None", request.app[_LOG])
        if log is not None:
            log.write(request, status, request.get(SENT, 0),
                      (time.perf_counter() - t0) * 1000)


@web.middleware
async def _withhold_middleware(request: web.Request,
                               handler: Callable[[web.Request], object]) -> web.StreamResponse:
    """After a device report was taken (204), check the channels' withhold thresholds
    (`otakit.withhold`): a release that crosses one is not offered from the next request on."""
    resp = await handler(request)  # type: ignore[misc]
    withholder = request.app[_WITHHOLD]
    if (withholder is not None and resp.status == 204 and request.method == "POST"
            and request.path == OPEN_POSTS[0]):
        try:
            for name, rec in withholder.evaluate():  # type: ignore[attr-defined]
                print(f"otakit serve: withheld {name} sequence {rec['seq']}: {rec['failed']} of "
                      f"{rec['reached']} devices failed; serving "
                      f"{'the previous release' if rec['serve'] == 'previous' else 'nothing'}",
                      file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - the report was taken: its 204 stands
            # (a repository that is not writable or malformed, a store error)
            print(f"otakit serve: cannot withhold: {e}", file=sys.stderr, flush=True)
    return resp  # type: ignore[return-value]


async def _admin_status(request: web.Request) -> web.Response:
    """GET /admin/status (token required): what is served, and for how long."""
    root = request.app[_ROOT]
    return web.json_response({
        "repo": str(root), "manifests": len(list(root.glob("*/*/*/manifest"))),
        "keyrings": len(list(root.glob("*/keyring"))),
        "uptime_s": round(time.monotonic() - request.app[_STARTED], 1)})


def make_app(repo: str | os.PathLike[str], *, access_log: IO[str] | None = None,
             admin_token: str | None = None, rate: guard.RateLimiter | None = None,
             fleet: Fleet | None = None, middlewares: Sequence[Middleware] = ()
             ) -> web.Application:
    """The aiohttp application serving ``repo`` read-only.

    Args:
        repo: the release repository directory.
        access_log: a text stream for one line per request, or None for no log.
        admin_token: the token ``/admin/`` endpoints and the fleet dashboard need (see
            `otakit.guard`); None disables them (401 and 404).
        rate: a per-client rate limit (default: 20 requests/s, bursts of 40).
        fleet: telemetry ingest and dashboard (`otakit.fleet`); None: neither.
        middlewares: more middlewares, innermost (the tests' fault injection,
            `otakit.sim.faults`); the product passes none.

    Raises:
        RepoError: ``repo`` is not a directory.
    """
    root = Path(repo).resolve()
    if not root.is_dir():
        raise RepoError(f"not a directory: {repo}", reason="NO_REPO")
    store = (fleet or Fleet()).store
    withholder = None if store is None else Withholder(root, store_health(store))
    rate = rate or guard.RateLimiter()
    # a layer that is off (no telemetry store to withhold from, no rate limit) is left out:
    # every request would pay for it
    chain: list[Middleware] = [_log_middleware, guard.error_middleware]
    if withholder is not None:
        chain.append(_withhold_middleware)
    if rate.rate > 0:
        chain.append(guard.rate_middleware(rate))
    chain += [guard.token_middleware(admin_token, open_posts=OPEN_POSTS), *middlewares]
    app = web.Application(client_max_size=guard.MAX_BODY,
                          middlewares=chain)  # pyright: ignore[reportArgumentType]
    app[_ROOT] = root
    app[_STARTED] = time.monotonic()
    app[_LOG] = AccessLog(access_log) if access_log is not None else None
    app[_WITHHOLD] = withholder
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
                 ssl_context: ssl.SSLContext | None, limits: ConnectionLimits | None = None,
                 header_timeout: float = HEADER_TIMEOUT) -> tuple[web.AppRunner, str]:
    """Start listening; return the runner and the URL actually bound (port 0 → a free one).

    ``header_timeout`` and ``limits`` (`otakit.connguard`): a request head must be complete
    within that many seconds of the connection opening or its last response; at most
    ``limits.per_client`` open connections per client address; a body's every 64 KB taken
    within ``limits.send_timeout`` seconds.
    """
    limits = limits or ConnectionLimits()
    app[SEND_TIMEOUT_KEY] = limits.send_timeout  # for FileBody
    # no SO_KEEPALIVE probes (aiohttp turns them on, nginx leaves them off): an idle one is
    # closed by the header timeout, one with a body in flight by TCP's retransmission limit
    runner = web.AppRunner(app, access_log=None, handle_signals=False, tcp_keepalive=False,
                           keepalive_timeout=header_timeout, logger=ProtocolLog(limits.refusals),
                           **guard.RUNNER_LIMITS)  # pyright: ignore[reportArgumentType]
    await runner.setup()
    site = CappedSite(runner, host, port, limits, ssl_context=ssl_context,
                      reuse_address=True,
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
        rate: guard.RateLimiter | None = None, fleet: Fleet | None = None,
        limits: ConnectionLimits | None = None, header_timeout: float = HEADER_TIMEOUT) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (the CLI's ``otakit serve``; it
    tunes this process's garbage collector for serving and runs on `new_event_loop`).

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
        limits: the per-client connection cap and the send timeout (`otakit.connguard`;
            default 32 per address, 60 s per 64 KB).
        header_timeout: seconds a connection has to send a complete request head.

    Raises:
        RepoError: ``repo`` is not a directory.
        OtakitError: the address cannot be bound.
    """
    app = make_app(repo, access_log=access_log, admin_token=admin_token, rate=rate, fleet=fleet)

    async def main() -> None:
        runner, url = await _start(app, host, port, ssl_context, limits, header_timeout)
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

    # This process only serves from here on: keep the cyclic garbage collector off the
    # objects of its imports (never garbage) and run it less often (each request allocates
    # hundreds of short-lived objects that reference counting frees anyway).
    gc.freeze()
    gc.set_threshold(20000, 20, 20)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The event loop the server runs on (`run` and `serve_in_thread`): uvloop's when it is
    installed (a dependency of the package; less CPU per connection than asyncio's own loop),
    else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415 - optional at run time: the server works without it
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@contextlib.contextmanager
def serve_in_thread(repo: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0, *,
                    ssl_context: ssl.SSLContext | None = None,
                    access_log: IO[str] | None = None,
                    admin_token: str | None = None, rate: guard.RateLimiter | None = None,
                    fleet: Fleet | None = None, middlewares: Sequence[Middleware] = (),
                    limits: ConnectionLimits | None = None,
                    header_timeout: float = HEADER_TIMEOUT) -> Iterator[str]:
    """Run the server in a background thread; yield its base URL (ends with ``/``).

    Example::

        with serve_in_thread(repo) as url:
            urllib.request.urlopen(url + "blobs/sha256/...")

    Raises:
        RepoError: ``repo`` is not a directory.
        OtakitError: the address cannot be bound.
    """
    app = make_app(repo, access_log=access_log, admin_token=admin_token,
                   rate=rate or guard.RateLimiter(rate=1000, burst=1000), fleet=fleet,
                   middlewares=middlewares)
    loop = new_event_loop()
    started: dict[str, object] = {}
    ready = threading.Event()

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        try:
            started["runner"], started["url"] = loop.run_until_complete(
                _start(app, host, port, ssl_context, limits, header_timeout))
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
