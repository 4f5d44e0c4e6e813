"""ota.http on the real MicroPython unix port, against `otakit serve` and raw-socket fake servers.

Each test runs a small driver script in a micropython subprocess with firmware/ on its path; the
driver prints one JSON line: the response fields, or the FetchError's reason/status/detail.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from otakit.mpy import mpy_cross_binary, run_micropython
from otakit.paths import ROOT
from otakit.server import serve_in_thread, tls_context
from otakit.sim.faults import Faults

FIRMWARE = ROOT / "firmware"
BIG = os.urandom(1 << 20)  # 1 MiB payload
MANIFEST = b"M" * 3000

DRIVER = r"""
import sys, asyncio, hashlib, json, binascii
from ota.http import HTTPClient
from ota.errors import FetchError

def hexs(b):
    return binascii.hexlify(b).decode()

async def get(c, url, a):
    buf = bytearray(a.get("bufsize", 4096))
    h = hashlib.sha256()
    resp = await c.get(url, a.get("max_body", 1 << 21), a.get("etag"), a.get("start", 0))
    out = {"status": resp.status, "length": resp.length, "range_start": resp.range_start,
           "total": resp.total, "etag": resp.etag, "date": resp.date}
    n = 0
    try:
        while True:
            k = await resp.readinto(buf)
            if not k:
                break
            h.update(memoryview(buf)[:k])
            n += k
    finally:
        await resp.close()
    out["n"] = n
    out["sha256"] = hexs(h.digest())
    return out

async def small(c, url, a):
    from ota.httpsmall import get_small
    buf = bytearray(a.get("bufsize", 4096))
    st, etag, n = await get_small(c, url, buf, a.get("etag"))
    return {"status": st, "etag": etag, "n": n, "sha256": hexs(hashlib.sha256(buf[:n]).digest())}

async def nomem(c, url, a):
    # the body's code does not fit once the headers are in: MemoryError, and the client is
    # free for the next request (its socket closed)
    import builtins
    real = builtins.__import__
    def imp(name, *x):
        if name == "ota.body":
            builtins.__import__ = real
            raise MemoryError
        return real(name, *x)
    builtins.__import__ = imp
    try:
        await c.get(url, 1 << 21)
        first = "no error"
    except MemoryError:
        first = "MemoryError"
    out = {"first": first, "free": c.resp is None}
    out.update(await get(c, url, a))
    return out

def main():
    op, url, a = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    ca = open(a["ca"], "rb").read() if a.get("ca") else None
    try:
        if op == "sync":
            from ota.httpsmall import get_small
            buf = bytearray(a.get("bufsize", 4096))
            st, etag, n = asyncio.run(get_small(HTTPClient(5000, ca), url, buf, a.get("etag")))
            out = {"status": st, "etag": etag, "n": n}
        else:
            c = HTTPClient(a.get("timeout_ms", 5000), ca)
            out = asyncio.run({"get": get, "small": small, "nomem": nomem}[op](c, url, a))
    except FetchError as e:
        out = {"error": e.reason, "status": e.status, "detail": e.detail,
               "retry_after": getattr(e, "retry_after", None)}
    print(json.dumps(out))

main()
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("driver") / "driver.py"
    p.write_text(DRIVER)
    return p


def run(driver: Path, op: str, url: str, heapsize: str | None = None,
        path: list[Path] | None = None, **args: object) -> dict:
    """Run the driver on the unix port; return its JSON result."""
    r = run_micropython([str(driver), op, url, json.dumps(args)], path=path or [FIRMWARE],
                        heapsize=heapsize, timeout=60)
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "door" / "esp32" / "stable").mkdir(parents=True)
    (root / "blobs" / "sha256" / "big").write_bytes(BIG)
    (root / "door" / "esp32" / "stable" / "manifest").write_bytes(MANIFEST)
    return root


@pytest.fixture(scope="module")
def faults() -> Faults:
    return Faults()


@pytest.fixture(scope="module")
def url(repo: Path, faults: Faults) -> Iterator[str]:
    with serve_in_thread(repo, middlewares=[faults.middleware]) as u:
        yield u


@pytest.fixture(autouse=True)
def _reset_faults(faults: Faults) -> None:
    faults.__init__()  # type: ignore[misc]


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# --- against otakit serve ---------------------------------------------------------------------

