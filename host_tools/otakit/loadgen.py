"""A load generator of simulated devices, for the fleet load benchmark (``bench.fleet_load``)
and its bounded test: N devices check and download at once against `otakit serve` and against
nginx serving the same repository (loopback only, bounded in count and time).

Each device does what the agent does, with the agent's request shapes: one connection per
request (``Connection: close``), ``GET <product>/<board>/<channel>/manifest``, then ``GET`` of the
payload, reading every byte and checking the length. A device's *check latency* is the time from
connecting to the last byte of the manifest. Throughput is payload bytes delivered to all devices
÷ the wall time of the whole cohort. Errors: any status other than 200, a short or long body, a
connection error, or a device not done within the time limit.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from otakit.appimage import make_app_image
from otakit.boards import load_board
from otakit.keys import generate_key
from otakit.nginx import NginxServer, free_port
from otakit.repo import ReleaseRequest, Repository

MANIFEST = "doorlock/esp32/stable/manifest"


@dataclass
class LoadResult:
    """One cohort against one server."""

    server: str
    devices: int
    seconds: float = 0.0
    payload_bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Payload bytes per second over the whole cohort."""
        return self.payload_bytes / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        """The q-quantile (0..1) of check latency, ms."""
        if not self.latencies_ms:
            return float("nan")
        s = sorted(self.latencies_ms)
        return s[min(len(s) - 1, int(q * len(s)))]


async def _get(host: str, port: int, path: str) -> tuple[int, int]:
    """One agent-style GET; returns (status, body bytes) after reading it all."""
    r, w = await asyncio.open_connection(host, port)
    try:
        w.write(f"GET /{path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: otakit-load\r\n"
                "Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode())
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        want = int(m[1]) if m else -1
        n = 0
        while chunk := await r.read(65536):
            n += len(chunk)
        if want >= 0 and n != want:
            raise ValueError(f"body {n} bytes, Content-Length {want}")
        return status, n
    finally:
        w.close()
        try:
            await w.wait_closed()
        except OSError:
            pass


async def _device(host: str, port: int, blob: str, size: int, res: LoadResult) -> None:
    t0 = time.perf_counter()
    try:
        status, _ = await _get(host, port, MANIFEST)
        res.latencies_ms.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise ValueError(f"manifest status {status}")
        status, n = await _get(host, port, blob)
        if status != 200 or n != size:
            raise ValueError(f"payload status {status}, {n} of {size} bytes")
        res.payload_bytes += n
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        res.errors.append(f"{type(e).__name__}: {e}")


async def cohort(name: str, url: str, blob: str, size: int, devices: int,
                 limit_s: float) -> LoadResult:
    """``devices`` devices at once against ``url``; bounded by ``limit_s`` seconds."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    res = LoadResult(name, devices)
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(_device(host, int(port), blob, size, res))
             for _ in range(devices)]
    done, pending = await asyncio.wait(tasks, timeout=limit_s)
    for t in pending:
        t.cancel()
    res.errors += ["not done within the time limit"] * len(pending)
    res.seconds = time.perf_counter() - t0
    return res


def _repo(root: Path, size: int) -> tuple[str, int]:
    repo = Repository(root)
    res = repo.publish(ReleaseRequest("doorlock", load_board("esp32"), "stable", "1.1.0", 2,
                                      support_end="2031-12-31"),
                       make_app_image("1.1.0", size=size), generate_key("ed25519"))
    return res.body.payload.path, res.body.payload.size


class OtakitServe:
    """``otakit serve`` as its own process (as deployed), on a free loopback port."""

    def __init__(self, repo: Path, log: Path) -> None:
        self.repo, self.log, self.proc = repo, log, None

    def __enter__(self) -> str:
        port = free_port()
        self.proc = subprocess.Popen(  # type: ignore[assignment]
            # every simulated device comes from 127.0.0.1: no per-client rate or connection
            # limit here
            [sys.executable, "-m", "otakit", "serve", "--repo", str(self.repo), "--port",
             str(port), "--access-log", str(self.log), "--rate-limit", "0",
             "--max-client-connections", "0", "--token-file",
             str(self.log.with_name("admin-token"))], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        line = self.proc.stdout.readline().decode()  # type: ignore[union-attr]
        if "serving" not in line:
            raise RuntimeError("otakit serve did not start: " + line)
        return f"http://127.0.0.1:{port}/"

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()  # type: ignore[union-attr]
        self.proc.wait(10)  # type: ignore[union-attr]


def run_load(devices: int, size: int, limit_s: float = 120.0,
             rounds: int = 1) -> tuple[LoadResult, LoadResult]:
    """Both servers over one repository, cohorts interleaved (the first server alternates
    from round to round, so a load that drifts during the run favours neither); returns
    (otakit, nginx) with the rounds merged."""
    with tempfile.TemporaryDirectory(prefix="otakit-load-") as d:
        work = Path(d)
        blob, size = _repo(work / "repo", size)
        merged = {"otakit serve": LoadResult("otakit serve", 0),
                  "nginx": LoadResult("nginx", 0)}
        with NginxServer(work / "repo", work / "nginx") as nurl, \
                OtakitServe(work / "repo", work / "otakit.log") as ourl:
            for i in range(rounds):
                order = (("nginx", nurl), ("otakit serve", ourl))
                for name, url in order[::-1] if i % 2 else order:
                    r = asyncio.run(cohort(name, url, blob, size, devices, limit_s))
                    m = merged[name]
                    m.devices = r.devices  # per cohort; the rounds add up below
                    m.seconds += r.seconds
                    m.payload_bytes += r.payload_bytes
                    m.latencies_ms += r.latencies_ms
                    m.errors += r.errors
        return merged["otakit serve"], merged["nginx"]


def report(ours: LoadResult, nginx: LoadResult) -> str:
    """One table row per server, as Markdown."""
    lines = ["| server | devices | payload MB/s | check p50 | check p99 | errors |",
             "|---|---|---|---|---|---|"]
    for r in (ours, nginx):
        lines.append(f"| {r.server} | {r.devices} | {r.throughput / 1e6:.1f} | "
                     f"{r.pct(0.5):.0f} ms | {r.pct(0.99):.0f} ms | {len(r.errors)} |")
    return "\n".join(lines)


__all__ = ["LoadResult", "OtakitServe", "cohort", "report", "run_load"]
