"""Benchmark of the example app's heap: the door lock with the agent, through a whole update.

The app (firmware/doorlock.py: lock loop, status LED, local interface off, update loop) runs on
the simulated board as `otakit sim run` runs it, checks, downloads and installs a 256 KB release,
reboots into it and confirms it after its health check. The figure is the smallest
``-X heapsize`` from which every 1 KB step up to the top of the scan completes all of that
(`bench.heap_scan`), each try on a freshly flashed board, with the app and the agent loaded from
``.mpy`` (a development board) and in the simulator's frozen-code mode (a product board). The
whole update must show in the log: both boots, the agent's download notice, the trial's
confirmation, and no ``MemoryError`` anywhere (the app keeps running after a failed update, so
an update that ran out of heap is a failure here even when the app survives it).

Run: ``.venv/bin/python -m bench.app [--write-docs]``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

from bench import HeapScan, heap_scan, write_section
from otakit.appimage import make_app_image
from otakit.sim.lab import Lab

SIZE = 256 * 1024
DEV_BOARD_K = 112  # `otakit sim run`'s default heap (docs/simulator.md "Heap settings")


def _updates(lab: Lab, heap_k: int) -> bool:
    lab.flash(make_app_image("1.0.0", size=SIZE))
    r = lab.boot(heapsize=f"{heap_k}K")
    return (not r.error and "MemoryError" not in r.log
            and [b.version for b in r.boots] == ["1.0.0", "1.1.0"]
            and "app: notice downloaded" in r.log and "app: boot confirmed ota_1" in r.log)


def min_heap(*, frozen: bool, lo: int = 48, hi: int = 160) -> HeapScan:
    """The smallest heap (KB) from which the example app completes a whole update."""
    with tempfile.TemporaryDirectory() as d, Lab(Path(d), frozen=frozen) as lab:
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        return heap_scan(lambda k: _updates(lab, k), lo, hi)


def render(mpy: HeapScan, frozen: HeapScan, command: str) -> str:
    """The docs section."""
    return f"""## Example app (door lock) through a whole update

The smallest `-X heapsize` from which the example app (firmware/doorlock.py: lock loop, status
LED and the agent's update loop side by side) completes a whole update of a
{SIZE // 1024} KB release at every 1 KB step up to the top of the scan: check, download,
install, reboot, health check, confirm, with no `MemoryError` anywhere in the log. Each try on
a freshly flashed board; 64-bit unix port, upper bounds for a board.

| code | min heap | `otakit sim run`'s default |
|---|---|---|
| `.mpy` (a development board) | **{mpy.lowest} KB** | {DEV_BOARD_K} KB |
| frozen (a product board) | **{frozen.lowest} KB** | {DEV_BOARD_K} KB |

How each figure was found: `.mpy`: {mpy.note()}; frozen: {frozen.note()}.

Measured {datetime.date.today().isoformat()} with `{command}`.
"""


def main(argv: list[str] | None = None) -> int:
    """Measure both settings, print the section, and with --write-docs write it. Exit 1 when
    the app does not fit `otakit sim run`'s default heap."""
    ap = argparse.ArgumentParser(prog="python -m bench.app", description=__doc__)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    mpy, frozen = min_heap(frozen=False), min_heap(frozen=True)
    text = render(mpy, frozen, ".venv/bin/python -m bench.app --write-docs")
    print(text)
    if args.write_docs:
        write_section("Example app (door lock) through a whole update", text)
    return 0 if max(mpy.lowest, frozen.lowest) <= DEV_BOARD_K else 1


if __name__ == "__main__":
    sys.exit(main())
