"""Benchmark of payload encodings: bytes on the air, device install time and heap.

Pairs (read from ../shared/firmware; skipped with a reason when it is absent):
- real: MicroPython v1.21.0 -> v1.25.0 OTA app images (different IDF versions);
- rebuild: v1.25.0 -> the same image with one frozen module changed (2 KB replacing 1.5 KB in
  the flash rodata, pointers behind it moved, as a relink would: `rebuild_with_module`).

Size: each encoding's payload ÷ the new image. Time: the agent's ``install()`` of each encoding
on the simulated board (download over loopback, decode, write, read back, ``set_boot``), median
of rounds in one device process per encoding, ÷ the raw install's time in the same bench run.
Heap: the smallest ``-X heapsize`` (1 KB steps, agent loaded from .mpy) of a whole update.

Run: ``.venv/bin/python -m bench.payloads [--write-docs]``.
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
from bench import write_section
from otakit.paths import ROOT
from otakit.payloads import deflate, encode_delta
from otakit.sim.lab import Lab

FIRMWARE = ROOT.parent / "shared" / "firmware"
V121 = "ESP32_GENERIC-OTA-v1.21.0.app.bin"
V125 = "ESP32_GENERIC-OTA-20250415-v1.25.0.app.bin"

TIMED = """\
import ota, json, time
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], max_wbits=15))
offer = agent.check_sync()
for r in range(ROUNDS):
    t = time.ticks_us()
    ok = agent.install_sync(offer)
    print("TIME", time.ticks_diff(time.ticks_us(), t), ok)
"""

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


def _lab(d: str, old: bytes, new: bytes, label: str) -> Lab:
    lab = Lab(Path(d))
    lab.__enter__()
    lab.publish(new, "2.0.0", 2, **_kw(label, old))  # type: ignore[arg-type]
    return lab


def install_time(old: bytes, new: bytes, label: str, rounds: int) -> float:
    """Median microseconds of the agent's install() of ``label`` in one device process."""
    with tempfile.TemporaryDirectory() as d:
        lab = _lab(d, old, new, label)
        try:
            lab.flash(old)
            (lab.work / "timed.py").write_text(TIMED.replace("ROUNDS", str(rounds)))
            r = lab.boot(script=lab.work / "timed.py", heapsize="256K", max_boots=1, timeout=900)
            times = [int(t) for t in re.findall(r"^TIME (\d+) True$", r.log, re.M)]
            if len(times) != rounds:
                raise RuntimeError(f"{label}: install failed:\n{r.log[-3000:]}")
            return statistics.median(times)
        finally:
            lab.__exit__(None, None, None)


def min_heap(old: bytes, new: bytes, label: str, lo: int = 40, hi: int = 160) -> int:
    """Smallest heap (KB) at which the agent completes the update with ``label``."""
    with tempfile.TemporaryDirectory() as d:
        lab = _lab(d, old, new, label)
        try:
            def ok(k: int) -> bool:
                lab.flash(old)
                return "INSTALLED" in lab.install_once(f"{k}K", max_wbits=15).log

            if not ok(hi):
                raise RuntimeError(f"{label}: no install even at {hi}K")
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
            return hi
        finally:
            lab.__exit__(None, None, None)


def sizes(old: bytes, new: bytes) -> dict[str, float]:
    """Payload size ÷ image size for each encoding, and zlib level 9 at wbits 15 as reference."""
    n = len(new)
    return {"raw": 1.0,
            "deflate, wbits 12": len(deflate(new, 12)) / n,
            "deflate, wbits 15": len(deflate(new, 15)) / n,
            "delta, wbits 12": len(encode_delta(old, new, 12)) / n,
            "zlib -9 (reference)": len(zlib.compress(new, 9)) / n}


