"""Benchmarks: measured figures, as ratios against a baseline in the same run.

Shared here: `write_section` (every bench writes its docs/performance.md section through it),
`heap_scan` (smallest heap in 1 KB steps) and `blob_downloads` (the server's access log says
whether a timed round downloaded the whole payload).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from otakit.paths import DOCS_DIR


PERFORMANCE = DOCS_DIR / "performance.md"


def write_section(heading: str, text: str, doc: Path = PERFORMANCE) -> None:
    """Replace the ``## heading`` section of ``doc`` with ``text`` (which starts with it), or
    append it when the document has no such section yet. Every bench module writes its section
    of docs/performance.md through here."""
    current = doc.read_text() if doc.exists() else "# Performance\n"
    pattern = re.compile(rf"## {re.escape(heading)}\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(current):
        current = pattern.sub(lambda _: text.rstrip("\n") + "\n", current)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    doc.write_text(current if current.endswith("\n") else current + "\n")


@dataclass
class HeapScan:
    """The result of `heap_scan`: ``lowest`` KB is the smallest heap from which every 1 KB step up
    to ``top`` passed; ``stray`` are heaps below it that passed all the same (the outcome is not
    monotonic in the heap size: where the allocations fall changes with it)."""

    lowest: int
    top: int
    bottom: int
    stray: list[int] = field(default_factory=list)

    def note(self) -> str:
        """One sentence on how the figure was found, for the docs."""
        text = (f"every 1 KB step from {self.lowest} to {self.top} KB passed, "
                f"{self.lowest - 1} KB failed (scanned down to {self.bottom} KB)")
        if self.stray:
            text += "; " + ", ".join(str(k) for k in self.stray) + \
                " KB passed too, below that failure"
        return text


def heap_scan(ok: Callable[[int], bool], lo: int, hi: int, *, above: int = 4,
              below: int = 3) -> HeapScan:
    """The smallest heap (KB) from which every 1 KB step up to the top passes ``ok``.

    A bisection between ``lo`` and ``hi`` finds a candidate (it can miss: a run may pass at 57,
    fail at 59 and pass at 60); then every step from ``above`` KB over the candidate down to the
    first failure, and ``below`` more steps under it, is run. Each heap is run once.

    Raises:
        RuntimeError: ``ok(hi)`` fails.
    """
    seen: dict[int, bool] = {}

    def run(k: int) -> bool:
        if k not in seen:
            seen[k] = ok(k)
        return seen[k]

    if not run(hi):
        raise RuntimeError(f"fails even at {hi} KB")
    a, b = lo, hi
    while a < b:
        mid = (a + b) // 2
        a, b = (a, mid) if run(mid) else (mid + 1, b)
    top = min(hi, b + above)
    k, fail = top, None
    while k >= lo:
        if not run(k) and fail is None:
            fail = k
        if fail is not None and k <= fail - below:
            break
        k -= 1
    bottom = max(k, lo)
    lowest = top
    while lowest - 1 >= bottom and seen[lowest - 1]:
        lowest -= 1
    stray = sorted(j for j in range(bottom, lowest) if seen.get(j))
    return HeapScan(lowest, top, bottom, stray)


def payload_requests(access_log: str) -> list[tuple[str, int, int]]:
    """(path, status, body bytes sent) of every GET of a payload under ``/blobs/`` in a server
    access log (`otakit.server.AccessLog` lines), in order."""
    out = []
    for line in access_log.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[2] == "GET" and parts[3].startswith("/blobs/"):
            out.append((parts[3], int(parts[4]), int(parts[5])))
    return out


def blob_downloads(access_log: str, root: Path) -> tuple[int, int]:
    """(requests for a payload under ``/blobs/`` that delivered the whole file, requests that
    delivered less) in a server access log of the repository at ``root``."""
    full = short = 0
    for path, _, sent in payload_requests(access_log):
        if sent == (root / path.lstrip("/")).stat().st_size:
            full += 1
        else:
            short += 1
    return full, short
