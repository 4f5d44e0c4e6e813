# ota/response.py: one HTTP/1.1 response of ota.http.HTTPClient: headers, then the body.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Reads the status line and header fields through the client's one 512-byte line buffer
# (HTTPClient.lbuf: a longer line, more than 32 fields or a malformed status line is
# BAD_RESPONSE), keeps only the fields the agent uses, and streams the body into the caller's
# buffer, never past Content-Length. The invariants are ota.http's. Checking the answer against
# the request (ota.body.check, called by HTTPClient.get) and reading the body (readinto here
# calls ota.body.readinto) are in ota.body, loaded once the headers are in: connecting
# (the agent's peak of RAM, with its asyncio tasks) does not carry that code.
import socket
from asyncio import core  # pyright: ignore[reportAttributeAccessIssue] - MicroPython's scheduler
from errno import EINPROGRESS

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython (type checking)

    def const(x):
        return x


from ota.errors import FetchError
from ota.httpparse import parse_digits, parse_status, text

_LINE_MAX = const(512)  # longest status/header line, CRLF included (HTTPClient.lbuf's size)
_HEADERS_MAX = const(32)  # most header fields in one response


class Response:
    # Attributes (read-only for callers):
    #   status       200, 206 or 304 (anything else was raised as FetchError)
    #   length       body length in bytes from Content-Length (0 for 304)
    #   range_start  offset of the first body byte in the resource (0 for 200, == start for 206)
    #   total        resource size from Content-Range (206), length (200), or -1 if unknown
    #   etag, date, retry_after, location   raw header values as str, or None
    def __init__(self, client):
        self._client = client  # owns the line buffer (lbuf, lmv)
        self._p = 0  # next unread byte in the line buffer
        self._e = 0  # end of valid bytes in the line buffer
        self._s = None  # the socket (non-blocking), None once closed
        self._left = 0  # body bytes not yet returned
        self._eof = False  # the peer closed before the body ended
        self.status = 0
        self.length = -1
        self.range_start = 0
        self.total = -1
        self.etag = None
        self.date = None
        self.retry_after = None
        self.location = None
        self._crange = None
        self._chunked = False

    # Connect, send the request and read the status line and headers (one timed operation).
    # The socket is non-blocking; asyncio's I/O queue wakes this task when it is ready, so no
    # asyncio stream objects are made (ota.http's header comment).
    async def begin(self, tls, host, port, path, etag, start, body=None):
        ctx = self._client.tls_context() if tls else None
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = self._s = socket.socket(ai[0], ai[1], ai[2])
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != EINPROGRESS:
                raise
        ai = None
        if ctx:
            s = self._s = ctx.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
            s.setblocking(False)
        hosthdr = host
        if port != (443 if tls else 80):
            hosthdr += ":" + str(port)
        req = ("POST " if body is not None else "GET ") + path + " HTTP/1.1\r\nHost: " + hosthdr
        req += "\r\nUser-Agent: otakit\r\nAccept-Encoding: identity\r\nConnection: close\r\n"
        if start:
            req += "Range: bytes=" + str(start) + "-\r\n"
        if etag:
            req += "If-None-Match: " + etag + "\r\n"
        if body is not None:
            req += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        req += "\r\n"
        await self._send(req)  # a str: the socket takes its bytes, no copy is made
        req = None
        if body is not None:
            await self._send(body)
        s, e = await self._line()
        self.status = parse_status(self._client.lbuf, s, e)
        if self.status < 0:
            raise FetchError("BAD_RESPONSE", "bad status line")
        for _ in range(_HEADERS_MAX + 1):
            s, e = await self._line()
            if s == e:
                return
            self._header(s, e)
        raise FetchError("BAD_RESPONSE", "too many header fields")

    # Write all of data (bytes or str), waiting (asyncio's I/O queue) until the socket takes it; the first
    # wait is also the end of connecting. A TLS socket takes nothing (None) while it shakes
    # hands.
    async def _send(self, data):
        mv = memoryview(data)
        o = 0
        while o < len(mv):
            await _ready(self._s, 1)  # pyright: ignore[reportGeneralTypeIssues] - a generator
            n = self._s.write(mv[o:])  # pyright: ignore[reportOptionalMemberAccess]
            if n:
                o += n

    # Wait until the socket is readable, then read what it holds into mv: the count, 0 at the
    # end of the stream, None when a TLS record is not complete yet.
    async def _recv(self, mv):
        await _ready(self._s, 0)  # pyright: ignore[reportGeneralTypeIssues]
        return self._s.readinto(mv)  # pyright: ignore[reportOptionalMemberAccess]

    # The next line in the line buffer as (start, end) without its CRLF. Allocates only when a
    # line straddles two reads.
    async def _line(self):
        buf = self._client.lbuf
        while True:
            i = buf.find(b"\n", self._p, self._e)
            if i >= 0:
                s = self._p
                self._p = i + 1
                return s, (i - 1 if i > s and buf[i - 1] == 13 else i)
            if self._p:
                n = self._e - self._p
                buf[0:n] = buf[self._p : self._e]
                self._p, self._e = 0, n
            if self._e >= _LINE_MAX:
                raise FetchError("BAD_RESPONSE", "header line longer than 512 bytes")
            n = await self._recv(self._client.lmv[self._e :])
            if n is None:  # a TLS record is not complete yet
                continue
            if not n:
                if self.status == 0 and self._e == 0:
                    raise FetchError("NETWORK", "connection closed without a response")
                raise FetchError("BAD_RESPONSE", "connection closed inside the headers")
            self._e += n

    # One header field in buf[s:e]; keeps only the fields the agent uses.
    def _header(self, s, e):
        buf = self._client.lbuf
        c = buf.find(b":", s, e)
        if c <= s or buf[s] == 32 or buf[s] == 9:
            raise FetchError("BAD_RESPONSE", "malformed header line")
        name = bytes(buf[s:c]).lower()
        vs, ve = c + 1, e
        while vs < ve and buf[vs] in (32, 9):
            vs += 1
        while ve > vs and buf[ve - 1] in (32, 9):
            ve -= 1
        if name == b"content-length":
            n = parse_digits(buf, vs, ve)
            if n < 0 or (self.length >= 0 and n != self.length):
                raise FetchError("BAD_RESPONSE", "bad Content-Length")
            self.length = n
        elif name == b"content-range":
            self._crange = bytes(buf[vs:ve])
        elif name == b"etag":
            self.etag = text(buf, vs, ve)
        elif name == b"location":
            self.location = text(buf, vs, ve)
        elif name == b"date":
            self.date = text(buf, vs, ve)
        elif name == b"retry-after":
            self.retry_after = text(buf, vs, ve)
        elif name == b"transfer-encoding" or name == b"content-encoding":
            if bytes(buf[vs:ve]).lower() != b"identity":
                self._chunked = True

    # Read body bytes into buf (a bytearray or memoryview) until it is full or the body ends;
    # return the count, 0 at the end of the body (ota.body.readinto, a coroutine).
    def readinto(self, buf):
        from ota.body import readinto

        return readinto(self, buf)

    # Close the connection; safe to call more than once (a coroutine, as callers await it).
    async def close(self):
        s, self._s = self._s, None
        self._left = 0
        if self._client.resp is self:
            self._client.resp = None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


# A generator to await: asyncio's I/O queue takes the task until s is writable (w) or
# readable (or in error), then resumes it.
def _ready(s, w):
    q = core._io_queue
    yield q.queue_write(s) if w else q.queue_read(s)