def test_get_whole_file_into_a_fixed_buffer(driver: Path, url: str) -> None:
    r = run(driver, "get", url + "blobs/sha256/big")
    assert (r["status"], r["length"], r["n"], r["range_start"]) == (200, len(BIG), len(BIG), 0)
    assert r["sha256"] == sha(BIG)
    assert r["etag"].startswith('"') and r["date"].endswith("GMT")


def test_no_room_for_the_body_code_leaves_the_client_usable(driver: Path, url: str) -> None:
    r = run(driver, "nomem", url + "blobs/sha256/big")
    assert (r["first"], r["free"]) == ("MemoryError", True)
    assert (r["status"], r["n"], r["sha256"]) == (200, len(BIG), sha(BIG))


def test_range_resume_from_an_offset(driver: Path, url: str) -> None:
    start = 123457
    r = run(driver, "get", url + "blobs/sha256/big", start=start, max_body=len(BIG) - start)
    assert (r["status"], r["range_start"], r["total"]) == (206, start, len(BIG))
    assert r["n"] == len(BIG) - start
    assert r["sha256"] == sha(BIG[start:])


def test_server_ignoring_range_is_reported_as_200_from_zero(driver: Path, url: str,
                                                            faults: Faults) -> None:
    faults.ignore_range = True
    r = run(driver, "get", url + "blobs/sha256/big", start=5000, max_body=len(BIG) - 5000)
    assert (r["status"], r["range_start"], r["n"]) == (200, 0, len(BIG))


def test_etag_gives_304_and_nothing_downloaded(driver: Path, url: str) -> None:
    first = run(driver, "small", url + "door/esp32/stable/manifest")
    assert (first["status"], first["n"], first["sha256"]) == (200, len(MANIFEST), sha(MANIFEST))
    again = run(driver, "small", url + "door/esp32/stable/manifest", etag=first["etag"])
    assert (again["status"], again["n"], again["etag"]) == (304, 0, first["etag"])


def test_sync_wrapper(driver: Path, url: str) -> None:
    r = run(driver, "sync", url + "door/esp32/stable/manifest")
    assert (r["status"], r["n"]) == (200, len(MANIFEST))


def test_small_body_larger_than_the_buffer_is_refused_before_reading(driver: Path,
                                                                      url: str) -> None:
    r = run(driver, "small", url + "door/esp32/stable/manifest", bufsize=1024)
    assert r["error"] == "BAD_RESPONSE" and "too large" in r["detail"]


def test_payload_over_max_body_is_refused(driver: Path, url: str, faults: Faults) -> None:
    r = run(driver, "get", url + "blobs/sha256/big", max_body=len(BIG) - 1)
    assert r["error"] == "BAD_RESPONSE"
    r = run(driver, "get", url + "blobs/sha256/big", start=10, max_body=len(BIG) - 11)
    assert r["error"] == "BAD_RESPONSE"
    faults.ignore_range = True  # a 200 instead of the 206 carries the whole resource
    r = run(driver, "get", url + "blobs/sha256/big", start=10, max_body=len(BIG) - 11)
    assert r["error"] == "BAD_RESPONSE"


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_is_http_with_status(driver: Path, url: str, faults: Faults,
                                          status: int) -> None:
    faults.fail_status = status
    r = run(driver, "get", url + "blobs/sha256/big")
    assert (r["error"], r["status"]) == ("HTTP", status)


def test_missing_file_is_http_404(driver: Path, url: str) -> None:
    r = run(driver, "get", url + "blobs/sha256/nope")
    assert (r["error"], r["status"]) == ("HTTP", 404)


def test_connection_dropped_mid_body_is_short_read(driver: Path, url: str,
                                                   faults: Faults) -> None:
    faults.drop_after = 300000
    r = run(driver, "get", url + "blobs/sha256/big")
    assert r["error"] == "SHORT_READ"


