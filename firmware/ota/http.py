# ota/http.py: a small streaming HTTP/1.1 client for the update agent.
# MIT license; Copyright (c) 2026 otakit contributors
"""Streaming HTTP/1.1 GET over asyncio streams (plain TCP, or TLS with a pinned CA).

Invariants:
- Only `FetchError` escapes (reason HTTP, NETWORK, TIMEOUT, BAD_RESPONSE or SHORT_READ, see
  docs/format.md section 5); OSError, EOF and timeouts are wrapped at this boundary.
- No size is taken from the wire without a bound from the caller: every body must announce a
  Content-Length no larger than the caller's `max_body`; chunked bodies are refused.
- Header lines are read through one preallocated 512-byte buffer per client (a longer line, more
  than 32 header fields, or a malformed status line is BAD_RESPONSE). Body bytes go straight into
  the caller's buffer: memory does not grow with the body size.
- https always verifies the server: CERT_REQUIRED against the configured CA (DER), never
  CERT_NONE; https without a CA is refused. Authenticity of updates still comes from the signed
  manifest, not from TLS.
- Redirects: at most 3, to the same scheme or from http to https, never https to http.
- URLs: http:// or https://, a host name or IPv4 address, optional port; no IPv6 literals.
- One connection per request (`Connection: close`), one request at a time per client.
- Every network wait is bounded by `timeout_ms`: connecting + sending + reading the headers is
  one operation, each `Response.readinto` call is one operation.

Note for decoders: `deflate.DeflateIO` reads its source one byte per call, so feed it from an
in-RAM buffer filled by `Response.readinto`, never from the socket itself.

The module imports under CPython too (for fuzzing the parsers); there a reader without
`readinto` is adapted.
"""

import asyncio

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython (tests, fuzzing): no const, and StreamReader has no readinto

    def const(x):
        return x

    class _ReaderAdapter:
        def __init__(self, r):
            self._r = r

        async def readinto(self, mv):
            d = await self._r.read(len(mv))
            mv[: len(d)] = d
            return len(d)


from ota.errors import FetchError

_LINE_MAX = const(512)  # longest status/header line, CRLF included
_HEADERS_MAX = const(32)  # most header fields in one response
_REDIRECTS_MAX = const(3)
_DIGITS_MAX = const(12)  # longest decimal number accepted in Content-Length/Content-Range



# Parse "http[s]://host[:port][/path]" -> (tls, host, port, path). `reason` is the code to raise
# with: NETWORK for a URL from the configuration, BAD_RESPONSE for one from a Location header.
def parse_url(url, reason="NETWORK"):
    if url.startswith("https://"):
        tls, port, rest = True, 443, url[8:]
    elif url.startswith("http://"):
        tls, port, rest = False, 80, url[7:]
    else:
        raise FetchError(reason, "unsupported URL: " + url[:64])
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    i = path.find("#")
    if i >= 0:
        path = path[:i]
    for c in path:
        if c <= " " or c >= "\x7f":
            raise FetchError(reason, "bad character in URL path")
    i = hostport.find(":")
    host, ps = (hostport, "") if i < 0 else (hostport[:i], hostport[i + 1 :])
    if ps:
        if not ps.isdigit() or len(ps) > 5 or not 0 < int(ps) < 65536:
            raise FetchError(reason, "bad port in URL")
        port = int(ps)
    if not host:
        raise FetchError(reason, "no host in URL")
    for c in host:
        if not (c.isalpha() or c.isdigit() or c in "-._"):
            raise FetchError(reason, "bad host in URL")
    return tls, host, port, path


# The decimal number in buf[s:e], or -1 if it is empty, too long or not all digits.
# Allocates nothing (for short numbers).
def parse_digits(buf, s, e):
    if e <= s or e - s > _DIGITS_MAX:
        return -1
    n = 0
    for i in range(s, e):
        c = buf[i]
        if c < 48 or c > 57:
            return -1
        n = n * 10 + c - 48
    return n


# Parse a status line "HTTP/1.x SSS[ reason]" in buf[s:e] -> status, or -1 if malformed.
def parse_status(buf, s, e):
    if e - s < 12 or buf[s : s + 7] != b"HTTP/1." or buf[s + 8] != 32:
        return -1
    if buf[s + 7] < 48 or buf[s + 7] > 57 or (e - s > 12 and buf[s + 12] != 32):
        return -1
    st = parse_digits(buf, s + 9, s + 12)
    return st if 100 <= st <= 599 else -1


