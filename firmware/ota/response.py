# ota/response.py: the headers of one HTTP/1.1 response of ota.http.HTTPClient.
# MIT license; Copyright (c) 2026 otakit contributors
#
# get() connects, sends the request and reads the status line and header fields through the
# client's one 512-byte line buffer (HTTPClient.lbuf: a longer line, more than 32 fields or a
# malformed status line is BAD_RESPONSE), keeps only the fields the agent uses and follows
# redirects (ota.redirect); it returns them as a tuple, with the socket. Nothing of this module
# is referenced once get() has returned: HTTPClient.get forgets it (and ota.httpparse,
# ota.redirect) before ota.body, which checks the answer against the request and reads the
# body, comes in. The invariants are ota.http's.
import socket
from errno import EINPROGRESS

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython (type checking)

    def const(x):
        return x


from ota.errors import FetchError
from ota.httpparse import parse_digits, parse_url, text

_LINE_MAX = const(512)  # longest status/header line, CRLF included (HTTPClient.lbuf's size)
_HEADERS_MAX = const(32)  # most header fields in one response
_REDIRECTS_MAX = const(3)
# The header fields kept, each found at its offset in one constant (not one constant each).
# (Between line feeds, which no field name holds: the name read is one of them or none.)
_FIELDS = (b"\ncontent-length\ncontent-range\netag\nlocation\ndate\nretry-after\n"
           b"transfer-encoding\ncontent-encoding\n")
_LENGTH = const(0)
_RANGE = const(15)
_ETAG = const(29)
_LOCATION = const(34)
_DATE = const(43)
_RETRY = const(48)  # then transfer-encoding (60) and content-encoding (78)


