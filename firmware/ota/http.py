# ota/http.py: a small streaming HTTP/1.1 client for the update agent.
# MIT license; Copyright (c) 2026 otakit contributors
"""Streaming HTTP/1.1 GET over a non-blocking socket (plain TCP, or TLS with a pinned CA) that
asyncio's I/O queue wakes the task for (ota.response), with timeouts by an alarm task
(HTTPClient.timed): no asyncio stream objects, no asyncio.wait_for, so neither asyncio.stream
nor asyncio.funcs is loaded.

Invariants:
- Only `FetchError` escapes (reason HTTP, NETWORK, TIMEOUT, BAD_RESPONSE or SHORT_READ, see
  docs/format.md section 5); OSError, EOF and timeouts are wrapped at this boundary.
- No size is taken from the wire without a bound from the caller: every body must announce a
  Content-Length no larger than the caller's `max_body`; chunked bodies are refused.
- Header lines are read through one 512-byte line buffer per client, made with it (a longer
  line, more than 32 header fields, or a malformed status line is BAD_RESPONSE); a body lets it
  go once it has returned the bytes that came with the headers, and the client's next request
  makes it again. Body bytes go straight into the caller's buffer: memory does not grow with
  the body size.
- https always verifies the server: CERT_REQUIRED against the configured CA (DER), never
  CERT_NONE; https without a CA is refused. Authenticity of updates still comes from the signed
  manifest, not from TLS.
- Redirects: at most 3, to the same scheme or from http to https, never https to http.
- URLs: http:// or https://, a host name or IPv4 address, optional port; no IPv6 literals.
- One connection per request (`Connection: close`), one request at a time per client.
- Every network wait is bounded by `timeout_ms`: connecting + sending + reading the headers is
  one operation, each `Body.readinto` call is one operation.

Note for decoders: `deflate.DeflateIO` reads its source one byte per call, so feed it from an
in-RAM buffer filled by `Body.readinto`, never from the socket itself.

Two phases, two sets of code. The headers: ota.response (connecting, the request, the status
line and header fields, redirects: ota.redirect) with the parsers of ota.httpparse (pure; they
import under CPython for fuzzing), loaded by get() and referenced only while it runs; get()
forgets them once it has the headers (as ota.release() forgets a phase's modules). The body:
ota.body (Body: the answer checked against the request, readinto, close), loaded then: its
code can take the place of the header code's (collectable by then), and the payload streams (the agent's peak of RAM) with
only this module (the client, its timer, the socket wait) and ota.body of the HTTP code. The
two small requests, a whole document into a buffer and a POST, are in ota.httpsmall, which
only the check phase and telemetry load.
"""

from asyncio import core  # pyright: ignore[reportAttributeAccessIssue] - MicroPython's scheduler

from ota.errors import FetchError, alarm


class HTTPClient:
    # timeout_ms bounds each network operation; ca is the DER certificate of the CA that
    # https servers must chain to (required for https). Allocates the 512-byte line buffer
    # (ota.response's _LINE_MAX; None once a Body took it over, until the next request).
    def __init__(self, timeout_ms=10000, ca=None):
        self._timeout = timeout_ms
        self._ca = ca
        self._ctx = None  # the TLS context, made at the first https request (ota.response)
        self.lbuf = bytearray(512)
        self.resp = None  # the open response (ota.body.Body)
        self.date = None  # the Date header of the last response (str or None)

    # GET url; its Body (ota.body) once status 200, 206 or 304 and the headers are read
    # (ota.response) and checked against the request (ota.body).
    #   max_body  bound on the body asked for: a 206 body is at most max_body bytes; the whole
    #             resource (a 200 body, a 206's total) at most start + max_body bytes
    #   etag      sent as If-None-Match; a 304 answer is returned as status 304
    #   start     > 0 sends "Range: bytes=start-"; the server may answer 206 (range_start ==
    #             start) or 200 (range_start == 0: it ignored the Range, start over)
    # Raises FetchError: HTTP (.status, .retry_after) for other statuses and too many
    # redirects; NETWORK, TIMEOUT, BAD_RESPONSE. The caller must close the response (or read
    # it to the end, which closes it), e.g. in a try/finally.
    async def get(self, url, max_body, etag=None, start=0):
        from ota.response import get

        h = await get(self, url, etag, start)
        get = None
        try:
            _forget()  # the header code: not in the heap with the body's
            from ota.body import Body

            return Body(self, h, max_body, etag, start)  # (it closes the socket if it refuses)
        except MemoryError:  # no room for ota.body: the socket closed, the client free again
            self.resp = None
            s = h[7]
            if s is not None:
                s.close()  # (again, when Body had taken it: closing twice does nothing)
            raise

    # A generator to await: asyncio's I/O queue takes the task until socket s is writable (w)
    # or readable (or in error), then resumes it. (A method: ota.response and ota.body, which
    # use it, do not import this module.)
    def ready(self, s, w):
        q = core._io_queue
        yield q.queue_write(s) if w else q.queue_read(s)

    # Await aw with the timeout (or a shorter timeout_ms); map timeouts and OSError/EOFError to
    # FetchError. aw runs in this task; an alarm task (ota.errors.alarm) cancels this one when
    # the time is up, which ends aw at its wait (asyncio's I/O queue lets go of a cancelled task).
    async def timed(self, aw, what, timeout_ms=0):
        a = core.create_task(alarm(core.cur_task, timeout_ms or self._timeout))
        try:
            return await aw
        except core.CancelledError:
            if a.done():  # the alarm went off; else the app cancelled this task
                raise FetchError("TIMEOUT", what)
            raise
        except (OSError, EOFError, ValueError) as e:  # mbedtls reports a bad certificate as
            raise FetchError("NETWORK", what + ": " + str(e).strip())  # ValueError
        finally:
            if not a.done():
                a.cancel()


# Forget ota.response, ota.httpparse and ota.redirect (as ota.release() forgets a phase's
# modules): once get() has the headers nothing refers to them, so their code can be collected
# before ota.body's comes in; the next request loads them again.
def _forget():
    import ota
    import sys

    for name in ("response", "httpparse", "redirect"):
        if sys.modules.pop("ota." + name, None) and hasattr(ota, name):
            delattr(ota, name)
