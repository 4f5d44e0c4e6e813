"""Benchmark of the agent against a peer: glenn20's micropython-esp32-ota update loop.

Both compiled to .mpy, on the same simulated board, loopback server and 1.4 MB image, in one
device process, interleaved rounds: the agent's ``install()`` (resume point erased first, so a
fresh download), then the peer's ``OTA(verify=True).from_firmware_file(url, sha, length)`` and
``close()`` (download through ``requests``, SHA-256 on receive, read-back SHA-256 pass,
``set_boot``). The bench fails unless every agent round reports ``resumed_from == 0`` and the
server's access log shows every payload request delivering the whole image. Figures: agent time
÷ peer time (≤ 1.0: the agent is no slower), and, with the server paced at 2 MB/s (a link, not
the CPU, setting the pace), bare loop ÷ agent and bare loop ÷ peer.

The peer is not part of this repository and never copied into it: point ``--peer-dir`` at a
checkout of https://github.com/glenn20/micropython-esp32-ota (its ``mip/ota`` package is compiled
into the run's temporary board directory as ``peerota``). Without it, or when the directory does
not hold that package, the bench prints why and skips (under ``make bench``, set
``$OTAKIT_PEER_DIR``). The ESP32 port gives the peer two things the unix port lacks, stood in for here in Python: ``io.BufferedWriter`` (C on the board, so the
stand-in makes the peer slightly slower than on a board) and the ``flashbdev`` module (only its
name is used by the loop).

Run: ``.venv/bin/python -m bench.peer --peer-dir DIR [--rounds N] [--write-docs]`` (``--peer-dir``
defaults to ``$OTAKIT_PEER_DIR``).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench import HeapScan, write_section
from bench.agent import DEVICE_LIB, run_rounds, script_min_heap, speed_lab
from otakit.appimage import make_app_image
from otakit.sim.lab import Lab
from otakit.mpy import compile_to_mpy

PEER_FILES = ("__init__.py", "update.py", "blockdev_writer.py", "status.py", "rollback.py")
PACED = 2_000_000  # bytes per second
SPEED_GOAL, PACED_GOAL = 1.0, 0.95

# The ESP32 port's io.BufferedWriter (extmod/modio.c there): whole buffers to the raw stream,
# what is left on flush().
_IO_STANDIN = """\
import io as _io
IOBase = _io.IOBase
BytesIO = _io.BytesIO
StringIO = _io.StringIO
open = _io.open


class BufferedWriter:
    def __init__(self, raw, size):
        self.raw = raw
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.n = 0

    def write(self, data):
        size = len(data)
        src = memoryview(data)
        i = 0
        while i < size:
            k = min(len(self.buf) - self.n, size - i)
            self.mv[self.n:self.n + k] = src[i:i + k]
            self.n += k
            i += k
            if self.n == len(self.buf):
                self.raw.write(self.buf)
                self.n = 0
        return size

    def flush(self):
        if self.n:
            self.raw.write(self.mv[:self.n])
            self.n = 0
"""

# The ESP32 port's frozen flashbdev module: the peer's status module imports its name.
_FLASHBDEV_STANDIN = "bdev = None\n"

# The peer's whole update alone, for its heap figure (the lab's settings give url and blob).
PEER_ONLY = """\
import json, sys
import _peer_io
sys.modules["io"] = _peer_io
from peerota.update import OTA
cfg = json.load(open("ota_config.json"))
o = OTA(verify=True, verbose=False, reboot=False)
o.from_firmware_file(cfg["url"] + "/" + cfg["blob"], PEER_SHA, PEER_LENGTH)
o.close()
print("PEER_INSTALLED")
"""

PEER_LIB = DEVICE_LIB + """\
import sys, ota
import _peer_io
_real_io = sys.modules.get("io")
sys.modules["io"] = _peer_io  # the peer's modules bind the ESP32-like io at import
from peerota.update import OTA
if _real_io is not None:
    sys.modules["io"] = _real_io
else:
    del sys.modules["io"]

def peer():
    o = OTA(verify=True, verbose=False, reboot=False)
    o.from_firmware_file(cfg["url"] + "/" + path, PEER_SHA, PEER_LENGTH)
    o.close()
    return True

agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"]))
offer = agent.check_sync()
"""

SIDE_BY_SIDE = PEER_LIB + """\
for r in range(ROUNDS):
    t_agent, ok, resumed = agent_round(agent, offer)
    t_peer = timed(peer)[0]
    print("PEER", t_agent, t_peer, ok, resumed)
