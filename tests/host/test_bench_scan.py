"""The benches' shared measuring helpers (bench/__init__.py): the 1 KB heap scan and the access-log
check that a timed round downloaded the whole payload. Fast: no device runs."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from otakit.paths import ROOT


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("bench")


def test_heap_scan_reports_the_lowest_heap_from_which_every_step_passes(
        bench: ModuleType) -> None:
    # the case bisection misses: passes at 57-58, fails at 59, passes from 60 up
    tried: list[int] = []

    def ok(k: int) -> bool:
        tried.append(k)
        return k in (57, 58) or k >= 60

    scan = bench.heap_scan(ok, 16, 160)
    assert scan.lowest == 60 and 57 in scan.stray and 58 in scan.stray
    assert all(k in tried for k in range(scan.bottom, scan.top + 1))
    assert len(tried) == len(set(tried))  # each heap run once
    assert "every 1 KB step from 60" in scan.note() and "57, 58 KB passed too" in scan.note()


def test_heap_scan_of_a_monotonic_run_and_a_run_that_never_passes(bench: ModuleType) -> None:
    scan = bench.heap_scan(lambda k: k >= 45, 16, 160)
    assert (scan.lowest, scan.stray) == (45, []) and scan.top >= 45
    with pytest.raises(RuntimeError):
        bench.heap_scan(lambda k: False, 16, 160)


def test_blob_downloads_counts_whole_and_partial_payload_requests(bench: ModuleType,
                                                                  tmp_path: Path) -> None:
    blob = tmp_path / "blobs" / "sha256" / "ab"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"x" * 1000)
    log = ("2026-12-07T00:00:00Z 127.0.0.1 GET /doorlock/esp32/stable/manifest 200 900 1.0ms\n"
           "2026-12-07T00:00:00Z 127.0.0.1 GET /blobs/sha256/ab 200 1000 1.0ms\n"
           "2026-12-07T00:00:00Z 127.0.0.1 GET /blobs/sha256/ab 206 400 1.0ms\n"
           "2026-12-07T00:00:00Z 127.0.0.1 HEAD /blobs/sha256/ab 200 0 1.0ms\n")
    assert bench.blob_downloads(log, tmp_path) == (1, 1)
