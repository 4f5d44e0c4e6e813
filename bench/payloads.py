"""Benchmark of payload encodings: bytes on the air, device install time and heap.

Pairs (read from ../shared/firmware; skipped with a reason when it is absent):
- real: MicroPython v1.21.0 -> v1.25.0 OTA app images (different IDF versions);
- rebuild: v1.25.0 -> the same image with one frozen module changed (2 KB replacing 1.5 KB in
  the flash rodata, pointers behind it moved, as a relink would: `rebuild_with_module`).

Size: each encoding's payload ÷ the new image. Time: the agent's ``install()`` of each encoding
on the simulated board (download over loopback, decode, write, read back, ``set_boot``) ÷ the raw
install's time in the same round, median over rounds; the encodings take turns within a round.
Every install is on a freshly flashed board (no resume point, no cached state), and the bench
fails unless the server's access log shows the payload downloaded whole. Heap: the smallest ``-X heapsize`` from which every 1 KB step
up to the top of the scan completes a whole update (`bench.heap_scan`), with the agent loaded
from .mpy and, for raw and the wbits-12 encodings, in the simulator's frozen-code mode.

Run: ``.venv/bin/python -m bench.payloads [--rounds N] [--firmware-dir DIR] [--write-docs]``.
For iterating on one figure: ``--heap-only [--pair N] [--encoding LABEL ...] [--frozen]`` prints
only the heap scans of those rows (pair N: its index in the list above, from 0; by default every
pair and encoding, both modes) and writes nothing.
"""

from __future__ import annotations

import argparse
import datetime
import re
import statistics
import sys
import tempfile
import zlib
from pathlib import Path

from otakit.appimage import make_app_image, rebuild_with_module
from bench import HeapScan, blob_downloads, heap_scan, write_section
from otakit.paths import ROOT
from otakit.payloads import deflate_chunked, delta_chunked
from otakit.sim.lab import Lab

# ../shared/firmware beside the checkout (or beside a parent directory, for a git worktree)
FIRMWARE = next((p / "shared" / "firmware" for p in ROOT.parents
                 if (p / "shared" / "firmware").is_dir()), ROOT.parent / "shared" / "firmware")
V121 = "ESP32_GENERIC-OTA-v1.21.0.app.bin"
V125 = "ESP32_GENERIC-OTA-20250415-v1.25.0.app.bin"

TIMED = """\
import ota, json, time
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], max_wbits=15))
offer = agent.check_sync()
t = time.ticks_us()
ok = agent.install_sync(offer)
print("TIME", time.ticks_diff(time.ticks_us(), t), ok, agent.status().get("resumed_from", 0))
"""

# the encodings whose heap is also measured in the frozen-code mode
FROZEN_ROWS = ("raw", "deflate, wbits 12", "delta, wbits 12")

# encoding label -> ReleaseRequest keywords (the base is filled in)
ENCODINGS = {
    "raw": {},
    "deflate, wbits 12": {"deflate": True, "wbits": 12},
    "deflate, wbits 15": {"deflate": True, "wbits": 15},
    "delta, wbits 12": {"delta": True, "wbits": 12},
}


def _kw(label: str, old: bytes) -> dict[str, object]:
    kw = dict(ENCODINGS[label])
    if kw.pop("delta", False):
        kw["delta_bases"] = (old,)
    return kw


def _lab(d: str, old: bytes, new: bytes, label: str, frozen: bool = False) -> Lab:
    lab = Lab(Path(d), frozen=frozen)
    lab.__enter__()
    lab.publish(new, "2.0.0", 2, **_kw(label, old))  # type: ignore[arg-type]
    return lab