"""

PACED_RUN = PEER_LIB + """\
for r in range(ROUNDS):
    t_bare = timed(bare, False)[0]
    t_agent, ok, resumed = agent_round(agent, offer)
    t_peer = timed(peer)[0]
    print("PACED", t_bare, t_agent, t_peer, ok, resumed)
"""


def peer_package(peer_dir: Path | None) -> tuple[Path | None, str]:
    """The peer's ``ota`` package directory in a checkout, or None and why not."""
    if peer_dir is None:
        return None, "no --peer-dir given (a checkout of glenn20/micropython-esp32-ota)"
    pkg = peer_dir / "mip" / "ota"
    missing = [f for f in PEER_FILES[1:4] if not (pkg / f).is_file()]
    if missing:
        return None, f"{peer_dir} is not a checkout of micropython-esp32-ota: " \
                     f"no {', '.join('mip/ota/' + f for f in missing)}"
    return pkg, ""


def _install_peer(pkg: Path, device_dir: Path, work: Path) -> None:
    # The peer's package as .mpy under the name peerota (the agent's package is ota), and the
    # stand-ins for what the ESP32 port provides in C.
    compile_to_mpy([pkg / f for f in PEER_FILES if (pkg / f).is_file()], device_dir / "peerota")
    if not (pkg / "__init__.py").is_file():
        init = work / "__init__.py"
        init.write_text("")
        compile_to_mpy([init], device_dir / "peerota")
    for name, text in (("_peer_io", _IO_STANDIN), ("flashbdev", _FLASHBDEV_STANDIN)):
        src = work / f"{name}.py"
        src.write_text(text)
        compile_to_mpy([src], device_dir)


def _fill(text: str, data: bytes) -> str:
    return text.replace("PEER_SHA", repr(hashlib.sha256(data).hexdigest())) \
        .replace("PEER_LENGTH", str(len(data)))


def peer_min_heap(pkg: Path, *, frozen: bool = False, size: int = 1_000_000) -> HeapScan:
    """The smallest heap (KB) from which the peer's loop installs a ``size``-byte image at
    every 1 KB step up to the scan's top, each try on a freshly flashed board."""
    with tempfile.TemporaryDirectory() as d, Lab(Path(d), frozen=frozen) as lab:
        _install_peer(pkg, lab.device_dir, lab.work)
        pub = lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
        blob = pub.payload_path.relative_to(lab.repo.root).as_posix()
        old = make_app_image("1.0.0", size=64 * 1024)
        (lab.work / "peer_only.py").write_text(_fill(PEER_ONLY, pub.payload_path.read_bytes()))
        return script_min_heap(lab, lab.work / "peer_only.py", "PEER_INSTALLED", old, blob)


def measure(pkg: Path, rounds: int, size: int = 1_400_000) -> dict[str, object]:
    """Median microseconds: agent and peer side by side; bare, agent and peer paced."""
    with tempfile.TemporaryDirectory() as d:
        lab, payload = speed_lab(d, size)
        try:
            _install_peer(pkg, lab.device_dir, lab.work)
            data = payload.read_bytes()

            def script(text: str) -> str:
                return _fill(text, data)

            side = run_rounds(lab, script(SIDE_BY_SIDE), rounds,
                              r"^PEER (\d+) (\d+) (True|False) (-?\d+)$", 2)
            lab.faults.rate = PACED
            try:
                paced = run_rounds(lab, script(PACED_RUN), rounds,
                                   r"^PACED (\d+) (\d+) (\d+) (True|False) (-?\d+)$", 3)
            finally:
                lab.faults.rate = None
        finally:
            lab.__exit__(None, None, None)
    for rows in (side, paced):
        if any(r[-2] != "True" or r[-1] != "0" for r in rows):
            raise RuntimeError(f"an agent round failed or resumed: {rows}")

    def med(rows: list[tuple[str, ...]], i: int) -> float:
        return float(statistics.median(int(r[i]) for r in rows))

    return {"agent_us": med(side, 0), "peer_us": med(side, 1),
            "ratios": [int(r[0]) / int(r[1]) for r in side],  # type: ignore[dict-item]
            "paced_bare_us": med(paced, 0), "paced_agent_us": med(paced, 1),
            "paced_peer_us": med(paced, 2), "size": len(data),
            "heap": peer_min_heap(pkg), "heap_frozen": peer_min_heap(pkg, frozen=True)}


