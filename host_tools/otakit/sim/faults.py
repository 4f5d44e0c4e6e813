"""Test-only fault injection for the repository server: an aiohttp middleware the simulation
`Lab`, the benchmarks and the tests install (``serve_in_thread(..., middlewares=[f.middleware])``);
`otakit.server.make_app` and `otakit serve` never do.

A `Faults` instance may be changed while the server runs; every request reads it afresh. The
middleware sits innermost (after the product's logging, error, rate and token middlewares), so an
injected exception still becomes the product's bare 500, and refusals still pass the real guards.
Body faults work on the product's own `otakit.filebody.FileBody`: the middleware swaps it for a
`_FaultyBody` with the same file, range and headers, which writes the body its faulty way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields

from aiohttp import web

from otakit.filebody import CHUNK, SENT, FileBody

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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

    def clear(self) -> None:
        """Back to no faults."""
        for f in fields(self):
            setattr(self, f.name, f.default)

    @property
    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        """The aiohttp middleware applying these faults (install it innermost)."""

        @web.middleware
        async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self == _NONE or (self.only is not None and self.only not in request.raw_path):
                return await handler(request)
            if self.fail_status:
                headers = {"Retry-After": self.retry_after} if self.retry_after else None
                return web.Response(status=self.fail_status, text="", headers=headers)
            if self.redirect_loop:
                return web.Response(status=302, headers={"Location": request.raw_path})
            if self.raise_error:
                raise RuntimeError(f"injected failure in {__file__} (a detail clients must not "
                                   "see)")
            if self.ignore_range and "Range" in request.headers:
                headers = request.headers.copy()
                del headers["Range"]
                request = request.clone(headers=headers)
            resp = await handler(request)
            if isinstance(resp, FileBody):
                return _FaultyBody(resp, self)
            return resp

        return faults_middleware


_NONE = Faults()


def _garble(data: bytes, offset: int, at: int | None) -> bytes:
    """``data`` (at resource ``offset``) with 64 bytes from ``at`` inverted (a fault)."""
    if at is None or not offset - 64 < at < offset + len(data):
        return data
    b = bytearray(data)
    for i in range(max(0, at - offset), min(len(b), at - offset + 64)):
        b[i] ^= 0xFF
    return bytes(b)


class _FaultyBody(FileBody):
    """The same file, range and headers as ``body``, written with ``faults``."""

    def __init__(self, body: FileBody, faults: Faults) -> None:
        length = body.length
        if faults.truncate_to is not None:
            length = min(length, faults.truncate_to)
        super().__init__(body.file, body.first, length, status=body.status,
                         headers=body.headers)
        self.faults = Faults(**{f.name: getattr(faults, f.name) for f in fields(faults)})
        self.announced = length

    async def send_body(self, request: web.BaseRequest) -> None:
        faults = self.faults
        if faults.stall_seconds:
            await asyncio.sleep(faults.stall_seconds)
        f, first, length = self.file, self.first, self.length
        f.seek(first)
        sent = 0
        limit = length if faults.drop_after is None else min(length, faults.drop_after)
        step = faults.drip[0] if faults.drip else CHUNK
        while sent < limit:
            data = f.read(min(step, limit - sent))
            if not data:
                break
            try:
                await self.write(_garble(data, first + sent, faults.garbage_at))
            except ConnectionError:
                return
            sent += len(data)
            request[SENT] = sent
            if faults.rate:
                await asyncio.sleep(len(data) / faults.rate)
            if faults.drip and sent < limit:
                await asyncio.sleep(faults.drip[1])
        if sent < length and request.transport is not None:
            if faults.reset:
                request.transport.abort()  # injected connection reset
            else:
                request.transport.close()  # injected drop
