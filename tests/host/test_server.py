"""`otakit serve` and otakit.server: what a client on the wire sees.

Requests go over raw sockets so the request target reaches the server exactly as written (no
client-side normalisation of ``..`` or percent escapes).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from otakit.connguard import ConnectionLimits
from otakit.server import serve_in_thread
from otakit.sim.faults import Faults

BLOB = bytes(range(256)) * 40 + b"tail"  # 10244 bytes
LARGE = bytes(range(251)) * 12000 + b"end"  # ~3 MB: a payload-sized body, sent with sendfile
MANIFEST = b"signed manifest bytes\n"


def raw_request(url: str, target: str, method: str = "GET",
                headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None
                ) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 request with a verbatim target; return (status, headers, body)."""
    u = urlsplit(url)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {u.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection((u.hostname, u.port), timeout=10) as raw, \
            (tls.wrap_socket(raw) if tls else raw) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = bytearray()
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), hdrs, body


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "door" / "esp32" / "stable").mkdir(parents=True)
    (root / "blobs" / "sha256" / "ab12").write_bytes(BLOB)
    (root / "door" / "esp32" / "stable" / "manifest").write_bytes(MANIFEST)
    (root / ".manifest.tmp").write_bytes(b"half written")
    (tmp_path / "secret").write_bytes(b"outside the repository")
    (root / "escape").symlink_to(tmp_path / "secret")
    (root / "inside").symlink_to(root / "door" / "esp32" / "stable" / "manifest")
    (root / "outside").symlink_to(tmp_path)  # a directory symlink that leaves the repository
    (root / "alias").symlink_to(root / "door")  # one that stays inside
    (root / "blobs" / "sha256" / "large").write_bytes(LARGE)
    return root


@pytest.fixture
def log() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def url(repo: Path, log: io.StringIO, faults: Faults) -> Iterator[str]:
    with serve_in_thread(repo, access_log=log, middlewares=[faults.middleware]) as u:
        yield u


def test_get_whole_file_has_exact_length_etag_and_no_chunking(url: str) -> None:
    status, h, body = raw_request(url, "/blobs/sha256/ab12")
    assert status == 200
    assert body == BLOB
    assert h["content-length"] == str(len(BLOB))
    assert "transfer-encoding" not in h
    assert h["accept-ranges"] == "bytes"
    assert h["etag"].startswith('"') and h["etag"].endswith('"')


def test_head_gives_headers_without_body(url: str) -> None:
    status, h, body = raw_request(url, "/door/esp32/stable/manifest", method="HEAD")
    assert status == 200
    assert h["content-length"] == str(len(MANIFEST))
    assert body == b""


@pytest.mark.parametrize(("spec", "first", "last"), [
    ("bytes=100-199", 100, 199),
    ("bytes=10000-", 10000, len(BLOB) - 1),
    ("bytes=-44", len(BLOB) - 44, len(BLOB) - 1),
    ("bytes=10000-999999", 10000, len(BLOB) - 1),  # end clamped to the file
    ("bytes=-999999", 0, len(BLOB) - 1),  # suffix longer than the file
])
def test_range_gives_206_with_content_range(url: str, spec: str, first: int, last: int) -> None:
    status, h, body = raw_request(url, "/blobs/sha256/ab12", headers={"Range": spec})
    assert status == 206
    assert body == BLOB[first:last + 1]
    assert h["content-range"] == f"bytes {first}-{last}/{len(BLOB)}"
    assert h["content-length"] == str(last - first + 1)


@pytest.mark.parametrize("spec", [f"bytes={len(BLOB)}-", "bytes=999999-1000000", "bytes=-0"])
def test_unsatisfiable_range_gives_416(url: str, spec: str) -> None:
    status, h, body = raw_request(url, "/blobs/sha256/ab12", headers={"Range": spec})
    assert status == 416
    assert h["content-range"] == f"bytes */{len(BLOB)}"


@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "items=0-5"])
def test_multi_range_or_another_unit_is_ignored(url: str, spec: str) -> None:
    status, _, body = raw_request(url, "/blobs/sha256/ab12", headers={"Range": spec})
    assert status == 200
    assert body == BLOB


@pytest.mark.parametrize("spec", ["bytes=5-2", "bytes=x-", "bytes=²-", "bytes 0-5"])
def test_malformed_range_is_400(url: str, spec: str) -> None:
    assert raw_request(url, "/blobs/sha256/ab12", headers={"Range": spec})[0] == 400


def test_if_none_match_gives_304_until_the_file_changes(url: str, repo: Path) -> None:
    _, h, _ = raw_request(url, "/door/esp32/stable/manifest")
    etag = h["etag"]
    for inm in (etag, f'"nope", {etag}', f"W/{etag}", "*"):
        status, h2, body = raw_request(url, "/door/esp32/stable/manifest",
                                       headers={"If-None-Match": inm})
        assert (status, body) == (304, b"")
        assert h2["etag"] == etag
    # an atomic replace (as the repository writer does) changes the ETag
    tmp = repo / "door" / "esp32" / "stable" / ".new"
    tmp.write_bytes(b"new manifest")
    os.replace(tmp, repo / "door" / "esp32" / "stable" / "manifest")
    status, h3, body = raw_request(url, "/door/esp32/stable/manifest",
                                   headers={"If-None-Match": etag})
    assert (status, body) == (200, b"new manifest")
    assert h3["etag"] != etag