def _timed_round(lab: Lab, old: bytes, label: str) -> int:
    # One install on a freshly flashed board; microseconds. Fails unless it downloaded one whole
    # payload (server's access log) and did not resume.
    lab.flash(old)
    lab.access_log.seek(0)
    lab.access_log.truncate()
    r = lab.boot(script=lab.work / "timed.py", heapsize="256K", max_boots=1, timeout=900)
    m = re.search(r"^TIME (\d+) True (-?\d+)$", r.log, re.M)
    if not m or int(m.group(2)) > 0:
        raise RuntimeError(f"{label}: install failed or resumed:\n{r.log[-3000:]}")
    full, short = blob_downloads(lab.access_log.getvalue(), lab.repo.root)
    if full != 1 or short:
        raise RuntimeError(f"{label}: not one whole download: {full} whole, {short} partial "
                           "payload requests")
    return int(m.group(1))


def install_times(old: bytes, new: bytes, rounds: int) -> dict[str, float]:
    """Per encoding, the median over rounds of its install() time ÷ the raw install's time in
    the same round. The encodings take turns within each round (interleaved), each install on
    a freshly flashed board that downloads the whole payload."""
    with tempfile.TemporaryDirectory() as d:
        labs = {label: _lab(f"{d}/{i}", old, new, label) for i, label in enumerate(ENCODINGS)}
        try:
            for lab in labs.values():
                (lab.work / "timed.py").write_text(TIMED)
            ratios: dict[str, list[float]] = {label: [] for label in ENCODINGS}
            for _ in range(rounds):
                t = {label: _timed_round(lab, old, label) for label, lab in labs.items()}
                for label in ENCODINGS:
                    ratios[label].append(t[label] / t["raw"])
            return {label: statistics.median(v) for label, v in ratios.items()}
        finally:
            for lab in labs.values():
                lab.__exit__(None, None, None)


def min_heap(old: bytes, new: bytes, label: str, *, frozen: bool = False, lo: int = 16,
             hi: int = 192) -> HeapScan:
    """The smallest heap (KB) from which the agent completes the update with ``label`` at
    every 1 KB step up to the scan's top (`bench.heap_scan`)."""
    with tempfile.TemporaryDirectory() as d:
        lab = _lab(d, old, new, label, frozen)
        try:
            def ok(k: int) -> bool:
                lab.flash(old)
                return "INSTALLED" in lab.install_once(f"{k}K", max_wbits=15).log

            return heap_scan(ok, lo, hi)
        finally:
            lab.__exit__(None, None, None)


def sizes(old: bytes, new: bytes) -> dict[str, float]:
    """Payload size ÷ image size for each encoding as a release publishes it (chunked: a resume
    fetches at most one chunk again), and zlib level 9 at wbits 15 as reference."""
    n = len(new)
    return {"raw": 1.0,
            "deflate, wbits 12": len(deflate_chunked(new, 12).data) / n,
            "deflate, wbits 15": len(deflate_chunked(new, 15).data) / n,
            "delta, wbits 12": len(delta_chunked(old, new, 12).data) / n,
            "zlib -9 (reference)": len(zlib.compress(new, 9)) / n}


def pairs(firmware: Path = FIRMWARE) -> dict[str, tuple[bytes, bytes]]:
    """The benchmark pairs; the real ones only when ``firmware`` has the images."""
    out = {}
    if (firmware / V121).is_file() and (firmware / V125).is_file():
        v121, v125 = (firmware / V121).read_bytes(), (firmware / V125).read_bytes()
        out["v1.21.0 → v1.25.0 (real)"] = (v121, v125)
        out["v1.25.0 → v1.25.0 with one frozen module changed"] = (v125, rebuild_with_module(v125))
    else:
        print(f"skipping the real pairs: {firmware} does not hold {V121} and {V125}",
              file=sys.stderr)
        old = make_app_image("1.0.0", size=1_400_000, seed="fw", compressible=True)
        out["synthetic 1.4 MB, version string changed"] = (
            old, make_app_image("1.1.0", size=1_400_000, seed="fw", compressible=True))
    return out


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def measure(rounds: int, firmware: Path = FIRMWARE) -> list[dict[str, object]]:
    """One row of figures per (pair, encoding): size ratio, time ratio, heap scans."""
    rows: list[dict[str, object]] = []
    for name, (old, new) in pairs(firmware).items():
        ratio = sizes(old, new)
        times = install_times(old, new, rounds)
        for label in ENCODINGS:
            row: dict[str, object] = {
                "pair": name, "encoding": label, "size": ratio[label], "time": times[label],
                "heap": min_heap(old, new, label),
                "frozen": min_heap(old, new, label, frozen=True) if label in FROZEN_ROWS else None}
            rows.append(row)
            print(row, flush=True)
        rows.append({"pair": name, "encoding": "zlib level 9, wbits 15 (reference, not a device "
                     "encoding)", "size": ratio["zlib -9 (reference)"], "time": None,
                     "heap": None, "frozen": None, "near_zlib": ratio["deflate, wbits 12"] /
                     ratio["zlib -9 (reference)"] - 1})
    return rows