def pairs() -> dict[str, tuple[bytes, bytes]]:
    """The benchmark pairs; the real ones only when ../shared/firmware is there."""
    out = {}
    if (FIRMWARE / V121).is_file() and (FIRMWARE / V125).is_file():
        v121, v125 = (FIRMWARE / V121).read_bytes(), (FIRMWARE / V125).read_bytes()
        out["v1.21.0 → v1.25.0 (real)"] = (v121, v125)
        out["v1.25.0 → v1.25.0 with one frozen module changed"] = (v125, rebuild_with_module(v125))
    else:
        print(f"skipping the real pairs: {FIRMWARE} is absent", file=sys.stderr)
        old = make_app_image("1.0.0", size=1_400_000, seed="fw", compressible=True)
        out["synthetic 1.4 MB, version string changed"] = (
            old, make_app_image("1.1.0", size=1_400_000, seed="fw", compressible=True))
    return out


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def report(write_docs: bool, rounds: int) -> str:
    rows = []
    near_zlib: list[float] = []  # deflate wbits 12 ÷ zlib -9 wbits 15, per pair
    extra: list[int] = []  # heap of an encoded install - heap of the raw one, KB
    raw_heap: list[int] = []
    for name, (old, new) in pairs().items():
        ratio = sizes(old, new)
        raw_us = install_time(old, new, "raw", rounds)
        heaps = {}
        for label in ENCODINGS:
            t = raw_us if label == "raw" else install_time(old, new, label, rounds)
            heaps[label] = min_heap(old, new, label)
            rows.append(f"| {name} | {label} | {ratio[label]:.4f} | {t / raw_us:.2f} | "
                        f"{heaps[label]} KB |")
            print(rows[-1], flush=True)
        rows.append(f"| {name} | zlib level 9, wbits 15 (reference, not a device encoding) | "
                    f"{ratio['zlib -9 (reference)']:.4f} | | |")
        near_zlib.append(ratio["deflate, wbits 12"] / ratio["zlib -9 (reference)"] - 1)
        raw_heap.append(heaps["raw"])
        extra += [heaps[k] - heaps["raw"] for k in ("deflate, wbits 12", "delta, wbits 12")]
    date = datetime.date.today().isoformat()
    text = f"""## Payload encodings (deflate, delta)

Bytes on the air ÷ the new image's size for each representation a release can offer
(docs/format.md §2.2), the agent's `install()` time ÷ a raw install's time (the same image, the
same bench run, median of {rounds} rounds in one device process each: loopback download, decode,
write, read back, `set_boot`), and the smallest `-X heapsize` at which the whole update (check,
verify, install) completes with the agent loaded from `.mpy` (1 KB steps; the device's
`max_wbits` set to 15 so that every row can run). The real pair's images come from
`../shared/firmware/`; the rebuild is `otakit.appimage.rebuild_with_module(v1.25.0)`: 2 KB of
new frozen-module bytes in place of 1.5 KB in the flash rodata, and every pointer behind the
change moved, as a relink would.

| pair | encoding | size ÷ image | install time ÷ raw | min heap |
|---|---|---|---|---|
{chr(10).join(rows)}

Measured {date} with `.venv/bin/python -m bench.payloads --write-docs`.

Reading the table: deflate at wbits 12 is within {max(near_zlib) * 100:.1f} % of zlib level 9 at
wbits 15 on every pair (the encoder is zlib level 9 itself; wbits 15 is that reference exactly)
and needs a 4 KB window instead of 32 KB, which the min-heap column reflects. Install times on
loopback are CPU-bound and move by up to 50 % between runs on a shared machine: decoding costs
CPU that loopback does not pay back, while on a board the radio sets the pace and the bytes on
the air are the figure that counts. The goal of a whole update in ≤ 48 KB is not met with any
encoding: raw needs {_span(raw_heap)} KB here, deflate and delta at wbits 12 {_span(extra)} KB
more (a 2 KB staging buffer and the 2 KB `BytesIO` the decoder
reads from, the decoder's window and state, a 1 KB base cache for delta, and the
`ota.encoded`/`ota.delta` code, which on the unix port loads into the heap while on a board it
is frozen).
"""
    if write_docs:
        write_section("Payload encodings (deflate, delta)", text)
    return text



def main(argv: list[str] | None = None) -> int:
    """Measure and print; with --write-docs also update docs/performance.md."""
    ap = argparse.ArgumentParser(prog="python -m bench.payloads", description=__doc__)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print(report(args.write_docs, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
