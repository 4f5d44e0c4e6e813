"""The load benchmark, bounded: 100 simulated devices check and download at once against
`otakit serve` and against nginx over the same repository (loopback; the full 1,000-device run
is `make bench`, see docs/performance.md)."""

from __future__ import annotations

import pytest

from otakit.loadgen import report, run_load
from otakit.nginx import nginx_binary


@pytest.mark.skipif(nginx_binary() is None, reason="Debian's nginx is not installed "
                    "(scripts/install-system-deps.sh installs it as root)")
def test_hundred_devices_at_once_against_otakit_serve_and_nginx() -> None:
    ours, nginx = run_load(devices=100, size=256 * 1024, limit_s=60)
    print(report(ours, nginx))
    assert ours.errors == [] and nginx.errors == []
    assert len(ours.latencies_ms) == len(nginx.latencies_ms) == 100
    assert ours.payload_bytes == nginx.payload_bytes > 100 * 256 * 1024
    # a loose floor for a shared 2-core CI machine; the goal (bench.fleet_load.GOAL) is checked
    # by make bench
    assert ours.throughput >= 0.2 * nginx.throughput
