"""Attacks on `otakit serve` itself (issue 15 attacks 8 and 12), against the real server as
deployed: its own process, loopback only (docs/threat-model.md)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from otakit.connguard import LOG_LINES

BLOB = bytes(range(256)) * 400  # 102400 bytes
MANIFEST = b'{"signed": "not checked by the server"}'
ATTACKERS = 300
CAP = 32


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "door" / "esp32" / "stable").mkdir(parents=True)
    (root / "blobs" / "sha256" / "ab12").write_bytes(BLOB)
    (root / "door" / "esp32" / "stable" / "manifest").write_bytes(MANIFEST)
    return root


@contextlib.contextmanager
def otakit_serve(repo: Path, tmp: Path, *extra: str) -> Iterator[tuple[str, Path]]:
    """The real ``otakit serve`` in its own process; yields (URL, its stderr file)."""
    stderr = tmp / "serve.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "otakit", "serve", "--repo", str(repo), "--port", "0",
             "--access-log", str(tmp / "access.log"), "--token-file", str(tmp / "token"),
             *extra], stdout=subprocess.PIPE, stderr=err)
        try:
            line = proc.stdout.readline().decode()  # type: ignore[union-attr]
            assert line.startswith("serving"), line
            yield line.split()[-1], stderr
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def request(url: str, target: str, headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with a verbatim target (bytes as given); (status, headers, body)."""
    u = urlsplit(url)
    lines = [f"GET {target} HTTP/1.1", f"Host: {u.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection((u.hostname, u.port), timeout=20) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), hdrs, body


def closed_by_server(s: socket.socket) -> bool:
    """Whether the server ends this connection (a close or a reset) without answering."""
    s.settimeout(30)
    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_attack_slowloris(repo: Path, tmp_path: Path) -> None:
    """300 unfinished requests from one address: the server keeps serving a device on
    another address (manifest, then the payload from an offset), closes every attacking
    connection (over the cap at once, the rest at the header-read timeout, however they
    trickle), and logs the flood in a few lines without a traceback."""
    with otakit_serve(repo, tmp_path, "--header-timeout", "2",
                      "--max-client-connections", str(CAP)) as (url, stderr):
        port = urlsplit(url).port
        attack = []
        for _ in range(ATTACKERS):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))  # one client: its own loopback address
            s.connect(("127.0.0.1", port))
            with contextlib.suppress(OSError):  # a refused connection may already be reset
                s.sendall(b"GET /door/esp32/stable/manifest HTTP/1.1\r\nHost: x\r\nX-a: ")
            attack.append(s)
        try:
            status, _, body = request(url, "/door/esp32/stable/manifest")
            assert (status, body) == (200, MANIFEST)
            status, h, body = request(url, "/blobs/sha256/ab12", {"Range": "bytes=40000-"})
            assert (status, body) == (206, BLOB[40000:])
            assert h["content-range"] == f"bytes 40000-{len(BLOB) - 1}/{len(BLOB)}"
            for s in attack:  # slowloris: one more byte now and then
                with contextlib.suppress(OSError):
                    s.sendall(b"b")
            assert all(closed_by_server(s) for s in attack)
        finally:
            for s in attack:
                s.close()
        status, _, body = request(url, "/door/esp32/stable/manifest")  # still serving
        assert (status, body) == (200, MANIFEST)
    log = stderr.read_text()
    assert "Traceback" not in log
    lines = log.splitlines()
    assert 1 <= len(lines) <= LOG_LINES, log
    assert "127.0.0.2" in lines[0] and "refused" in lines[0]


# Malformed inputs that once raised inside the handler (500 with a traceback in the log), and
# junk of every shape: each gets a 4xx and never a 5xx.
MALFORMED = [
    ("/blobs/sha256/ab12", {"Range": "bytes=²-"}, 400),  # a Unicode digit
    ("/blobs/sha256/ab12", {"Range": "bytes=0-²"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes=-٣"}, 400),  # Arabic-Indic three
    ("/blobs/sha256/ab12", {"Range": "bytes=１-"}, 400),  # fullwidth one
    ("/blobs/sha256/ab12", {"Range": "bytes=-"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes="}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes=--1"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes=1-2-3"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes=+1-2"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes= 1 - 2"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes=0x10-"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes=1e3-"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes=" + "9" * 400 + "-"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes=5-2"}, 400),
    ("/blobs/sha256/ab12", {"Range": "junk"}, 400),
    ("/blobs/sha256/ab12", {"Range": "=0-1"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bytes\x7f=0-1"}, 400),
    ("/blobs/sha256/ab12", {"Range": "bÿtes=0-1"}, 400),
    ("/%ff", {}, 400),
    ("/blobs/sha256/%ff", {}, 400),
    ("/blobs/%zz/ab12", {}, 400),
    ("/blobs/sha256/ab%1", {}, 400),
    ("/blobs/sha256/ab%", {}, 400),
    ("/blobs/sha256/%c0%af", {}, 400),  # overlong UTF-8 for "/"
    ("/blobs/sha256/%ed%a0%80", {}, 400),  # a UTF-16 surrogate in UTF-8
    ("/blobs/sha256/%00", {}, 404),  # valid encoding, a NUL: no such file
    ("/blobs/sha256/%2e%2e", {}, 404),
]


def test_attack_server_500s(repo: Path, tmp_path: Path) -> None:
    """Every malformed Range and percent-encoding gets its 4xx from the real server: no 5xx,
    no traceback in its log, and it still serves the file afterwards."""
    with otakit_serve(repo, tmp_path) as (url, stderr):
        got = {(target, str(h)): request(url, target, h)[0] for target, h, _ in MALFORMED}
        assert got == {(target, str(h)): want for target, h, want in MALFORMED}
        assert request(url, "/blobs/sha256/ab12", {"Range": "bytes=0-9"})[2] == BLOB[:10]
    assert "Traceback" not in stderr.read_text()
    assert all(" 500 " not in line for line in (tmp_path / "access.log").read_text().splitlines())


def test_attack_slow_reader(tmp_path: Path) -> None:
    """A client that asks for a payload and stops reading (a zero TCP window holds a connection
    for ever) is closed once it has taken nothing for --send-timeout: it never gets the rest,
    the server logs the short count, and a device on another address is still served."""
    repo = tmp_path / "repo"
    (repo / "blobs" / "sha256").mkdir(parents=True)
    big = bytes(range(256)) * (48 * 1024)  # 12 MB: more than the kernel's buffers hold
    (repo / "blobs" / "sha256" / "big").write_bytes(big)
    (repo / "small").write_bytes(b"still here")
    with otakit_serve(repo, tmp_path, "--send-timeout", "0.5") as (url, stderr):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", urlsplit(url).port))
        with s:
            s.sendall(b"GET /blobs/sha256/big HTTP/1.1\r\nHost: x\r\n\r\n")
            assert request(url, "/small")[::2] == (200, b"still here")
            time.sleep(2)  # reading nothing, for four times the send timeout
            s.settimeout(20)
            got = 0
            with contextlib.suppress(ConnectionResetError):
                while chunk := s.recv(1 << 20):
                    got += len(chunk)
        assert 0 < got < len(big)  # closed, the body short: it must resume with a Range
    line = next(x for x in (tmp_path / "access.log").read_text().splitlines() if "/big" in x)
    assert " 200 " in line and int(line.split()[5]) < len(big), line
    assert "Traceback" not in stderr.read_text()
