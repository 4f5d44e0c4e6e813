"""Benchmark of resumable encodings (docs/format.md §2.2): what the chunks cost in bytes on the
real images, and how much an interrupted encoded download fetches again.

Size: for each pair, the representation `otakit release` publishes (a DEFLATE stream fully
flushed at every chunk, `otakit.payloads.deflate_chunked`; a patch cut into segments,
`delta_chunked`) ÷ the same encoding as one unchunked stream at the same window
(`deflate`, `encode_delta`), minus 1.

Fetched again: on the simulated board, the device checks and installs the pair's new image as
that representation while the server drops the connection one byte before the end of a chunk
(the most a drop inside that chunk can cost); the device checks again and resumes. Bytes fetched
again = all payload bytes the server sent (its access log) − the representation's size. Each
pair and encoding is cut in its largest chunk after the first, its middle chunk and its last
one; the figure is the most of those. The bench fails unless every resumed install ends with the
new image in the slot and ``set_boot`` done.

Pairs: the real ones of `bench.payloads` (../shared/firmware; without it, a synthetic pair).

Run: ``.venv/bin/python -m bench.resumable [--firmware-dir DIR] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import payload_requests, write_section
from bench.payloads import FIRMWARE, pairs
from otakit.payloads import deflate, deflate_chunked, delta_chunked, encode_delta
from otakit.sim.lab import Lab

WBITS = 12
SIZE_GOAL, REFETCH_GOAL = 0.02, 65536
ENCODINGS = ("deflate", "delta")


@dataclass(frozen=True)
class Row:
    """One pair and encoding: sizes, and the cuts tried with the bytes each fetched again."""

    pair: str
    encoding: str
    image: int
    chunked: int
    single: int
    chunks: int
    largest_chunk: int
    refetched: dict[int, int]  # chunk index cut -> bytes fetched again

    @property
    def cost(self) -> float:
        return self.chunked / self.single - 1


def sizes(old: bytes, new: bytes, encoding: str) -> tuple[int, int, tuple[int, ...]]:
    """(chunked size, one-stream size, chunk lengths) of ``new`` as ``encoding``."""
    if encoding == "deflate":
        enc, single = deflate_chunked(new, WBITS), len(deflate(new, WBITS))
    else:
        enc, single = delta_chunked(old, new, WBITS), len(encode_delta(old, new, WBITS))
    return len(enc.data), single, enc.lengths


def refetch(old: bytes, new: bytes, encoding: str, cuts: list[int] | None = None
            ) -> tuple[dict[int, int], tuple[int, ...]]:
    """Bytes fetched again after the connection drops one byte before the end of chunk k, for
    each k in ``cuts`` (default: the largest chunk after the first, the middle one, the last).
    Returns that and the published chunk lengths."""
    out: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as d, Lab(Path(d)) as lab:
        kw: dict[str, object] = ({"deflate": True} if encoding == "deflate"
                                 else {"delta_bases": (old,)})
        lab.flash(old)
        pub = lab.publish(new, "1.1.0", 2, wbits=WBITS, **kw)
        (rep,) = [r for r in pub.body.payloads if r.encoding == encoding]
        lengths = tuple(rep.chunks or ())
        n = len(lengths)
        if cuts is None:
            cuts = sorted({max(range(1, n), key=lambda i: lengths[i]) if n > 1 else 0,
                           n // 2, n - 1})
        flashed = lab.flash_path.read_bytes()
        for k in cuts:
            lab.flash_path.write_bytes(flashed)
            lab.access_log.seek(0)
            lab.access_log.truncate()
            lab.faults.drop_after = sum(lengths[:k + 1]) - 1
            lab.faults.only = "/blobs/"
            first = lab.install_once("256K")
            lab.faults.clear()
            if "INSTALLED" in first.log:
                raise RuntimeError(f"chunk {k}: the install was not interrupted:\n"
                                   + first.log[-2000:])
            again = lab.install_once("256K")
            if "INSTALLED" not in again.log:
                raise RuntimeError(f"chunk {k}: the resumed install failed:\n"
                                   + again.log[-3000:])
            sent = [(st, n) for _, st, n in payload_requests(lab.access_log.getvalue())]
            if sent[0] != (200, sum(lengths[:k + 1]) - 1):
                raise RuntimeError(f"chunk {k}: the first request was not cut as planned: {sent}")
            out[k] = sum(b for _, b in sent) - rep.size
    return out, lengths


def measure(firmware: Path = FIRMWARE) -> list[Row]:
    """Every pair and encoding."""
    rows = []
    for name, (old, new) in pairs(firmware).items():
        for encoding in ENCODINGS:
            chunked, single, lengths = sizes(old, new, encoding)
            again, published = refetch(old, new, encoding)
            if sum(published) != chunked:
                raise RuntimeError(f"{name} {encoding}: the release published {sum(published)} "
                                   f"bytes, the encoder makes {chunked}")
            row = Row(name, encoding, len(new), chunked, single, len(published), max(published),
                      again)
            rows.append(row)
            print(row, flush=True)
    return rows


def render(rows: list[Row], command: str) -> str:
    """The docs section from ``measure``'s rows."""
    lines = [f"| {r.pair} | {r.encoding}, wbits {WBITS} | {r.chunked:,} B | {r.single:,} B | "
             f"**{100 * r.cost:+.2f} %** | {r.chunks} | {r.largest_chunk:,} B | "
             f"{', '.join(f'{k}: {b:,} B' for k, b in sorted(r.refetched.items()))} | "
             f"**{max(r.refetched.values()):,} B** |" for r in rows]
    worst_cost = max(r.cost for r in rows)
    worst = max(max(r.refetched.values()) for r in rows)
    return f"""## Resumable encodings

A deflate or delta representation is cut into chunks of at most 64 KB encoded (docs/format.md
§2.2), so that an interrupted download resumes at the start of the chunk it was in. Size: the
published representation against the same encoding as one unchunked stream at the same window.
Fetched again: on the simulated board, the server drops the connection one byte before the end
of a chunk (the largest after the first, the middle one, the last), the device checks again and
resumes; the bytes fetched again are all payload bytes the server sent (its access log) less the
representation's size. Every resumed install ended with the image in the slot and `set_boot`
done.

| pair | encoding | chunked | one stream | size cost (goal ≤ {100 * SIZE_GOAL:.0f} %) | chunks | largest chunk | fetched again, by chunk cut | most fetched again (goal ≤ {REFETCH_GOAL:,} B) |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(lines)}

Largest size cost: **{100 * worst_cost:+.2f} %**; the most fetched again after an interrupted
encoded download: **{worst:,} B** (before chunking: the whole representation).

Measured {datetime.date.today().isoformat()} with `{command}`.
"""


def main(argv: list[str] | None = None) -> int:
    """Measure, print the section, and with --write-docs write it; exit 1 above a goal."""
    ap = argparse.ArgumentParser(prog="python -m bench.resumable", description=__doc__)
    ap.add_argument("--firmware-dir", type=Path, default=FIRMWARE,
                    help="where the real MicroPython images are (default: ../shared/firmware)")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    command = (".venv/bin/python -m bench.resumable"
               + ("" if args.firmware_dir == FIRMWARE else f" --firmware-dir {args.firmware_dir}")
               + " --write-docs")
    rows = measure(args.firmware_dir)
    text = render(rows, command)
    print(text)
    if args.write_docs:
        write_section("Resumable encodings", text)
    ok = all(r.cost <= SIZE_GOAL and max(r.refetched.values()) <= REFETCH_GOAL for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