def test_if_range_with_a_stale_etag_sends_the_whole_file(url: str) -> None:
    _, h, _ = raw_request(url, "/blobs/sha256/ab12", method="HEAD")
    status, _, body = raw_request(url, "/blobs/sha256/ab12",
                                  headers={"Range": "bytes=10-", "If-Range": h["etag"]})
    assert (status, body) == (206, BLOB[10:])
    status, _, body = raw_request(url, "/blobs/sha256/ab12",
                                  headers={"Range": "bytes=10-", "If-Range": '"stale"'})
    assert (status, body) == (200, BLOB)


@pytest.mark.parametrize("target", [
    "/../secret",
    "/door/../../secret",
    "/%2e%2e/secret",
    "/%2E%2E%2fsecret",
    "/door/%2e%2e/%2e%2e/secret",
    "/./door/esp32/stable/manifest",
    "//door/esp32/stable/manifest",
    "/door/esp32/stable/manifest%00",
    "/door%5cesp32",
    "/escape",  # a symlink that leaves the repository
    "/outside/secret",  # through a directory symlink that leaves it
    "/door/esp32/stable/manifest/x",  # a file used as a directory
    "/.manifest.tmp",  # dot-files (a writer's temporaries) are never served
    "/etc/passwd",
])
def test_path_traversal_and_hidden_files_are_404(url: str, target: str) -> None:
    status, _, body = raw_request(url, target)
    assert status == 404
    assert b"outside" not in body and b"half" not in body


def test_non_origin_form_target_is_refused(url: str) -> None:
    status, _, body = raw_request(url, "../secret")
    assert status in (400, 404)
    assert b"outside" not in body


def test_symlink_inside_the_repository_is_served(url: str) -> None:
    assert raw_request(url, "/inside")[:3:2] == (200, MANIFEST)
    assert raw_request(url, "/alias/esp32/stable/manifest")[:3:2] == (200, MANIFEST)


@pytest.mark.parametrize("target", ["/", "/door", "/door/esp32/stable/", "/blobs/sha256"])
def test_directories_are_404(url: str, target: str) -> None:
    assert raw_request(url, target)[0] == 404


def test_other_methods_are_refused(url: str) -> None:
    assert raw_request(url, "/door/esp32/stable/manifest", method="POST")[0] == 405


def test_access_log_has_one_line_per_request(url: str, log: io.StringIO) -> None:
    raw_request(url, "/blobs/sha256/ab12", headers={"Range": "bytes=0-9"})
    raw_request(url, "/missing")
    lines = log.getvalue().splitlines()
    assert len(lines) == 2
    f = lines[0].split()
    assert f[1:6] == ["127.0.0.1", "GET", "/blobs/sha256/ab12", "206", "10"]
    assert f[6].endswith("ms")
    assert lines[1].split()[2:6] == ["GET", "/missing", "404", "0"]


def _log_line(log: io.StringIO, target: str) -> list[str]:
    """The access-log fields of the request for ``target``, once the server has written it
    (it logs a request after its last byte went out, which a client can see first)."""
    for _ in range(1000):
        for line in log.getvalue().splitlines():
            if f" {target} " in line:
                return line.split()
        time.sleep(0.01)
    raise AssertionError(f"no log line for {target}: {log.getvalue()!r}")


@pytest.mark.parametrize(("spec", "first", "last"), [
    (None, 0, len(LARGE) - 1),
    ("bytes=100001-", 100001, len(LARGE) - 1),
    ("bytes=70000-2500000", 70000, 2500000),
    ("bytes=-65537", len(LARGE) - 65537, len(LARGE) - 1),
])
def test_a_payload_sized_body_is_exact_and_logged_with_its_size(
        url: str, log: io.StringIO, spec: str | None, first: int, last: int) -> None:
    status, h, body = raw_request(url, "/blobs/sha256/large",
                                  headers={"Range": spec} if spec else None)
    assert status == (206 if spec else 200)
    assert h["content-length"] == str(last - first + 1)
    assert body == LARGE[first:last + 1]
    f = _log_line(log, "/blobs/sha256/large")
    assert f[4:6] == [str(status), str(last - first + 1)]


def test_a_slow_client_gets_a_large_body_exactly(url: str, repo: Path,
                                                 log: io.StringIO) -> None:
    big = bytes(range(251)) * 50000  # 12.5 MB: more than the socket buffers take at once
    (repo / "blobs" / "sha256" / "big").write_bytes(big)
    u = urlsplit(url)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # the server waits for room
        s.settimeout(10)
        s.connect((u.hostname, u.port))
        s.sendall(b"GET /blobs/sha256/big HTTP/1.1\r\nHost: x\r\nRange: bytes=3-\r\n"
                  b"Connection: close\r\n\r\n")
        data = bytearray()
        while chunk := s.recv(65536):
            data += chunk
    assert bytes(data).partition(b"\r\n\r\n")[2] == big[3:]
    assert _log_line(log, "/blobs/sha256/big")[4:6] == ["206", str(len(big) - 3)]