def render(rows: list[dict[str, object]], rounds: int, command: str) -> str:
    """The docs section from ``measure``'s rows."""
    lines, notes = [], []
    near_zlib: list[float] = []
    heaps: dict[str, list[int]] = {}
    for r in rows:
        heap, frozen = r["heap"], r["frozen"]
        if "near_zlib" in r:
            near_zlib.append(float(r["near_zlib"]))  # type: ignore[arg-type]
        for key, scan in (("mpy", heap), ("frozen", frozen)):
            if isinstance(scan, HeapScan):
                heaps.setdefault(f"{r['encoding']}|{key}", []).append(scan.lowest)
                notes.append(f"{r['pair']}, {r['encoding']}, {key}: {scan.note()}")
        lines.append(
            f"| {r['pair']} | {r['encoding']} | {float(r['size']):.4f} | "  # type: ignore[arg-type]
            f"{'' if r['time'] is None else format(float(r['time']), '.2f')} | "  # type: ignore[arg-type]
            f"{f'{heap.lowest} KB' if isinstance(heap, HeapScan) else ''} | "
            f"{f'{frozen.lowest} KB' if isinstance(frozen, HeapScan) else ''} |")

    def span(key: str) -> str:
        return _span(heaps[key]) if key in heaps else "—"

    date = datetime.date.today().isoformat()
    return f"""## Payload encodings (deflate, delta)

Bytes on the air ÷ the new image's size for each representation a release can offer
(docs/format.md §2.2), the agent's `install()` time ÷ a raw install's time in the same round
(median of {rounds} rounds, the encodings taking turns within each; every install on a freshly
flashed board that downloads the whole payload — checked in the server's access log: loopback
download, decode, write, read back, `set_boot`), and the smallest `-X heapsize` from which the whole update (check, verify, install)
completes at every 1 KB step up to the top of the scan, with the agent loaded from `.mpy` (a
development board) and in the simulator's frozen-code mode (the agent executed in place from a
ROMFS image, a product board; docs/simulator.md). The device's `max_wbits` is 15 so that every
row can run. The real pair's images are the official ESP32_GENERIC-OTA v1.21.0 and v1.25.0 app
images (not part of a checkout; without them the benchmark measures a synthetic pair); the rebuild is
`otakit.appimage.rebuild_with_module(v1.25.0)`: 2 KB of new frozen-module bytes in place of
1.5 KB in the flash rodata, and every pointer behind the change moved, as a relink would.

| pair | encoding | size ÷ image | install time ÷ raw | min heap, `.mpy` | min heap, frozen |
|---|---|---|---|---|---|
{chr(10).join(lines)}

Measured {date} with `{command}`.

Reading the table: deflate at wbits 12 is within {max(near_zlib or [0]) * 100:.1f} % of zlib
level 9 at wbits 15 on every pair (the encoder is zlib level 9 itself; wbits 15 is that reference
exactly) and needs a 4 KB window instead of 32 KB, which the heap columns reflect. The sizes are
of the representations as a release publishes them, chunked so that a resume fetches at most
one chunk again (the section "Resumable encodings" gives what the chunks cost). Install times on loopback are CPU-bound and move between
runs on a shared machine: decoding costs CPU that loopback does not pay back, while on a board the
radio sets the pace and the bytes on the air are the figure that counts. Whole-update heap, raw:
{span("raw|mpy")} KB `.mpy`, {span("raw|frozen")} KB frozen; deflate at wbits 12:
{span("deflate, wbits 12|mpy")} / {span("deflate, wbits 12|frozen")} KB; delta at wbits 12:
{span("delta, wbits 12|mpy")} / {span("delta, wbits 12|frozen")} KB (goals: ≤ 64 KB `.mpy`,
≤ 40 KB frozen). The encoded installs add to a raw one the decoder's 1 KB input buffer (which the
`BytesIO` it pulls from reads in place), its window (2**wbits bytes) and state (~1.4 KB), and
the `ota.encoded`/`ota.delta` code (its bytecode only in the `.mpy` column; in the frozen mode
their module and function objects); a delta reads its base into the block buffer's free room (no
buffer of its own). They are made before the HTTP client (`ota.encplan.source`, whose module is
forgotten before the connection), so the window finds room in one piece. What is live at the
encoded install's peaks: `bench.heap_peaks --encoding deflate` (or `delta`).
The raw rows are the whole-update figure of `bench.agent` (docs/agent.md) within 1 KB: another
image and version string, and nothing of `ota.encoded` is loaded for a release without
`payloads`.

How each heap figure was found (a bisection, then 1 KB steps; whether an update fits is not
monotonic in the heap size):

{chr(10).join("- " + n for n in notes)}
"""


