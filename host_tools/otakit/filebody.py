"""Writing a file's bytes to a client of the repository server (`otakit.server`): `FileBody`.

`otakit.server` opens the file and picks the range and the headers; a `FileBody` then writes
that range once prepared: in one write with the headers when it is at most `CHUNK` bytes, with
the kernel's ``sendfile`` over plain TCP, in `CHUNK` reads and writes over TLS. It counts the
bytes it wrote in the request under `SENT` for the access log, and closes the connection when it
cannot send the whole range (the client sees a short body): also when the client takes less than
`CHUNK` bytes in ``send_timeout`` seconds (a client that stops reading; the server passes the
app's `SEND_TIMEOUT_KEY`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import IO

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

CHUNK = 64 * 1024  # one read and one write per chunk; a body up to this goes out with its headers
SENT = web.RequestKey("otakit_bytes", int)  # body bytes written, for the access log
# seconds a client has to take each CHUNK of a body (`otakit.connguard.SEND_TIMEOUT`, set by the
# server when it starts; absent: no limit)
SEND_TIMEOUT_KEY = web.AppKey("otakit_send_timeout", float)


class FileBody(web.StreamResponse):
    """A 200/206 of an open file: ``length`` bytes from ``first``, written when prepared.

    The handler returns it unprepared; the access-log middleware prepares it, which writes the
    body and closes the file. `send_body` is the one place the body is written: a body of at
    most `CHUNK` bytes (a manifest) goes out in one write with the headers; a longer one over
    plain TCP goes from the page cache to the socket with the kernel's ``sendfile`` (after the
    headers); over TLS, which ``sendfile`` cannot feed, in `CHUNK` reads and writes.
    """

    _send_headers_immediately = False  # aiohttp: the headers go out with the first write

    def __init__(self, file: IO[bytes], first: int, length: int, *, status: int,
                 headers: Mapping[str, str], send_timeout: float | None = None) -> None:
        super().__init__(status=status, headers={
            **headers, "Content-Type": "application/octet-stream",
            "Content-Length": str(length)})
        self.file, self.first, self.length = file, first, length
        self.send_timeout = send_timeout  # s for each CHUNK the client takes; None: no limit
        self._started = False
        self._writer: AbstractStreamWriter | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        writer = await super().prepare(request)
        if not self._started:
            self._started = True
            self._writer = writer
            try:
                if request.method != "HEAD":
                    await self.send_body(request)
            finally:
                self.file.close()
        return writer

    async def send_body(self, request: web.BaseRequest) -> None:
        """Send the range to the client, counting bytes for the log (`SENT`); a client that
        goes away (a device reset mid-download) or stops taking the body ends it; a file that
        shrank closes the connection (the client sees a short body)."""
        transport = request.transport
        if (self.length > CHUNK and transport is not None and not transport.is_closing()
                and transport.get_extra_info("sslcontext") is None):
            sent = await self._sendfile(request, transport)
        else:
            sent = 0
        if sent is not None and sent < self.length:
            sent = await self._copy(request, sent)
        transport = request.transport
        if transport is None:
            return
        if sent is None:
            transport.abort()  # a client gone, or stalled: nothing buffered is worth waiting on
        elif sent < self.length:
            transport.close()  # a short body (the file shrank): what was written goes out

    async def _sendfile(self, request: web.BaseRequest, transport: asyncio.Transport
                        ) -> int | None:
        """``sendfile`` of the range after the headers; the bytes the kernel took, or None when
        the client went away. 0 when nothing was sent this way (the socket cannot take
        ``sendfile``, or the headers still wait in the transport's buffer): the caller copies."""
        assert self._writer is not None
        try:
            self._writer.send_headers()  # the buffered headers, on their own
        except ConnectionError:
            return None
        sock = transport.get_extra_info("socket")
        if sock is None or transport.get_write_buffer_size():
            return 0  # bytes queued before the body: only the transport keeps the order
        # Nothing is queued before the body, so sendfile(2) straight to the socket keeps the
        # order; a socket buffer with room (the usual case on a LAN) takes the whole body in
        # this one call, without a round through the event loop.
        fd, sent = sock.fileno(), 0
        try:
            sent = os.sendfile(fd, self.file.fileno(), self.first, self.length)
        except BlockingIOError:
            pass  # the socket buffer is full: wait for room below
        except ConnectionError:  # the client went away
            return None
        except OSError:
            return 0  # sendfile(2) cannot take this socket or file: copy
        else:
            if sent == 0:
                return 0  # at the end of the file already (it shrank)
            request[SENT] = sent
        if sent < self.length:
            return await self._pump(request, fd, sent)
        return sent

    async def _pump(self, request: web.BaseRequest, fd: int, sent: int) -> int | None:
        """The rest of the range from ``first + sent``: one ``sendfile(2)`` each time the
        socket has room, run from the event loop's callback. The bytes sent, or None when the
        client went away, took less than `CHUNK` bytes in the send timeout, or the file could
        not be read.

        The loop watches a duplicate of the socket's descriptor for writing (the transport
        keeps the socket's own descriptor for reading), so this works on any event loop with
        ``add_writer`` (asyncio's, uvloop's), and the watch stays registered until the range is
        sent instead of being re-armed after every partial send.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        src, end = self.file.fileno(), self.first + self.length
        pos = self.first + sent

        def writable() -> None:
            nonlocal pos
            if done.done():
                return
            try:
                n = os.sendfile(dup, src, pos, end - pos)
            except BlockingIOError:
                return
            except OSError:  # ConnectionError and the like: the client went away
                done.set_result(False)
                return
            pos += n
            if n == 0 or pos == end:  # done, or at the end of a file that shrank
                done.set_result(True)

        dup = os.dup(fd)
        limit = self.send_timeout
        try:
            loop.add_writer(dup, writable)
            try:
                while True:  # woken every `limit` s to see that the client took a CHUNK
                    before = pos
                    try:
                        ok = await asyncio.wait_for(asyncio.shield(done), limit)
                        break
                    except TimeoutError:
                        if pos - before < CHUNK:  # it stopped reading: close it
                            ok = False
                            break
            finally:
                loop.remove_writer(dup)
        finally:
            os.close(dup)
            if pos > self.first:
                request[SENT] = pos - self.first
        return pos - self.first if ok else None

    async def _copy(self, request: web.BaseRequest, sent: int) -> int | None:
        """Copy the range from ``first + sent`` in `CHUNK` reads and writes; the bytes sent,
        or None when the client went away or did not take a write within the send timeout."""
        self.file.seek(self.first + sent)
        while sent < self.length:
            # a 64 KB read from the page cache is faster than a hop to a thread (repositories
            # are local files; nginx reads them the same way)
            data = self.file.read(min(CHUNK, self.length - sent))
            if not data:
                break
            try:
                await asyncio.wait_for(self.write(data), self.send_timeout)
            except (ConnectionError, TimeoutError):
                return None
            sent += len(data)
            request[SENT] = sent
        return sent