def test_a_client_gone_mid_body_is_logged_with_the_bytes_sent(url: str, repo: Path,
                                                              log: io.StringIO) -> None:
    size = 64 * 1024 * 1024  # more than the socket buffers hold for a client that stops
    with (repo / "blobs" / "sha256" / "huge").open("wb") as f:
        f.truncate(size)
    u = urlsplit(url)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(10)
        s.connect((u.hostname, u.port))
        s.sendall(b"GET /blobs/sha256/huge HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = 0
        while got < 300_000:
            got += len(s.recv(65536))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
    f = _log_line(log, "/blobs/sha256/huge")
    assert f[4] == "200"
    assert got - 1000 < int(f[5]) < size  # what the kernel took, not the whole file
    assert raw_request(url, "/blobs/sha256/ab12")[::2] == (200, BLOB)  # still serving


def _tls_server_context(tmp_path: Path) -> ssl.SSLContext:
    """The server's TLS context (`otakit.server.tls_context`) for a self-signed certificate."""
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    from otakit.server import tls_context  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return tls_context(tmp_path / "cert.pem", tmp_path / "key.pem")


def _tls_client() -> ssl.SSLContext:
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    return client


def test_tls_sends_a_payload_sized_body_exactly(repo: Path, tmp_path: Path) -> None:
    log = io.StringIO()
    with serve_in_thread(repo, access_log=log, ssl_context=_tls_server_context(tmp_path)) as u:
        status, h, body = raw_request(u, "/blobs/sha256/large",
                                      headers={"Range": "bytes=1-"}, tls=_tls_client())
        assert (status, body) == (206, LARGE[1:])
        assert _log_line(log, "/blobs/sha256/large")[4:6] == ["206", str(len(LARGE) - 1)]


def test_tls_closes_a_client_that_stops_reading(repo: Path, tmp_path: Path) -> None:
    """Over TLS the body is copied in 64 KB writes (no sendfile): a client that takes none of
    them for the send timeout is closed too, and the log has the short count."""
    big = bytes(range(256)) * (48 * 1024)  # 12 MB: more than the kernel's buffers hold
    (repo / "blobs" / "sha256" / "big").write_bytes(big)
    log = io.StringIO()
    with serve_in_thread(repo, access_log=log, ssl_context=_tls_server_context(tmp_path),
                         limits=ConnectionLimits(send_timeout=0.5)) as u:
        url = urlsplit(u)
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        raw.connect((url.hostname, url.port))
        with _tls_client().wrap_socket(raw) as s:
            s.sendall(b"GET /blobs/sha256/big HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(2)  # reading nothing, for four times the send timeout
            s.settimeout(20)
            got = 0
            with contextlib.suppress(ConnectionResetError, ssl.SSLError):
                while chunk := s.recv(1 << 20):
                    got += len(chunk)
        assert 0 < got < len(big)  # closed, the body short: it must resume with a Range
        assert raw_request(u, "/blobs/sha256/ab12", tls=_tls_client())[::2] == (200, BLOB)
    f = _log_line(log, "/blobs/sha256/big")
    assert f[4] == "200" and int(f[5]) < len(big), f


def test_fault_drop_after_cuts_the_body_short(url: str, faults: Faults) -> None:
    faults.drop_after = 1000
    status, h, body = raw_request(url, "/blobs/sha256/ab12")
    assert status == 200 and h["content-length"] == str(len(BLOB))
    assert body == BLOB[:1000]


def test_fault_ignore_range_and_fail_status(url: str, faults: Faults) -> None:
    faults.ignore_range = True
    assert raw_request(url, "/blobs/sha256/ab12", headers={"Range": "bytes=5-"})[0] == 200
    faults.fail_status = 503
    assert raw_request(url, "/blobs/sha256/ab12")[0] == 503


def _start_cli(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "otakit", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line


def test_cli_serves_on_a_free_port_and_exits_cleanly_on_sigterm(repo: Path,
                                                                 tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    proc, line = _start_cli(["--repo", str(repo), "--port", "0", "--access-log", str(access),
                             "--token-file", str(tmp_path / "token")])
    try:
        assert line.startswith(f"serving {repo} on http://127.0.0.1:"), line
        url = line.split()[-1]
        assert raw_request(url, "/door/esp32/stable/manifest")[::2] == (200, MANIFEST)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
    assert " GET /door/esp32/stable/manifest 200 " in access.read_text()


def test_cli_refuses_a_missing_repository(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "otakit", "serve", "--repo",
                        str(tmp_path / "nope"), "--port", "0"],
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("otakit: NO_REPO: not a directory")


def test_cli_refuses_a_port_in_use(repo: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "otakit", "serve", "--repo", str(repo),
                            "--port", str(port), "--token-file", str(repo.parent / "token")],
                           capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("otakit: LISTEN_FAILED: cannot listen on 127.0.0.1:")