def heap_only(firmware: Path, pair: int | None, labels: list[str] | None,
              frozen: bool | None) -> None:
    """Print the heap scans of the chosen rows only (a quick check while iterating)."""
    for i, (name, (old, new)) in enumerate(pairs(firmware).items()):
        if pair is not None and i != pair:
            continue
        for label in labels or ENCODINGS:
            for fz in (False, True) if frozen is None else (frozen,):
                if fz and label not in FROZEN_ROWS:
                    continue
                scan = min_heap(old, new, label, frozen=fz)
                print(f"{name} | {label} | {'frozen' if fz else 'mpy'} | {scan.lowest} KB | "
                      f"{scan.note()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Measure and print; with --write-docs also update docs/performance.md."""
    ap = argparse.ArgumentParser(prog="python -m bench.payloads", description=__doc__)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--firmware-dir", type=Path, default=FIRMWARE,
                    help=f"where the real images are (default {FIRMWARE})")
    ap.add_argument("--heap-only", action="store_true",
                    help="only the heap scans (of --pair, --encoding, --frozen/--mpy); no docs")
    ap.add_argument("--pair", type=int, help="with --heap-only: this pair only (index from 0)")
    ap.add_argument("--encoding", action="append", choices=list(ENCODINGS),
                    help="with --heap-only: this encoding only (repeatable)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--frozen", action="store_true", default=None,
                      help="with --heap-only: the frozen-code mode only")
    mode.add_argument("--mpy", dest="frozen", action="store_false",
                      help="with --heap-only: the .mpy mode only")
    args = ap.parse_args(argv)
    if args.heap_only:
        heap_only(args.firmware_dir, args.pair, args.encoding, args.frozen)
        return 0
    command = ".venv/bin/python -m bench.payloads" + \
        ("" if args.rounds == 5 else f" --rounds {args.rounds}") + \
        ("" if args.firmware_dir == FIRMWARE else f" --firmware-dir {args.firmware_dir}") + \
        " --write-docs"
    text = render(measure(args.rounds, args.firmware_dir), args.rounds, command)
    if args.write_docs:
        write_section("Payload encodings (deflate, delta)", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
