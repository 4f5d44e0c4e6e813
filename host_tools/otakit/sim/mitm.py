"""A tampering man-in-the-middle proxy on loopback, for security tests and demos.

The device is pointed at the proxy's URL; the proxy forwards each request (with its body, per
``Content-Length``: a device's report) to the real server, reads the whole response (the agent
sends ``Connection: close``), lets a hook rewrite the body, fixes ``Content-Length`` (a competent
attacker would), and sends it on. It models an attacker on the network path, a malicious mirror
or a compromised CDN: it can change any byte but holds no signing key.

Example::

    with TamperProxy(upstream_url) as proxy:
        proxy.rewrite = lambda path, body: body.replace(b"x", b"y")
        lab.provision(url=proxy.url)

or, without asking the server at all, ``proxy.answer = lambda path: NOT_MODIFIED``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit

Rewrite = Callable[[str, bytes], bytes | None]
Answer = Callable[[str], bytes | None]

# A 304 whatever the request said (an attacker freezing what the device has, or pretending to).
NOT_MODIFIED = b'HTTP/1.1 304 Not Modified\r\nETag: "frozen"\r\nConnection: close\r\n\r\n'


def _recv_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


class TamperProxy:
    """HTTP/1.1 proxy with a body rewrite hook.

    Attributes:
        rewrite: ``(path, body) -> new body`` (None: unchanged), applied to 200/206 responses.
        answer: ``path -> whole raw response`` sent instead of asking the server (None: ask it).
        drop_after: if set, the next payload response body is cut after this many bytes and
            the connection closed (one shot), as a flaky network would.
        seen: the request paths, in order.
    """

    def __init__(self, upstream: str) -> None:
        u = urlsplit(upstream)
        self._up = (u.hostname or "127.0.0.1", u.port or 80)
        self.rewrite: Rewrite | None = None
        self.answer: Answer | None = None
        self.drop_after: int | None = None
        self.seen: list[str] = []
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(16)
        self.url = f"http://127.0.0.1:{self._srv.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, name="otakit-mitm", daemon=True)
        self._closed = False

    def __enter__(self) -> TamperProxy:
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closed = True
        self._srv.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        self._srv.settimeout(0.1)  # so that closing is noticed promptly
        while not self._closed:
            try:
                conn, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                try:
                    self._one(conn)
                except OSError:
                    pass

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = conn.recv(4096)
            if not chunk:
                return
            req += chunk
        head, _, body = req.partition(b"\r\n\r\n")
        want = next((int(ln.split(b":", 1)[1]) for ln in head.split(b"\r\n")[1:]
                     if ln.lower().startswith(b"content-length:")), 0)
        while len(body) < want:  # a request body (a device's report): forwarded whole
            chunk = conn.recv(4096)
            if not chunk:
                return
            body += chunk
            req += chunk
        path = req.split(b" ", 2)[1].decode("latin-1")
        self.seen.append(path)
        own = self.answer(path) if self.answer is not None else None
        if own is not None:
            conn.sendall(own)
            return
        with socket.create_connection(self._up, timeout=10) as up:
            up.sendall(req)
            resp = _recv_all(up)
        head, _, body = resp.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status in (200, 206) and self.rewrite is not None:
            new = self.rewrite(path, body)
            if new is not None and new != body:
                body = new
                lines = [ln for ln in head.split(b"\r\n")
                         if not ln.lower().startswith((b"content-length:", b"etag:"))]
                lines.append(b"Content-Length: " + str(len(body)).encode())
                head = b"\r\n".join(lines)
        cut = None
        if "/blobs/" in path:
            cut, self.drop_after = self.drop_after, None
        conn.sendall(head + b"\r\n\r\n" + (body if cut is None else body[:cut]))