def test_connection_refused_is_network(driver: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the device connects
    r = run(driver, "get", f"http://127.0.0.1:{port}/x")
    assert (r["error"], r["status"]) == ("NETWORK", 0)


@pytest.mark.parametrize("bad", ["ftp://127.0.0.1/x", "http:///x", "http://h:99999/x",
                                 "http://h/a b"])
def test_bad_url_is_refused(driver: Path, bad: str) -> None:
    assert run(driver, "get", bad)["error"] == "NETWORK"


# --- memory -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory, driver: Path) -> Path:
    """firmware/ota and the driver compiled to .mpy, as a device would load them."""
    import subprocess  # noqa: PLC0415

    out = tmp_path_factory.mktemp("mpy")
    (out / "ota").mkdir()
    for name in ("__init__", "errors", "http", "httpparse", "response", "body"):
        subprocess.run([mpy_cross_binary(), "-o", str(out / "ota" / f"{name}.mpy"),
                        str(FIRMWARE / "ota" / f"{name}.py")], check=True)
    subprocess.run([mpy_cross_binary(), "-o", str(out / "drv.mpy"), str(driver)], check=True)
    return out


HEAP = "40K"  # 64-bit unix port: asyncio + ota.http code ≈ 23 KB of it, the 4 KB buffer included


def run_compiled(compiled: Path, url: str, heapsize: str) -> dict:
    import_driver = compiled / "run_drv.py"
    import_driver.write_text("import drv\n")
    r = run_micropython(["-c", "import sys; sys.argv[1:] = " + repr(
        ["get", url, json.dumps({})]) + "; import drv"], path=[compiled], heapsize=heapsize)
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_streaming_1mb_in_a_small_fixed_heap(compiled: Path, url: str, repo: Path) -> None:
    (repo / "blobs" / "sha256" / "small").write_bytes(BIG[:8192])
    small = run_compiled(compiled, url + "blobs/sha256/small", HEAP)
    big = run_compiled(compiled, url + "blobs/sha256/big", HEAP)
    assert (small["n"], small["sha256"]) == (8192, sha(BIG[:8192]))
    assert (big["n"], big["sha256"]) == (len(BIG), sha(BIG))


# --- TLS --------------------------------------------------------------------------------------

def _certs(d: Path, server_names: list[str]) -> tuple[Path, Path, Path, Path]:
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject: str, issuer: x509.Name, pub: ec.EllipticCurvePublicKey
                ) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer)
                .public_key(pub).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30)))

    paths = []
    for label in ("ca", "other"):
        k = ec.generate_private_key(ec.SECP256R1())
        c = builder(f"otakit test {label}", name(f"otakit test {label}"), k.public_key()) \
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True) \
            .sign(k, hashes.SHA256())
        p = d / f"{label}.der"
        p.write_bytes(c.public_bytes(serialization.Encoding.DER))
        paths.append(p)
        if label == "ca":
            ca_key, ca_cert = k, c
    sk = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in server_names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    sc = builder(server_names[0], ca_cert.subject, sk.public_key()) \
        .add_extension(x509.SubjectAlternativeName(sans), critical=False) \
        .sign(ca_key, hashes.SHA256())
    cert, key = d / "cert.pem", d / "key.pem"
    cert.write_bytes(sc.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(sk.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return paths[0], paths[1], cert, key


def test_https_verifies_the_server_against_the_configured_ca(driver: Path, repo: Path,
                                                             tmp_path: Path) -> None:
    ca, other, cert, key = _certs(tmp_path, ["127.0.0.1"])
    with serve_in_thread(repo, ssl_context=tls_context(cert, key)) as u:
        assert u.startswith("https://")
        ok = run(driver, "small", u + "door/esp32/stable/manifest", ca=str(ca))
        assert (ok["status"], ok["sha256"]) == (200, sha(MANIFEST))
        wrong = run(driver, "small", u + "door/esp32/stable/manifest", ca=str(other))
        assert wrong["error"] == "NETWORK"
        none = run(driver, "small", u + "door/esp32/stable/manifest")
        assert none["error"] == "NETWORK" and "CA" in none["detail"]


def test_https_refuses_a_certificate_for_another_host(driver: Path, repo: Path,
                                                      tmp_path: Path) -> None:
    ca, _, cert, key = _certs(tmp_path, ["updates.example.com"])
    with serve_in_thread(repo, ssl_context=tls_context(cert, key)) as u:
        r = run(driver, "small", u + "door/esp32/stable/manifest", ca=str(ca))
        assert r["error"] == "NETWORK", r
        assert "CN" in r["detail"]  # mbedtls names the host-name mismatch


# --- raw-socket fake servers for malformed and slow responses ---------------------------------

Reply = Callable[[int, bytes], bytes | None]


class FakeServer:
    """Accepts connections; for the n-th request (0-based) sends reply(n, request_head).

    A reply of None stalls: nothing is sent until the client closes.
    """

    def __init__(self, reply: Reply, ssl_context: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.ssl_context = ssl_context
        self.requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            if self.ssl_context:
                try:
                    conn = self.ssl_context.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            with conn:
                conn.settimeout(10)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                self.requests.append(head)
                out = self.reply(len(self.requests) - 1, head)
                try:
                    if out is None:
                        while conn.recv(4096):
                            pass
                    else:
                        conn.sendall(out)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def start(reply: Reply, ssl_context: ssl.SSLContext | None = None) -> FakeServer:
        servers.append(FakeServer(reply, ssl_context))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def canned(data: bytes) -> Reply:
    return lambda n, head: data


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"


@pytest.mark.parametrize(("name", "response"), [
    ("header line over 512 bytes", OK_HEAD + b"X-Pad: " + b"a" * 600 + b"\r\n\r\nhello"),
    ("too many header fields", OK_HEAD + b"X-A: 1\r\n" * 40 + b"\r\nhello"),
    ("no Content-Length", b"HTTP/1.1 200 OK\r\n\r\nhello"),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("gzip", OK_HEAD + b"Content-Encoding: gzip\r\n\r\nhello"),
    ("bad Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello"),
    ("negative Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello"),
    ("two Content-Lengths", OK_HEAD + b"Content-Length: 6\r\n\r\nhello"),
    ("huge Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"),
    ("bad status line", b"HTTP/1.1 2OO OK\r\nContent-Length: 5\r\n\r\nhello"),
    ("not HTTP", b"SSH-2.0-OpenSSH_9.6\r\n"),
    ("headers cut off", b"HTTP/1.1 200 OK\r\nContent-Le"),
    ("obs-fold", OK_HEAD + b"X-A: 1\r\n  folded\r\n\r\nhello"),
    ("control char in ETag", OK_HEAD + b"ETag: \"a\x01b\"\r\n\r\nhello"),
    ("redirect without Location", b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n"),
])
def test_malformed_response_is_bad_response(driver: Path, fake: Callable[..., FakeServer],
                                            name: str, response: bytes) -> None:
    srv = fake(canned(response))
    r = run(driver, "get", srv.url + "/x")
    assert r["error"] == "BAD_RESPONSE", (name, r)


def test_body_shorter_than_content_length_is_short_read(driver: Path,
                                                        fake: Callable[..., FakeServer]
                                                        ) -> None:
    srv = fake(canned(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n" + b"x" * 6000))
    r = run(driver, "get", srv.url + "/x", bufsize=4096)
    assert r["error"] == "SHORT_READ"


def test_never_reads_past_content_length(driver: Path,
                                         fake: Callable[..., FakeServer]) -> None:
    srv = fake(canned(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES"))
    r = run(driver, "small", srv.url + "/x")
    assert (r["status"], r["n"], r["sha256"]) == (200, 5, sha(b"hello"))


def test_empty_reply_is_network(driver: Path, fake: Callable[..., FakeServer]) -> None:
    srv = fake(canned(b""))
    assert run(driver, "get", srv.url + "/x")["error"] == "NETWORK"


def test_silent_server_is_timeout(driver: Path, fake: Callable[..., FakeServer]) -> None:
    srv = fake(lambda n, head: None)
    r = run(driver, "get", srv.url + "/x", timeout_ms=300)
    assert r["error"] == "TIMEOUT"


def test_stall_in_the_body_is_timeout(driver: Path, url: str, faults: Faults) -> None:
    faults.stall_seconds = 3
    r = run(driver, "get", url + "blobs/sha256/big", timeout_ms=300)
    assert r["error"] == "TIMEOUT"


def test_retry_after_is_kept_on_http_errors(driver: Path,
                                            fake: Callable[..., FakeServer]) -> None:
    srv = fake(canned(b"HTTP/1.1 503 Busy\r\nRetry-After: 120\r\nContent-Length: 0\r\n\r\n"))
    r = run(driver, "get", srv.url + "/x")
    assert (r["error"], r["status"], r["retry_after"]) == ("HTTP", 503, "120")


def test_request_is_get_with_range_and_if_none_match(driver: Path,
                                                     fake: Callable[..., FakeServer]
                                                     ) -> None:
    srv = fake(canned(b"HTTP/1.1 304 Not Modified\r\n\r\n"))
    r = run(driver, "get", srv.url + "/a/manifest?x=1", start=10, etag='"v1"')
    assert (r["status"], r["etag"], r["n"]) == (304, '"v1"', 0)
    head = srv.requests[0].decode()
    assert head.startswith("GET /a/manifest?x=1 HTTP/1.1\r\n")
    assert "\r\nRange: bytes=10-\r\n" in head and '\r\nIf-None-Match: "v1"\r\n' in head
    assert f"\r\nHost: {srv.url[7:]}\r\n" in head


def test_unasked_304_is_http_error(driver: Path, fake: Callable[..., FakeServer]) -> None:
    srv = fake(canned(b"HTTP/1.1 304 Not Modified\r\n\r\n"))
    assert run(driver, "get", srv.url + "/x")["error"] == "HTTP"


@pytest.mark.parametrize("content_range", [b"bytes 11-20/100", b"bytes 10-20/100", b"bytes */100",
                                           b"bytes 10-19/15"])
def test_206_must_match_the_asked_range(driver: Path, fake: Callable[..., FakeServer],
                                        content_range: bytes) -> None:
    srv = fake(canned(b"HTTP/1.1 206 Partial\r\nContent-Length: 10\r\nContent-Range: "
                      + content_range + b"\r\n\r\n" + b"x" * 10))
    assert run(driver, "get", srv.url + "/x", start=10)["error"] == "BAD_RESPONSE"


def test_redirect_loop_is_bounded(driver: Path, fake: Callable[..., FakeServer]) -> None:
    srv = fake(canned(b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"))
    r = run(driver, "get", srv.url + "/x")
    assert (r["error"], r["status"]) == ("HTTP", 302)
    assert len(srv.requests) == 4  # the request and three redirects, then it gives up


def test_redirect_to_another_server_is_followed(driver: Path, url: str,
                                                fake: Callable[..., FakeServer]) -> None:
    target = (url + "blobs/sha256/big").encode()
    srv = fake(canned(b"HTTP/1.1 307 Temporary\r\nLocation: " + target +
                      b"\r\nContent-Length: 0\r\n\r\n"))
    r = run(driver, "get", srv.url + "/x", start=1000)
    assert (r["status"], r["range_start"], r["sha256"]) == (206, 1000, sha(BIG[1000:]))


def test_redirect_from_https_to_http_is_refused(driver: Path, url: str, tmp_path: Path,
                                                fake: Callable[..., FakeServer]) -> None:
    ca, _, cert, key = _certs(tmp_path, ["127.0.0.1"])
    location = (url + "blobs/sha256/big").encode()
    srv = fake(canned(b"HTTP/1.1 302 Found\r\nLocation: " + location +
                      b"\r\nContent-Length: 0\r\n\r\n"), tls_context(cert, key))
    r = run(driver, "get", srv.url + "/x", ca=str(ca))
    assert r["error"] == "BAD_RESPONSE" and "https to http" in r["detail"]
    assert len(srv.requests) == 1


def test_redirect_from_http_to_https_is_followed(driver: Path, repo: Path, tmp_path: Path,
                                                 fake: Callable[..., FakeServer]) -> None:
    ca, _, cert, key = _certs(tmp_path, ["127.0.0.1"])
    with serve_in_thread(repo, ssl_context=tls_context(cert, key)) as u:
        location = (u + "door/esp32/stable/manifest").encode()
        srv = fake(canned(b"HTTP/1.1 301 Moved\r\nLocation: " + location +
                          b"\r\nContent-Length: 0\r\n\r\n"))
        r = run(driver, "small", srv.url + "/x", ca=str(ca))
    assert (r["status"], r["sha256"]) == (200, sha(MANIFEST))
