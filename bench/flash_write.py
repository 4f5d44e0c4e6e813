"""Benchmark of the simulated flash: 2-arg ``writeblocks`` vs a plain file, same process.

On the simulated board (a real boot through `otakit.sim.runner`), one ``micropython`` process
writes a 1.5 MB image into ota_1 through ``Partition.writeblocks(blk, buf)`` in 4 KB blocks
(erase + program, as the agent does), and writes the same bytes to a plain host file in 4 KB
writes, interleaved over several rounds. The figure is the ratio of the medians (target <= 3).

Run: ``.venv/bin/python -m bench.flash_write [--rounds N] [--write-docs]``. ``--write-docs``
replaces the "Simulated flash" section of docs/performance.md with the figures and command.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
from pathlib import Path

from bench import PERFORMANCE, write_section
from otakit.appimage import make_app_image
from otakit.sim.flash import create_flash
from otakit.sim.runner import run

IMAGE_SIZE = 1536 * 1024
TARGET = 3.0
DEVICE = """
import esp32, os, time
P = esp32.Partition
part = P("ota_1")
buf = bytearray(4096)
for i in range(4096):
    buf[i] = (i * 7) & 0xFF
N = %d
path = os.getenv("BENCH_FILE")
for r in range(%d):
    t = time.ticks_us()
    for blk in range(N):
        part.writeblocks(blk, buf)
    flash_us = time.ticks_diff(time.ticks_us(), t)
    t = time.ticks_us()
    with open(path, "wb") as f:
        for blk in range(N):
            f.write(buf)
    file_us = time.ticks_diff(time.ticks_us(), t)
    os.remove(path)
    print("BENCH", flash_us, file_us)
"""


def measure(rounds: int) -> tuple[float, float]:
    """Median microseconds of (flash writeblocks, plain file) for 1.5 MB."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        flash = create_flash("esp32", make_app_image("1.0.0"), tmp / "flash.img")
        script = tmp / "bench.py"
        script.write_text(DEVICE % (IMAGE_SIZE // 4096, rounds))
        (tmp / "app").mkdir()
        r = run(flash, script=script, app_dir=tmp / "app", env={"BENCH_FILE": str(tmp / "f")},
                timeout=600)
        if r.error or r.ended != "finished":
            raise SystemExit(f"benchmark failed:\n{r.log}")
    pairs = [tuple(int(x) for x in ln.split()[1:]) for ln in r.log.splitlines()
             if ln.startswith("BENCH ")]
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs))


def write_docs(flash_us: float, file_us: float, rounds: int, doc: Path = PERFORMANCE) -> None:
    """Replace (or add) the "Simulated flash" section of docs/performance.md."""
    ratio = flash_us / file_us
    section = (
        "## Simulated flash\n\n"
        "Writing a 1.5 MB image into an app slot of the simulated board through 2-argument "
        "`Partition.writeblocks(blk, buf)` in 4 KB blocks (each an erase plus a NOR program of "
        "the flash image file, counted for power cuts), against writing the same bytes to a "
        "plain file from MicroPython in 4 KB writes; one `micropython` process, interleaved, "
        f"median of {rounds} rounds.\n\n"
        "| writeblocks, 1.5 MB (median) | plain file, 1.5 MB (median) | ratio | target |\n"
        "|---|---|---|---|\n"
        f"| {flash_us / 1000:.1f} ms | {file_us / 1000:.1f} ms | {ratio:.2f} "
        f"| ≤ {TARGET:g} |\n\n"
        f"Measured {datetime.date.today().isoformat()} with "
        "`.venv/bin/python -m bench.flash_write --write-docs`.\n")
    write_section("Simulated flash", section, doc)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (optionally record) the ratio; exit 1 above target."""
    ap = argparse.ArgumentParser(prog="python -m bench.flash_write", description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    flash_us, file_us = measure(args.rounds)
    ratio = flash_us / file_us
    print(f"writeblocks 1.5 MB: {flash_us / 1000:.1f} ms   plain file: {file_us / 1000:.1f} ms   "
          f"ratio {ratio:.2f} (target <= {TARGET:g})")
    if args.write_docs:
        write_docs(flash_us, file_us, args.rounds)
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