# Parse a Content-Range value b"bytes a-b/total" (total may be "*") -> (a, b, total or -1),
# or None if malformed.
def parse_content_range(v):
    if not v.startswith(b"bytes "):
        return None
    d = v.find(b"-", 6)
    sl = v.find(b"/", 6)
    if d < 0 or sl < d:
        return None
    a = parse_digits(v, 6, d)
    b = parse_digits(v, d + 1, sl)
    if v[sl + 1 :] == b"*":
        total = -1
    else:
        total = parse_digits(v, sl + 1, len(v))
        if total < 0 or b >= total:
            return None
    if a < 0 or b < a:
        return None
    return a, b, total


# A header value kept as text (ETag, Location, Date, Retry-After): printable ASCII only.
def _text(buf, s, e):
    for i in range(s, e):
        c = buf[i]
        if (c < 32 and c != 9) or c > 126:
            raise FetchError("BAD_RESPONSE", "bad character in header value")
    return bytes(buf[s:e]).decode()


class Response:
    # Attributes (read-only for callers):
    #   status       200, 206 or 304 (anything else was raised as FetchError)
    #   length       body length in bytes from Content-Length (0 for 304)
    #   range_start  offset of the first body byte in the resource (0 for 200, == start for 206)
    #   total        resource size from Content-Range (206), length (200), or -1 if unknown
    #   etag, date, retry_after   raw header values as str, or None
    def __init__(self, client):
        self._client = client  # owns the line buffer (_lbuf, _lmv)
        self._p = 0  # next unread byte in the line buffer
        self._e = 0  # end of valid bytes in the line buffer
        self._r = None
        self._w = None
        self._left = 0  # body bytes not yet returned
        self._eof = False  # the peer closed before the body ended
        self.status = 0
        self.length = -1
        self.range_start = 0
        self.total = -1
        self.etag = None
        self.date = None
        self.retry_after = None
        self._location = None
        self._crange = None
        self._chunked = False

    async def _recv(self, mv):
        r = self._r
        while True:
            n = await r.readinto(mv)  # pyright: ignore[reportOptionalMemberAccess] - set by _begin
            if n is not None:  # None: a TLS record is not complete yet
                return n

    # Connect, send the request and read the status line and headers (one timed operation).
    async def _begin(self, tls, host, port, path, etag, start):
        ctx = self._client._tls_context() if tls else None
        self._r, self._w = await asyncio.open_connection(host, port, ssl=ctx)
        if not hasattr(self._r, "readinto"):
            self._r = _ReaderAdapter(self._r)
        hosthdr = host
        if port != (443 if tls else 80):
            hosthdr += ":" + str(port)
        req = "GET " + path + " HTTP/1.1\r\nHost: " + hosthdr
        req += "\r\nUser-Agent: otakit\r\nAccept-Encoding: identity\r\nConnection: close\r\n"
        if start:
            req += "Range: bytes=" + str(start) + "-\r\n"
        if etag:
            req += "If-None-Match: " + etag + "\r\n"
        self._w.write((req + "\r\n").encode())
        await self._w.drain()
        s, e = await self._line()
        self.status = parse_status(self._client._lbuf, s, e)
        if self.status < 0:
            raise FetchError("BAD_RESPONSE", "bad status line")
        for _ in range(_HEADERS_MAX + 1):
            s, e = await self._line()
            if s == e:
                return
            self._header(s, e)
        raise FetchError("BAD_RESPONSE", "too many header fields")

    # The next line in the line buffer as (start, end) without its CRLF. Allocates only when a
    # line straddles two reads.
    async def _line(self):
        buf = self._client._lbuf
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
            n = await self._recv(self._client._lmv[self._e :])
            if not n:
                if self.status == 0 and self._e == 0:
                    raise FetchError("NETWORK", "connection closed without a response")
                raise FetchError("BAD_RESPONSE", "connection closed inside the headers")
            self._e += n

    # One header field in buf[s:e]; keeps only the fields the agent uses.
    def _header(self, s, e):
        buf = self._client._lbuf
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
            self.etag = _text(buf, vs, ve)
        elif name == b"location":
            self._location = _text(buf, vs, ve)
        elif name == b"date":
            self.date = _text(buf, vs, ve)
        elif name == b"retry-after":
            self.retry_after = _text(buf, vs, ve)
        elif name == b"transfer-encoding" or name == b"content-encoding":
            if bytes(buf[vs:ve]).lower() != b"identity":
                self._chunked = True

    # Validate the status and lengths against what was asked; raise FetchError otherwise.
    def _check(self, max_body, etag, start):
        st = self.status
        if st == 304 and etag:
            self.length = 0
            if self.etag is None:
                self.etag = etag
            return
        if st != 200 and st != 206:
            e = FetchError("HTTP", "server answered " + str(st), st)
            e.retry_after = self.retry_after  # pyright: ignore[reportAttributeAccessIssue]
            raise e
        if self._chunked:
            raise FetchError("BAD_RESPONSE", "chunked or encoded body")
        if self.length < 0:
            raise FetchError("BAD_RESPONSE", "no Content-Length")
        if st == 206:
            cr = parse_content_range(self._crange) if self._crange else None
            if cr is None or not start:
                raise FetchError("BAD_RESPONSE", "bad or unexpected Content-Range")
            if cr[0] != start or cr[1] - cr[0] + 1 != self.length:
                raise FetchError("BAD_RESPONSE", "Content-Range does not match the request")
            self.range_start, self.total = start, cr[2]
        else:
            self.total = self.length
        # the caller bounds the resource at start + max_body bytes (a 200 to a Range request
        # carries the whole resource)
        if self.range_start + self.length > start + max_body or self.total > start + max_body:
            raise FetchError("BAD_RESPONSE", "body too large: " + str(self.length))
        self._left = self.length

    # Read body bytes into buf (a bytearray or memoryview) until it is full or the body ends;
    # return the count, 0 at the end of the body. Never reads past Content-Length. If the peer
    # closes early, the bytes received are returned first and the next call raises SHORT_READ.
    # Allocates a memoryview per call, nothing per byte.
    async def readinto(self, buf):
        if self._eof:
            await self.close()
            raise FetchError("SHORT_READ", str(self._left) + " body bytes missing")
        mv = memoryview(buf)
        want = min(len(mv), self._left)
        if want <= 0:
            await self.close()
            return 0
        n = min(self._e - self._p, want)
        if n:  # body bytes that arrived with the headers
            mv[0:n] = self._client._lmv[self._p : self._p + n]
            self._p += n
        if n < want:
            n += self._poll(mv[n:want])
        if n < want and not self._eof:
            try:
                n += await self._client._timed(self._fill(mv[n:want]), "reading the body")
            except BaseException:
                await self.close()
                raise
        elif self._eof and not n:
            await self.close()
            raise FetchError("SHORT_READ", str(self._left) + " body bytes missing")
        self._left -= n
        if not self._left:
            await self.close()
        return n

    # Take what the socket already holds without waiting (its fd is non-blocking under
    # asyncio): a read that does not block needs no trip through the event loop and no timer.
    def _poll(self, mv):
        sock = getattr(self._r, "s", None)
        n = 0
        while sock is not None and n < len(mv):
            try:
                k = sock.readinto(mv[n:])
            except OSError:
                return n  # let the timed path report it
            if k is None:
                break  # nothing buffered: wait for it in _fill
            if not k:
                self._eof = True
                break
            n += k
        return n

    async def _fill(self, mv):
        n = 0
        while n < len(mv):
            k = await self._recv(mv[n:])
            if not k:
                self._eof = True
                if not n:
                    raise FetchError("SHORT_READ", str(self._left) + " body bytes missing")
                break
            n += k
        return n

    # Close the connection; safe to call more than once.
    async def close(self):
        w, self._w, self._r = self._w, None, None
        self._left = 0
        if self._client._resp is self:
            self._client._resp = None
        if w is not None:
            try:
                w.close()
                await w.wait_closed()
            except OSError:
                pass


