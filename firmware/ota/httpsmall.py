# ota/httpsmall.py: the small requests of ota.http.HTTPClient (a whole document, a POST).
# MIT license; Copyright (c) 2026 otakit contributors
#
# Functions of a client, not methods, so that the streaming GET of a payload (the agent's peak
# of RAM) does not carry their code: the check phase (manifest, keyring) and telemetry load
# this module and ota.release() drops it with them. The invariants are ota.http's.
from ota.errors import FetchError


# Read a whole small body (e.g. the manifest) into the caller's preallocated buf.
# Returns (status, etag, n): status 200 with n body bytes in buf[:n], or 304 with n == 0.
# A body longer than len(buf) is BAD_RESPONSE; raises like HTTPClient.get().
async def get_small(client, url, buf, etag=None):
    resp = await client.get(url, len(buf), etag)
    try:
        mv = memoryview(buf)
        n = 0
        while n < resp.length:
            n += await resp.readinto(mv[n : resp.length])
        return resp.status, resp.etag, n
    finally:
        await resp.close()


# POST data (JSON bytes) to url; returns the status of a 2xx answer, whose headers are read
# through the client's line buffer (bounded like get()) and whose body is not read. No
# redirect is followed; timeout_ms, when given, bounds it instead of the client's. Raises
# FetchError: HTTP for any other status; NETWORK, TIMEOUT, BAD_RESPONSE.
async def post(client, url, data, timeout_ms=0):
    from ota.httpparse import parse_url  # not kept: HTTPClient.get forgets them (ota.http)
    from ota.response import Response

    if client.resp is not None:
        raise RuntimeError("HTTPClient: a response is open")
    tls, host, port, path = parse_url(url)
    resp = Response(client)
    client.resp = resp
    try:
        await client.timed(resp.begin(tls, host, port, path, None, 0, data),
                           "posting to " + host, timeout_ms)
        if not 200 <= resp.status < 300:
            raise FetchError("HTTP", "server answered " + str(resp.status), resp.status)
        return resp.status
    finally:
        resp.close()
        client.resp = None
