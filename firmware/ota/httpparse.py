# ota/httpparse.py: the pure parsers of HTTP/1.1 responses and URLs for ota.http (the status
# line is read in ota.response).
# MIT license; Copyright (c) 2026 otakit contributors
#
# No I/O, nothing allocated per byte; each raises FetchError or returns -1/None on malformed
# input. Importable under CPython (tests/device/test_fuzz.py fuzzes them).
try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython

    def const(x):
        return x


from ota.errors import FetchError

_DIGITS_MAX = const(12)  # longest decimal number accepted in Content-Length/Content-Range


# Parse "http[s]://host[:port][/path]" -> (tls, host, port, path). `reason` is the code to raise
# with: NETWORK for a URL from the configuration, BAD_RESPONSE for one from a Location header.
# Every refusal (another scheme, no host, a bad host, port or path character) says "bad URL: "
# and the URL's first 64 characters: one message, so that no other text is kept in the heap.
def parse_url(url, reason="NETWORK"):
    if url.startswith("https://"):
        tls, port, rest = True, 443, url[8:]
    elif url.startswith("http://"):
        tls, port, rest = False, 80, url[7:]
    else:
        tls, port, rest = False, 0, ""  # refused below: no host
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    i = path.find("#")
    if i >= 0:
        path = path[:i]
    i = hostport.find(":")
    host, ps = (hostport, "") if i < 0 else (hostport[:i], hostport[i + 1 :])
    ok = host and (not ps or (ps.isdigit() and len(ps) <= 5 and 0 < int(ps) < 65536))
    for c in path:
        if c <= " " or c >= "\x7f":
            ok = False
    for c in host:
        if not (c.isalpha() or c.isdigit() or c in "-._"):
            ok = False
    if not ok:
        raise FetchError(reason, "bad URL: " + url[:64])
    return tls, host, int(ps) if ps else port, path


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


# A header value kept as text (ETag, Location, Date, Retry-After): printable ASCII only.
def text(buf, s, e):
    for i in range(s, e):
        c = buf[i]
        if (c < 32 and c != 9) or c > 126:
            raise FetchError("BAD_RESPONSE", "bad character in header value")
    return bytes(buf[s:e]).decode()
