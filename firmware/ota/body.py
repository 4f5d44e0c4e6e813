# ota/body.py: the second half of ota.response: a response checked, then its body read.
# MIT license; Copyright (c) 2026 otakit contributors
#
# check() is called by HTTPClient.get(), readinto() as Response.readinto() (functions of the
# response r here); loaded once the headers are in, so that connecting, the agent's peak of
# RAM, does not carry this code; ota.release() drops it with the phase. The invariants are
# ota.http's.
from ota.errors import FetchError
from ota.httpparse import parse_content_range


# Validate r's status and lengths against what was asked; raise FetchError otherwise.
def check(r, max_body, etag, start):
    st = r.status
    if st == 304 and etag:
        r.length = 0
        if r.etag is None:
            r.etag = etag
        return
    if st != 200 and st != 206:
        e = FetchError("HTTP", "server answered " + str(st), st)
        e.retry_after = r.retry_after  # pyright: ignore[reportAttributeAccessIssue]
        raise e
    if r._chunked:
        raise FetchError("BAD_RESPONSE", "chunked or encoded body")
    if r.length < 0:
        raise FetchError("BAD_RESPONSE", "no Content-Length")
    if st == 206:
        cr = parse_content_range(r._crange) if r._crange else None
        if cr is None or not start or cr[0] != start or cr[1] - cr[0] + 1 != r.length:
            raise FetchError("BAD_RESPONSE", "Content-Range does not match the request")
        r.range_start, r.total = start, cr[2]
    else:
        r.total = r.length
    # the caller bounds the resource at start + max_body bytes (a 200 to a Range request
    # carries the whole resource)
    if r.range_start + r.length > start + max_body or r.total > start + max_body:
        raise FetchError("BAD_RESPONSE", "body too large: " + str(r.length))
    r._left = r.length


# Read body bytes into buf (a bytearray or memoryview) until it is full or the body ends;
# return the count, 0 at the end of the body. Never reads past Content-Length. If the peer
# closes early, the bytes received are returned first and the next call raises SHORT_READ.
# Allocates a memoryview per call, nothing per byte.
async def readinto(r, buf):
    if r._eof:
        await r.close()
        raise FetchError("SHORT_READ", str(r._left) + " body bytes missing")
    mv = memoryview(buf)
    want = min(len(mv), r._left)
    if want <= 0:
        await r.close()
        return 0
    n = min(r._e - r._p, want)
    if n:  # body bytes that arrived with the headers
        mv[0:n] = r._client.lmv[r._p : r._p + n]
        r._p += n
    if n < want:
        n += _poll(r, mv[n:want])
    if n < want and not r._eof:
        try:
            n += await r._client.timed(_fill(r, mv[n:want]), "reading the body")
        except BaseException:
            await r.close()
            raise
    elif r._eof and not n:
        await r.close()
        raise FetchError("SHORT_READ", str(r._left) + " body bytes missing")
    r._left -= n
    if not r._left:
        await r.close()
    return n

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


async def _fill(r, mv):
    n = 0
    while n < len(mv):
        k = await r._recv(mv[n:])
        if k is None:  # a TLS record is not complete yet
            continue
        if not k:
            r._eof = True
            if not n:
                raise FetchError("SHORT_READ", str(r._left) + " body bytes missing")
            break
        n += k
    return n

