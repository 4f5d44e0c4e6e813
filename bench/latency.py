"""Benchmark: the door lock's button-to-bolt latency during a whole update, against the lock alone.

On the simulated board (the real example app, the real agent, a 1.4 MB image served at 256 KB/s
so the update lasts several seconds), a separate process presses the button about every 50 ms;
see `otakit.sim.latency`. Reports p50/p99 with no update running (baseline) and during check,
download, read-back verify and install, and the p99 ratio (update ÷ baseline). Goal: p99 ≤ 100 ms
on the unix port. The lock polls its button every 20 ms, so the baseline is about 10-30 ms.

Run: ``.venv/bin/python -m bench.latency [--write-docs]``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

from bench import write_section
from otakit.appimage import make_app_image
from otakit.sim.lab import Lab
from otakit.sim.latency import measure

GOAL_MS = 100
SIZE = 1_400_000
RATE = 256 * 1024


def run() -> dict[str, float]:
    """One measurement; the summary dict."""
    with tempfile.TemporaryDirectory(prefix="otakit-bench-") as tmp, Lab(Path(tmp)) as lab:
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        lab.flash(make_app_image("1.0.0", size=SIZE))
        lab.faults.rate = RATE
        lat, _ = measure(lab, base=60)
        return lat.summary()


HEADING = "Door lock latency during an update"


def section(s: dict[str, float]) -> str:
    """The docs/performance.md section."""
    ok = "meets" if s["p99_update_ms"] <= GOAL_MS else "misses"
    return (f"## {HEADING}\n\n"
            f"`.venv/bin/python -m bench.latency` ({datetime.date.today()}): button press → "
            f"bolt toggle on the simulated board, a press about every 50 ms, 1.4 MB update "
            f"served at {RATE // 1024} KB/s.\n\n"
            f"| | presses | p50 | p99 |\n|---|---|---|---|\n"
            f"| lock alone (baseline) | {s['presses_baseline']} | {s['p50_baseline_ms']:.1f} ms "
            f"| {s['p99_baseline_ms']:.1f} ms |\n"
            f"| during check, download, verify, install | {s['presses_update']} | "
            f"{s['p50_update_ms']:.1f} ms | {s['p99_update_ms']:.1f} ms |\n\n"
            f"p99 ratio update ÷ baseline: **{s['p99_ratio']:.2f}**; worst press "
            f"{s['max_update_ms']:.1f} ms. The p99 {ok} the {GOAL_MS} ms goal. Inside the measured "
            f"window but not yielding: `set_boot()` (one call) and the manifest signature "
            f"check; on a board, flash erase stalls are longer than here.\n")


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and optionally update docs/performance.md."""
    ap = argparse.ArgumentParser(prog="python -m bench.latency")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    s = run()
    text = section(s)
    print(text)
    if args.write_docs:
        write_section(HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
