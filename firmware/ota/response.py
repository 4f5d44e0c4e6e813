# ota/response.py: the headers of one HTTP/1.1 response of ota.http.HTTPClient.
# MIT license; Copyright (c) 2026 otakit contributors
#
# get() connects, sends the request and reads the status line and header fields through the
# client's one 512-byte line buffer (HTTPClient.lbuf: a longer line, more than 32 fields or a
# malformed status line is BAD_RESPONSE), keeps only the fields the agent uses, follows
# redirects (ota.httpsmall.redirect), checks the answer against the request and hands the
# socket and the body bytes that came with the headers to an ota.body.Body. Nothing of this
# module is referenced once get() has returned: ota.release() lets it go before the body
# streams. The invariants are ota.http's.
import socket
from errno import EINPROGRESS

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython (type checking)

    def const(x):
        return x


from ota.errors import FetchError
from ota.http import ready
from ota.httpparse import parse_content_range, parse_digits, parse_status, parse_url, text

_LINE_MAX = const(512)  # longest status/header line, CRLF included (HTTPClient.lbuf's size)
_HEADERS_MAX = const(32)  # most header fields in one response
_REDIRECTS_MAX = const(3)


class Response:
    # status, length (Content-Length, -1 without), etag, date, retry_after, location: the
    # header fields kept (raw values as str, or None); _crange: Content-Range's bytes
    def __init__(self, client):
        self._c = client  # owns the line buffer (lbuf)
        self._mv = memoryview(client.lbuf)
        self._p = 0  # next unread byte in the line buffer
        self._e = 0  # end of valid bytes in the line buffer
        self._s = None  # the socket (non-blocking)
        self.status = 0
        self.length = -1
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
        ctx = _tls(self._c) if tls else None
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
        self.status = parse_status(self._c.lbuf, s, e)
        if self.status < 0:
            raise FetchError("BAD_RESPONSE", "bad status line")
        for _ in range(_HEADERS_MAX + 1):
            s, e = await self._line()
            if s == e:
                return
            self._header(s, e)
        raise FetchError("BAD_RESPONSE", "too many header fields")

    # Write all of data (bytes or str), waiting (asyncio's I/O queue) until the socket takes it;
    # the first wait is also the end of connecting. A TLS socket takes nothing (None) while it
    # shakes hands.
    async def _send(self, data):
        mv = memoryview(data)
        o = 0
        while o < len(mv):
            await ready(self._s, 1)  # pyright: ignore[reportGeneralTypeIssues] - a generator
            n = self._s.write(mv[o:])  # pyright: ignore[reportOptionalMemberAccess]
            if n:
                o += n

    # The next line in the line buffer as (start, end) without its CRLF. Allocates only when a
    # line straddles two reads.
    async def _line(self):
        buf = self._c.lbuf
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
            await ready(self._s, 0)  # pyright: ignore[reportGeneralTypeIssues]
            n = self._s.readinto(self._mv[self._e :])  # pyright: ignore[reportOptionalMemberAccess]
            if n is None:  # a TLS record is not complete yet
                continue
            if not n:
                if self.status == 0 and self._e == 0:
                    raise FetchError("NETWORK", "connection closed without a response")
                raise FetchError("BAD_RESPONSE", "connection closed inside the headers")
            self._e += n

    # One header field in buf[s:e]; keeps only the fields the agent uses.
    def _header(self, s, e):
        buf = self._c.lbuf
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

    # Close the socket (a response that is not handed on).
    def close(self):
        s, self._s = self._s, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


# The client's TLS context (made once): the server verified against the configured CA.
def _tls(c):
    if c._ctx is None:
        if not c._ca:
            raise FetchError("NETWORK", "https needs a CA certificate (none configured)")
        import tls

        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        # verify_mode exists on the device's tls.SSLContext; the esp32 stubs lack it
        ctx.verify_mode = tls.CERT_REQUIRED  # pyright: ignore[reportAttributeAccessIssue]
        try:
            ctx.load_verify_locations(c._ca)  # MicroPython: cadata, positional
        except (OSError, ValueError) as e:
            raise FetchError("NETWORK", "bad CA certificate: " + str(e))
        c._ctx = ctx
    return c._ctx


# HTTPClient.get (ota.http): the headers of url read and checked, then the body handed on.
async def get(c, url, max_body, etag, start):
    if c.resp is not None:
        raise RuntimeError("HTTPClient: the previous response is still open")
    if etag and ("\r" in etag or "\n" in etag):
        raise FetchError("BAD_RESPONSE", "bad ETag")
    tls, host, port, path = parse_url(url)
    c.resp = c  # taken until the body is closed (Body.close)
    try:
        for _ in range(_REDIRECTS_MAX + 1):
            r = Response(c)
            try:
                await c.timed(r.begin(tls, host, port, path, etag, start), "connecting to " + host)
                if r.status in (301, 302, 303, 307, 308):
                    from ota.httpsmall import redirect  # rare: not carried while streaming

                    tls, host, port, path = redirect(r.location, tls, host, port)
                    r.close()
                    continue
                rs, total = check(r, max_body, etag, start)
            except BaseException:
                r.close()
                raise
            from ota.body import Body

            b = Body()
            b._c, b._s, b.status, b.etag, b.date = c, r._s, r.status, r.etag, r.date
            b.length = b._left = r.length
            b.range_start, b.total = rs, total
            b._lv = r._mv[r._p : r._e] if r._p < r._e else None  # body bytes read with the headers
            b._eof = False
            c.resp, c.date = b, r.date
            return b
        raise FetchError("HTTP", "too many redirects", r.status)
    except BaseException:
        c.resp = None
        raise


# r's status and lengths against what was asked: (range_start, total), or FetchError.
def check(r, max_body, etag, start):
    st = r.status
    if st == 304 and etag:
        r.length = 0
        if r.etag is None:
            r.etag = etag
        return 0, -1
    if st != 200 and st != 206:
        e = FetchError("HTTP", "server answered " + str(st), st)
        e.retry_after = r.retry_after  # pyright: ignore[reportAttributeAccessIssue]
        raise e
    if r._chunked:
        raise FetchError("BAD_RESPONSE", "chunked or encoded body")
    if r.length < 0:
        raise FetchError("BAD_RESPONSE", "no Content-Length")
    rs = 0
    total = r.length
    if st == 206:
        cr = parse_content_range(r._crange) if r._crange else None
        if cr is None or not start or cr[0] != start or cr[1] - cr[0] + 1 != r.length:
            raise FetchError("BAD_RESPONSE", "Content-Range does not match the request")
        rs, total = start, cr[2]
    # the caller bounds the resource at start + max_body bytes (a 200 to a Range request
    # carries the whole resource)
    if rs + r.length > start + max_body or total > start + max_body:
        raise FetchError("BAD_RESPONSE", "body too large: " + str(r.length))
    return rs, total
