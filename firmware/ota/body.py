# ota/body.py: the body of one HTTP/1.1 response of ota.http.HTTPClient, streamed.
# MIT license; Copyright (c) 2026 otakit contributors
#
# A Body is what HTTPClient.get() returns once ota.response has read the headers (and has been
# forgotten): made from its tuple, it checks the answer against the request (so that this code
# is not in the heap while connecting) and takes the socket and the body bytes that came with
# the headers (a view of the client's line buffer). It reads the body straight into the
# caller's buffer, never past Content-Length; each readinto() is one timed operation
# (HTTPClient.timed). The invariants are ota.http's.
from ota.errors import FetchError


class Body:
    # Attributes (read-only for callers):
    #   status       200, 206 or 304 (anything else was raised as FetchError)
    #   length       body length in bytes from Content-Length (0 for 304)
    #   range_start  offset of the first body byte in the resource (0 for 200, == start for 206)
    #   total        resource size from Content-Range (206), length (200), or -1 if unknown
    #   etag, date   raw header values as str, or None
    # and _c (the client), _s (the non-blocking socket, None once closed), _left (body bytes
    # not yet returned), _lv (body bytes that came with the headers, or None), _eof (the peer
    # closed before the body ended).

    # The answer h (ota.response.get's tuple) checked against the request (HTTPClient.get's
    # arguments); raises FetchError otherwise: HTTP (.status, .retry_after) for a status
    # other than 200, 206 or 304 (to a request with an ETag), else BAD_RESPONSE.
    def __init__(self, c, h, max_body, etag, start):
        st, n, self.etag, date, retry, crange, coded, s, p, q = h
        try:
            self.status = st
            self.range_start = 0
            self.length = self.total = n
            if st == 304 and etag:
                n = self.length = 0
                self.total = -1
                if self.etag is None:
                    self.etag = etag
            elif st != 200 and st != 206:
                e = FetchError("HTTP", "server answered " + str(st), st)
                e.retry_after = retry  # pyright: ignore[reportAttributeAccessIssue]
                raise e
            elif coded:
                raise FetchError("BAD_RESPONSE", "chunked or encoded body")
            elif n < 0:
                raise FetchError("BAD_RESPONSE", "no Content-Length")
            elif st == 206:
                cr = _range(crange) if crange else None
                if cr is None or not start or cr[0] != start or cr[1] - cr[0] + 1 != n:
                    raise FetchError("BAD_RESPONSE", "Content-Range does not match the request")
                self.range_start, self.total = start, cr[2]
            # the caller bounds the resource at start + max_body bytes (a 200 to a Range
            # request carries the whole resource)
            if self.range_start + n > start + max_body or self.total > start + max_body:
                raise FetchError("BAD_RESPONSE", "body too large: " + str(n))
        except BaseException:
            c.resp = None
            try:
                s.close()
            except OSError:
                pass
            raise
        self.date = c.date = date
        self._left = n
        self._c = c
        self._s = s
        c.resp = self
        self._lv = memoryview(c.lbuf)[p:q] if p < q else None
        c.lbuf = None  # the line buffer goes once _lv is read (made again for a request)
        self._eof = False

    # Read body bytes into buf (a bytearray or memoryview) until it is full or the body ends;
    # return the count, 0 at the end of the body. Never reads past Content-Length. If the peer
    # closes early, the bytes received are returned first and the next call raises SHORT_READ.
    # Allocates a memoryview per call, nothing per byte.
    async def readinto(self, buf):
        mv = memoryview(buf)
        want = min(len(mv), self._left)
        if self._eof or want <= 0:
            await self.close()
            if self._eof:
                raise FetchError("SHORT_READ", str(self._left) + " body bytes missing")
            return 0
        n = 0
        lv = self._lv
        if lv:  # body bytes that arrived with the headers
            n = min(len(lv), want)
            mv[0:n] = lv[:n]
            self._lv = lv[n:] if n < len(lv) else None
        if n < want:
            n += _poll(self, mv[n:want])
        if n < want and not self._eof:
            try:
                n += await self._c.timed(_fill(self, mv[n:want]), "reading the body")
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

    # Close the connection; safe to call more than once (a coroutine, as callers await it).
    async def close(self):
        s, self._s = self._s, None
        if self._c.resp is self:
            self._c.resp = None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


# Take what the socket already holds without waiting (its fd is non-blocking under
# asyncio): a read that does not block needs no trip through the event loop and no timer.
def _poll(r, mv):
    sock = r._s
    n = 0
    while sock is not None and n < len(mv):
        try:
            k = sock.readinto(mv[n:])
        except OSError:
            return n  # let the timed path report it
        if k is None:
            break  # nothing buffered: wait for it in _fill
        if not k:
            r._eof = True
            break
        n += k
    return n


# The rest of mv, waiting on asyncio's I/O queue for it (under HTTPClient.timed).
async def _fill(r, mv):
    n = 0
    while n < len(mv):
        await r._c.ready(r._s, 0)  # pyright: ignore[reportGeneralTypeIssues] - a generator
        k = r._s.readinto(mv[n:])
        if k is None:  # a TLS record is not complete yet
            continue
        if not k:
            r._eof = True
            if not n:
                raise FetchError("SHORT_READ", str(r._left) + " body bytes missing")
            break
        n += k
    return n


# Parse a Content-Range value b"bytes a-b/total" (total may be "*") -> (a, b, total or -1),
# or None if malformed.
def _range(v):
    if not v.startswith(b"bytes "):
        return None
    d = v.find(b"-", 6)
    sl = v.find(b"/", 6)
    if d < 0 or sl < d:
        return None
    a = _num(v[6:d])
    b = _num(v[d + 1 : sl])
    if v[sl + 1 :] == b"*":
        total = -1
    else:
        total = _num(v[sl + 1 :])
        if total < 0 or b >= total:
            return None
    if a < 0 or b < a:
        return None
    return a, b, total


# The decimal number d (bytes), or -1 if it is empty, longer than 12 digits (ota.httpparse's
# _DIGITS_MAX) or not all digits.
def _num(d):
    return int(d) if 0 < len(d) <= 12 and d.isdigit() else -1
