"""Connection-level limits for `otakit serve` against slow or hoarding clients (slowloris).

- Header-read timeout (`HEADER_TIMEOUT`): a connection must deliver a complete request head within
  this many seconds of opening, or of the end of its previous response; otherwise the server
  closes it. Bytes trickled in do not extend it. (aiohttp's keep-alive timer, which covers exactly
  the "waiting for a request head" state, is set to this value.)
- Per-client connection cap (`PER_CLIENT`): at most this many open connections per source
  address; a further one is closed at once, before any byte is read, so one client cannot take
  the connections, memory and file descriptors other devices need. A fleet behind one NAT shares
  one address: raise the cap (``otakit serve --max-client-connections``) for such a network.
- Send timeout (`SEND_TIMEOUT`): a client must take each 64 KB of a response body within this
  many seconds (``otakit serve --send-timeout``); one that stops reading (a zero TCP window
  keeps a connection open for ever: TCP's retransmission limit ends only one whose peer is
  gone) is closed with a short body (`otakit.filebody` enforces it).
- Bounded logging of refusals (`RefusalLog`: connections over the cap, and requests aiohttp
  refuses as malformed, `ProtocolLog`): the 1st, 2nd, 4th, 8th ... refusal of an interval
  is logged with the count so far, at most `LOG_LINES` lines per `LOG_INTERVAL` seconds, never a
  traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

HEADER_TIMEOUT = 10.0
SEND_TIMEOUT = 60.0
PER_CLIENT = 32
LOG_LINES = 10
LOG_INTERVAL = 60.0
log = logging.getLogger("otakit.server")


class RefusalLog:
    """Logs refusals with counts, at most ``lines`` lines per ``interval`` seconds.

    Within an interval the 1st, 2nd, 4th, 8th ... refusal is logged with the count so far; the
    first refusal of the next interval first logs the previous interval's total if some went
    unlogged. A flood of n refusals costs about log2(n) lines, never a traceback.
    """

    def __init__(self, lines: int = LOG_LINES, interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lines, self.interval, self.clock = lines, interval, clock
        self._start = -interval
        self._count = self._logged = self._last_logged = 0

    def refused(self, what: str) -> None:
        """Note one refusal described by ``what``."""
        now = self.clock()
        if now - self._start >= self.interval:
            if self._count > self._last_logged:
                log.warning("%d refusals in %.0f s (last: %s)", self._count,
                            self.interval, what)
            self._start, self._count, self._logged, self._last_logged = now, 0, 0, 0
        self._count += 1
        if self._count & (self._count - 1) == 0 and self._logged < self.lines:
            self._logged += 1
            self._last_logged = self._count
            log.warning("refused %s (%d refused in this %.0f s window)", what, self._count,
                        self.interval)


class ProtocolLog:
    """The logger for aiohttp's protocol layer: a request aiohttp refuses before any handler
    runs (malformed request line or header: its 400) is a refusal, logged through `RefusalLog`
    in one line without a traceback; anything else is logged in full."""

    def __init__(self, refusals: RefusalLog) -> None:
        self.refusals = refusals

    def debug(self, msg: str, *args: object, **kw: Any) -> None:
        log.debug(msg, *args, **kw)

    def exception(self, msg: str, *args: object, exc_info: Any = None, **kw: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            detail = (str(exc_info.message).splitlines() or ["-"])[0][:80]
            self.refusals.refused(f"malformed request from {args[0] if args else '-'}: "
                                  f"{exc_info.code} {detail}")
            return
        log.exception(msg, *args, exc_info=exc_info or True, **kw)


class ConnectionLimits:
    """Open connections per source address, and the cap on them (``per_client`` 0: no cap,
    e.g. a load test whose simulated devices all come from one address); ``send_timeout``:
    seconds a client has to take each 64 KB of a response body (`otakit.filebody`) before its
    connection is closed."""

    def __init__(self, per_client: int = PER_CLIENT, refusals: RefusalLog | None = None,
                 send_timeout: float = SEND_TIMEOUT) -> None:
        self.per_client = per_client
        self.send_timeout = send_timeout
        self.open: dict[str, int] = {}
        self.refusals = refusals or RefusalLog()

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]
                         ) -> Callable[[], asyncio.Protocol]:
        """Wrap aiohttp's protocol factory so every connection passes the cap."""
        return lambda: _Capped(self, inner)


class _Capped(asyncio.Protocol):
    """Counts the connection against its address; past the cap, closes it before aiohttp sees
    it; otherwise forwards everything to aiohttp's protocol."""

    def __init__(self, limits: ConnectionLimits, factory: Callable[[], asyncio.Protocol]) -> None:
        self.limits, self.factory = limits, factory
        self.inner: Any = None
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else "-"
        lim = self.limits
        if lim.per_client and lim.open.get(self.peer, 0) >= lim.per_client:
            lim.refusals.refused(f"{self.peer}: over {lim.per_client} open connections")
            cast(asyncio.Transport, transport).abort()
            return
        lim.open[self.peer] = lim.open.get(self.peer, 0) + 1
        self.inner = self.factory()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is None:
            return
        n = self.limits.open.get(self.peer, 1) - 1
        if n > 0:
            self.limits.open[self.peer] = n
        else:
            self.limits.open.pop(self.peer, None)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class CappedSite(web.TCPSite):
    """`web.TCPSite` whose connections pass `ConnectionLimits` first (with no cap, they go
    straight to aiohttp's protocol)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits,
                 **kw: Any) -> None:
        super().__init__(runner, host, port, **kw)
        self.limits = limits

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        # no cap: aiohttp's protocol without the counting layer in front of it
        factory = self.limits.protocol_factory(server) if self.limits.per_client else server
        self._server = await loop.create_server(
            factory, self._host, self._port,
            ssl=self._ssl_context, backlog=self._backlog, reuse_address=self._reuse_address,
            reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
