"""Server hardening (docs/threat-model.md: malicious requests to the update server): only the
repository is served, admin endpoints need the token made at first start, request size and rate
limits, and no stack traces to clients."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from otakit.errors import OtakitError
from otakit.guard import RateLimiter, load_or_create_token
from otakit.server import serve_in_thread
from otakit.sim.faults import Faults

MANIFEST = b"OTAM manifest bytes"


def request(url: str, target: str, method: str = "GET", headers: dict[str, str] | None = None,
            body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    u = urlsplit(url)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {u.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in header_lines)}
    return int(status_line.split()[1]), hdrs, rest


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "door" / "esp32" / "stable").mkdir(parents=True)
    (root / "door" / "esp32" / "stable" / "manifest").write_bytes(MANIFEST)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"outside the repository")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    return root


@pytest.fixture
def token(tmp_path: Path) -> str:
    return load_or_create_token(tmp_path / "state" / "admin-token")[0]


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def url(repo: Path, token: str, faults: Faults) -> Iterator[str]:
    with serve_in_thread(repo, admin_token=token, middlewares=[faults.middleware]) as u:
        yield u


@pytest.mark.parametrize("target", [
    "/linkdir/secret",  # a symlinked directory that leaves the tree
    "/%2e%2e%2foutside/secret",
    "/door/esp32/%2E%2e/%2e%2E/%2e%2e/outside/secret",
    "/%2fetc%2fpasswd",  # an encoded absolute path
    "/door/esp32/stable/manifest/..",
])
def test_only_the_repository_is_served(url: str, target: str) -> None:
    status, _, body = request(url, target)
    assert status in (400, 404) and b"outside" not in body


def test_absolute_form_request_target_cannot_leave_the_repository(url: str) -> None:
    status, _, body = request(url, "http://evil.example/../../outside/secret")
    assert status in (400, 404) and b"outside" not in body


def test_token_is_generated_at_first_start_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "s" / "admin-token"
    t1, created = load_or_create_token(path)
    assert created and len(t1) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    t2, created2 = load_or_create_token(path)
    assert (t2, created2) == (t1, False)
    other = load_or_create_token(tmp_path / "t" / "admin-token")[0]
    assert other != t1  # no default credentials: every server makes its own
    os.chmod(path, 0o644)
    with pytest.raises(OtakitError) as e:
        load_or_create_token(path)
    assert e.value.reason == "BAD_TOKEN"


def test_admin_endpoint_needs_the_token(url: str, token: str) -> None:
    assert request(url, "/admin/status")[0] == 401
    assert request(url, "/admin/status", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert request(url, "/admin/status",
                   headers={"Authorization": f"Bearer {token}x"})[0] == 401
    assert request(url, "/admin/anything-else")[0] == 401  # no hint whether it exists
    status, _, body = request(url, "/admin/status",
                              headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["manifests"] == 1


def test_admin_endpoints_are_off_without_a_token(repo: Path) -> None:
    with serve_in_thread(repo) as u:
        assert request(u, "/admin/status", headers={"Authorization": "Bearer "})[0] == 401


def test_writes_are_refused_outside_admin(url: str) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, _, _ = request(url, "/door/esp32/stable/manifest", method=method, body=b"x")
        assert status == 405


def test_oversized_requests_are_refused(url: str, token: str) -> None:
    assert request(url, "/door/esp32/stable/manifest",
                   headers={"X-Big": "a" * 10000})[0] in (400, 431)
    assert request(url, "/" + "a" * 9000)[0] in (400, 414)
    status = request(url, "/admin/status", method="POST", body=b"x" * (65 * 1024),
                     headers={"Authorization": f"Bearer {token}"})[0]
    assert status in (405, 413)


def test_rate_limit_answers_429_with_retry_after(repo: Path) -> None:
    with serve_in_thread(repo, rate=RateLimiter(rate=1, burst=3)) as u:
        codes = [request(u, "/door/esp32/stable/manifest")[0] for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        assert int(request(u, "/door/esp32/stable/manifest")[1]["retry-after"]) >= 1


def test_rate_limiter_refills_and_bounds_its_memory() -> None:
    now = [0.0]
    rl = RateLimiter(rate=2, burst=2, max_clients=3, clock=lambda: now[0])
    assert [rl.allow("a") for _ in range(3)][:2] == [0, 0] and rl.allow("a") > 0
    now[0] += 1.0
    assert rl.allow("a") == 0
    for i in range(10):
        rl.allow(f"c{i}")
    assert len(rl._buckets) == 3  # noqa: SLF001


def test_an_unexpected_error_is_a_bare_500(url: str, faults: Faults) -> None:
    faults.raise_error = True
    status, _, body = request(url, "/door/esp32/stable/manifest")
    assert status == 500
    assert b"Traceback" not in body and b"RuntimeError" not in body and b".py" not in body
    assert b"must not see" not in body