class HTTPClient:
    # timeout_ms bounds each network operation; ca is the DER certificate of the CA that
    # https servers must chain to (required for https). Allocates the 512-byte line buffer once.
    def __init__(self, timeout_ms=10000, ca=None):
        self._timeout = timeout_ms / 1000
        self._ca = ca
        self._ctx = None
        self._lbuf = bytearray(_LINE_MAX)
        self._lmv = memoryview(self._lbuf)
        self._resp = None
        self.date = None  # the Date header of the last response (str or None)

    def _tls_context(self):
        if self._ctx is None:
            if not self._ca:
                raise FetchError("NETWORK", "https needs a CA certificate (none configured)")
            import tls

            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            # verify_mode exists on the device's tls.SSLContext; the esp32 stubs lack it
            ctx.verify_mode = tls.CERT_REQUIRED  # pyright: ignore[reportAttributeAccessIssue]
            try:
                ctx.load_verify_locations(self._ca)  # MicroPython: cadata, positional
            except (OSError, ValueError) as e:
                raise FetchError("NETWORK", "bad CA certificate: " + str(e))
            self._ctx = ctx
        return self._ctx

    # Await aw with the timeout; map timeouts and OSError/EOFError to FetchError.
    async def _timed(self, aw, what):
        try:
            return await asyncio.wait_for(aw, self._timeout)
        except asyncio.TimeoutError:
            raise FetchError("TIMEOUT", what)
        except (OSError, EOFError, ValueError) as e:  # mbedtls reports a bad certificate as
            raise FetchError("NETWORK", what + ": " + str(e).strip())  # ValueError

    # GET url; return a Response whose status is 200, 206 or 304 with its headers read.
    #   max_body  bound on the body asked for: a 206 body is at most max_body bytes; the whole
    #             resource (a 200 body, a 206's total) at most start + max_body bytes
    #   etag      sent as If-None-Match; a 304 answer is returned as status 304
    #   start     > 0 sends "Range: bytes=start-"; the server may answer 206 (range_start ==
    #             start) or 200 (range_start == 0: it ignored the Range, start over)
    # Raises FetchError: HTTP (.status, .retry_after) for other statuses and too many
    # redirects; NETWORK, TIMEOUT, BAD_RESPONSE. The caller must close the response (or read
    # it to the end, which closes it), e.g. in a try/finally.
    async def get(self, url, max_body, etag=None, start=0):
        if self._resp is not None:
            raise RuntimeError("HTTPClient: the previous response is still open")
        if etag and ("\r" in etag or "\n" in etag):
            raise FetchError("BAD_RESPONSE", "bad ETag")
        tls, host, port, path = parse_url(url)
        for _ in range(_REDIRECTS_MAX + 1):
            resp = Response(self)
            self._resp = resp
            try:
                await self._timed(
                    resp._begin(tls, host, port, path, etag, start), "connecting to " + host
                )
                if resp.status in (301, 302, 303, 307, 308):
                    tls, host, port, path = self._redirect(resp, tls, host, port)
                    await resp.close()
                    continue
                resp._check(max_body, etag, start)
                self.date = resp.date
                return resp
            except BaseException:
                await resp.close()
                raise
        raise FetchError("HTTP", "too many redirects", resp.status)

    def _redirect(self, resp, tls, host, port):
        loc = resp._location
        if not loc:
            raise FetchError("BAD_RESPONSE", "redirect without Location")
        if loc.startswith("/") and not loc.startswith("//"):  # same server, new path
            return tls, host, port, parse_url("http://x" + loc, "BAD_RESPONSE")[3]
        t = parse_url(loc, "BAD_RESPONSE")
        if tls and not t[0]:
            raise FetchError("BAD_RESPONSE", "redirect from https to http refused")
        return t

    # Read a whole small body (e.g. the manifest) into the caller's preallocated buf.
    # Returns (status, etag, n): status 200 with n body bytes in buf[:n], or 304 with n == 0.
    # A body longer than len(buf) is BAD_RESPONSE; raises like get().
    async def get_small(self, url, buf, etag=None):
        resp = await self.get(url, len(buf), etag)
        try:
            mv = memoryview(buf)
            n = 0
            while n < resp.length:
                n += await resp.readinto(mv[n : resp.length])
            return resp.status, resp.etag, n
        finally:
            await resp.close()


# Synchronous get_small for scripts: runs its own event loop (do not call from a coroutine).
def fetch_small_sync(url, buf, etag=None, timeout_ms=10000, ca=None):
    return asyncio.run(HTTPClient(timeout_ms, ca).get_small(url, buf, etag))