def render(fig: dict[str, object], rounds: int, command: str) -> str:
    """The docs section from ``measure``'s figures."""
    agent, peer = float(fig["agent_us"]), float(fig["peer_us"])  # type: ignore[arg-type]
    ratios = [float(r) for r in fig["ratios"]]  # type: ignore[union-attr]
    bare, p_agent, p_peer = (float(fig[k]) for k in  # type: ignore[arg-type]
                             ("paced_bare_us", "paced_agent_us", "paced_peer_us"))
    mb = int(fig["size"]) / 1e6  # type: ignore[call-overload]
    heap, frozen = fig["heap"], fig["heap_frozen"]
    assert isinstance(heap, HeapScan) and isinstance(frozen, HeapScan)
    date = datetime.date.today().isoformat()
    return f"""## Agent against glenn20's micropython-esp32-ota

The agent's whole install against the update loop of
[glenn20/micropython-esp32-ota](https://github.com/glenn20/micropython-esp32-ota) (`OTA(verify=True)`:
download through `requests`, SHA-256 on receive, a read-back SHA-256 pass, `set_boot`), both
compiled to `.mpy`, on the same simulated board, loopback server and {mb:.1f} MB image, in one
device process, {rounds} interleaved rounds, each a fresh full download (the agent's resume point
erased first; checked in the server's access log). The agent also checks the signed manifest's
hash, board, floor and resume state and arms the trial boot; the peer checks a SHA-256 it is
given. The ESP32 port's C `io.BufferedWriter`, which the peer uses, is a Python stand-in on the
unix port, which slows the peer a little against a board.

| what | agent | peer | agent ÷ peer |
|---|---|---|---|
| whole update, loopback (median) | {agent / 1000:.1f} ms | {peer / 1000:.1f} ms | **{agent / peer:.2f}** (rounds: {min(ratios):.2f}–{max(ratios):.2f}; goal ≤ {SPEED_GOAL}) |

The agent runs with telemetry on, as it ships; a successful install posts no report: its events
wait in NVS for the first report after the reboot (docs/fleet.md), so the rounds hold no request
the peer does not make.

With the server paced at {PACED / 1e6:.0f} MB/s (a link sets the pace, as on a board), against the
bare loop (socket → 4 KB buffer → `writeblocks`, no checks) in the same rounds:

| what | time (median) | bare ÷ this |
|---|---|---|
| bare loop | {bare / 1000:.1f} ms | 1.00 |
| the agent's `install()` | {p_agent / 1000:.1f} ms | **{bare / p_agent:.2f}** (goal ≥ {PACED_GOAL}) |
| the peer's loop | {p_peer / 1000:.1f} ms | {bare / p_peer:.2f} |

The peer's own whole-update heap (1,000,000 B image, the smallest `-X heapsize` from which every
1 KB step up to the top of the scan completes its loop; compare the agent's in "Whole update
(agent)"): **{heap.lowest} KB** with its code loaded from `.mpy`, **{frozen.lowest} KB** in the
simulator's frozen-code mode ({heap.note()}; frozen: {frozen.note()}).

Measured {date} with `{command}` (DIR: a checkout of micropython-esp32-ota; the bench skips
with a reason without one).
"""


def main(argv: list[str] | None = None) -> int:
    """Measure and print; with --write-docs also update docs/performance.md. Skips (exit 0,
    the reason on stderr) without a usable --peer-dir."""
    ap = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    env = os.environ.get("OTAKIT_PEER_DIR")
    ap.add_argument("--peer-dir", type=Path, default=Path(env) if env else None,
                    help="a checkout of glenn20/micropython-esp32-ota (default: "
                         "$OTAKIT_PEER_DIR)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args(argv)
    pkg, why = peer_package(args.peer_dir)
    if pkg is None:
        print(f"bench.peer: skipped: {why}", file=sys.stderr)
        return 0
    command = ".venv/bin/python -m bench.peer --peer-dir DIR" + \
        ("" if args.rounds == 15 else f" --rounds {args.rounds}") + " --write-docs"
    text = render(measure(pkg, args.rounds), args.rounds, command)
    if args.write_docs:
        write_section("Agent against glenn20's micropython-esp32-ota", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