class Response:
    # status; length (Content-Length, -1 without); etag, date, retry_after, location (raw
    # values as str, or None); crange (Content-Range's bytes); coded (a Transfer-Encoding or
    # Content-Encoding other than identity); _p, _e: the unread bytes in the line buffer
    def __init__(self, client):
        self._c = client  # owns the line buffer (lbuf; let go by the last response's Body)
        if client.lbuf is None:
            client.lbuf = bytearray(_LINE_MAX)
        self._s = None  # the socket (non-blocking)
        self.status = 0
        self.length = -1
        self.etag = self.date = self.retry_after = self.location = self.crange = None
        self.coded = False

    # Connect, send the request and read the status line and headers (one timed operation).
    # The socket is non-blocking; asyncio's I/O queue wakes this task when it is ready, so no
    # asyncio stream objects are made (ota.http's header comment). Each line is found in the
    # line buffer; only a line that straddles two reads is moved (to the buffer's start).
    async def begin(self, tls, host, port, path, etag, start, body=None):
        c = self._c
        ctx = c._ctx
        if tls and ctx is None:  # made once per client: the server verified against the CA
            if not c._ca:
                raise FetchError("NETWORK", "https needs a CA certificate")
            import tls as t

            ctx = t.SSLContext(t.PROTOCOL_TLS_CLIENT)
            # verify_mode exists on the device's tls.SSLContext; the esp32 stubs lack it
            ctx.verify_mode = t.CERT_REQUIRED  # pyright: ignore[reportAttributeAccessIssue]
            try:
                ctx.load_verify_locations(c._ca)  # MicroPython: cadata, positional
            except (OSError, ValueError) as e:
                raise FetchError("NETWORK", "bad CA certificate: " + str(e))
            c._ctx = ctx
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = self._s = socket.socket(ai[0], ai[1], ai[2])
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != EINPROGRESS:
                raise
        ai = None
        if tls:
            s = self._s = ctx.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
            s.setblocking(False)
        if port != (443 if tls else 80):
            host = "%s:%d" % (host, port)
        req = ("%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: otakit\r\nAccept-Encoding: identity\r\n"
               "Connection: close\r\n" % ("GET" if body is None else "POST", path, host))
        if start:
            req += "Range: bytes=%d-\r\n" % start
        if etag:
            req += "If-None-Match: %s\r\n" % etag
        if body is not None:
            req += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        req += "\r\n"
        await self._send(req)  # a str: the socket takes its bytes, no copy is made
        req = None
        if body is not None:
            await self._send(body)
        buf = c.lbuf
        mv = memoryview(buf)
        p = e = 0  # the unread bytes: buf[p:e]
        n = -1  # header fields so far (-1: the status line is next)
        while True:
            i = buf.find(b"\n", p, e)
            if i < 0:  # no whole line in the buffer: read more
                if p:
                    buf[0 : e - p] = buf[p:e]
                    p, e = 0, e - p
                if e >= _LINE_MAX:
                    raise FetchError("BAD_RESPONSE", "header line over 512 bytes")
                await c.ready(s, 0)  # pyright: ignore[reportGeneralTypeIssues] - a generator
                k = s.readinto(mv[e:])
                if k is None:  # a TLS record is not complete yet
                    continue
                if not k:
                    if n < 0 and not e:
                        raise FetchError("NETWORK", "closed without a response")
                    raise FetchError("BAD_RESPONSE", "closed inside the headers")
                e += k
                continue
            ls, le = p, (i - 1 if i > p and buf[i - 1] == 13 else i)  # the line, no CRLF
            p = i + 1
            if n < 0:  # "HTTP/1.x SSS[ reason]"
                k = -1
                if (le - ls >= 12 and buf[ls : ls + 7] == b"HTTP/1." and buf[ls + 8] == 32
                        and 48 <= buf[ls + 7] <= 57 and (le - ls == 12 or buf[ls + 12] == 32)):
                    k = parse_digits(buf, ls + 9, ls + 12)
                if not 100 <= k <= 599:
                    raise FetchError("BAD_RESPONSE", "bad status line")
                self.status = k
            elif ls == le:  # the end of the headers: the body's first bytes are buf[p:e]
                self._p, self._e = p, e
                return
            elif n >= _HEADERS_MAX:
                raise FetchError("BAD_RESPONSE", "too many header fields")
            else:
                self._field(buf, ls, le)
            n += 1

    # One header field in buf[s:e]; keeps only the fields the agent uses.
    def _field(self, buf, s, e):
        c = buf.find(b":", s, e)
        if c <= s or buf[s] == 32 or buf[s] == 9:
            raise FetchError("BAD_RESPONSE", "malformed header line")
        vs, ve = c + 1, e
        while vs < ve and buf[vs] in (32, 9):
            vs += 1
        while ve > vs and buf[ve - 1] in (32, 9):
            ve -= 1
        f = _FIELDS.find(b"\n" + bytes(buf[s:c]).lower() + b"\n")
        if f == _LENGTH:
            k = parse_digits(buf, vs, ve)
            if k < 0 or (self.length >= 0 and k != self.length):
                raise FetchError("BAD_RESPONSE", "bad Content-Length")
            self.length = k
        elif f == _RANGE:
            self.crange = bytes(buf[vs:ve])
        elif f == _ETAG:
            self.etag = text(buf, vs, ve)
        elif f == _LOCATION:
            self.location = text(buf, vs, ve)
        elif f == _DATE:
            self.date = text(buf, vs, ve)
        elif f == _RETRY:
            self.retry_after = text(buf, vs, ve)
        elif f > _RETRY and bytes(buf[vs:ve]).lower() != b"identity":  # transfer-/content-encoding
            self.coded = True

    # Write all of data (bytes or str), waiting (asyncio's I/O queue) until the socket takes it;
    # the first wait is also the end of connecting. A TLS socket takes nothing (None) while it
    # shakes hands.
    async def _send(self, data):
        mv = memoryview(data)
        o = 0
        while o < len(mv):
            await self._c.ready(self._s, 1)  # pyright: ignore[reportGeneralTypeIssues]
            n = self._s.write(mv[o:])  # pyright: ignore[reportOptionalMemberAccess]
            if n:
                o += n

    # Close the socket (a response that is not handed on).
    def close(self):
        s, self._s = self._s, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


# HTTPClient.get (ota.http): the headers of url read, redirects followed, as a tuple that refers
# to nothing of this module: (status, length, etag, date, retry_after, Content-Range, coded, the
# socket, and p, e: the body bytes read with the headers are the line buffer's [p:e]).
async def get(c, url, etag, start):
    if c.resp is not None:
        raise RuntimeError("HTTPClient: a response is open")
    if etag and ("\r" in etag or "\n" in etag):
        raise FetchError("BAD_RESPONSE", "bad ETag")
    tls, host, port, path = parse_url(url)
    c.resp = c  # taken until the body is closed (ota.body.Body.close)
    try:
        for _ in range(_REDIRECTS_MAX + 1):
            r = Response(c)
            try:
                await c.timed(r.begin(tls, host, port, path, etag, start), "connecting to " + host)
                if r.status not in (301, 302, 303, 307, 308):
                    return (r.status, r.length, r.etag, r.date, r.retry_after, r.crange, r.coded,
                            r._s, r._p, r._e)
                from ota.redirect import redirect  # rare: not carried otherwise

                tls, host, port, path = redirect(r.location, tls, host, port)
            except BaseException:
                r.close()
                raise
            r.close()
        raise FetchError("HTTP", "too many redirects", r.status)
    except BaseException:
        c.resp = None
        raise
