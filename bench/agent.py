"""Benchmark of a whole update by the agent on the simulated board: heap and throughput.

Heap: the smallest ``-X heapsize`` (1 KB steps, the agent loaded from .mpy, the heap budget
enforced by the simulator as on a board) at which a whole update — fetch and verify the manifest,
stream the payload into the spare slot, read it back, ``set_boot`` — completes, for a 1 MB image
on the 4 MB esp32 layout and a 3 MB image on the 8 MB layout. Memory must not grow with the image.

Throughput: in one device process, a bare loop (plain socket GET of the payload, read into a 4 KB
buffer, 2-argument ``writeblocks`` per block) and the agent's ``install()`` (the same download plus
hashing, progress persistence, header check, read-back and ``set_boot``), interleaved, same
server, same simulated flash. The figure is bare time ÷ agent time (1.0 = no overhead).

Run: ``.venv/bin/python -m bench.agent [--write-docs]``.
"""

from __future__ import annotations

import argparse
import datetime
import re
import statistics
import sys
import tempfile
from pathlib import Path

from otakit.appimage import make_app_image
from bench import write_section
from otakit.sim.lab import Lab

HEAP_GOAL, HEAP_LIMIT, GROWTH_LIMIT, SPEED_GOAL = 48, 64, 1, 0.8

SPEED = """\
import asyncio, esp32, hashlib, json, socket, time, ota
cfg = json.load(open("ota_config.json"))
host, port = cfg["url"].split("//")[1].split(":")
path = cfg["blob"]
part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
buf = bytearray(4096)
mv = memoryview(buf)

def bare(check):
    # socket -> 4 KB buffer -> writeblocks; with check, also the two SHA-256 passes the agent
    # must make (while receiving, and over the slot read back from flash)
    h = hashlib.sha256()
    s = socket.socket()
    s.connect(socket.getaddrinfo(host, int(port))[0][-1])
    s.send(("GET /%s HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n" % path).encode())
    while s.readline() not in (b"\\r\\n", b""):
        pass
    blk = 0
    while True:
        n = 0
        while n < 4096:
            k = s.readinto(mv[n:])
            if not k:
                break
            n += k
        if not n:
            break
        if check:
            h.update(mv[:n])
        part.writeblocks(blk, buf)
        blk += 1
    s.close()
    if check:
        h = hashlib.sha256()
        for b in range(blk):
            part.readblocks(b, buf)
            h.update(buf)

def timed(f, *a):
    t = time.ticks_us()
    r = f(*a)
    return time.ticks_diff(time.ticks_us(), t), r

agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"]))
offer = agent.check_sync()
for r in range(ROUNDS):
    t_bare = timed(bare, False)[0]
    t_hashed = timed(bare, True)[0]
    t_agent, ok = timed(agent.install_sync, offer)
    print("SPEED", t_bare, t_hashed, t_agent, ok)
"""


def _installs(lab: Lab, old: bytes, heap_k: int) -> bool:
    lab.flash(old)
    return "INSTALLED" in lab.install_once(f"{heap_k}K").log


SIM_NAMES = 620  # names the simulator's pools hold before the device's (docs/simulator.md)


def device_names(board: str, size: int) -> int:
    """Names (qstrs) the device interned in a whole update: the simulator charges its pools as a
    board would when this is between 301 and 620."""
    with tempfile.TemporaryDirectory() as d, Lab(Path(d), board=board) as lab:
        lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
        lab.flash(make_app_image("1.0.0", size=64 * 1024))
        m = re.search(r"n_qstr=(\d+)", lab.install_once("256K").log)
        if not m:
            raise RuntimeError("no qstr_info in the install log")
        return int(m.group(1)) - SIM_NAMES


def min_heap(board: str, size: int, lo: int = 24, hi: int = 256) -> int:
    """Smallest heap (KB) at which the agent installs a ``size``-byte image on ``board``."""
    with tempfile.TemporaryDirectory() as d, Lab(Path(d), board=board) as lab:
        old = make_app_image("1.0.0", size=64 * 1024)
        lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
        if not _installs(lab, old, hi):
            raise RuntimeError(f"no install even at {hi}K")
        while lo < hi:
            mid = (lo + hi) // 2
            if _installs(lab, old, mid):
                hi = mid
            else:
                lo = mid + 1
        return hi


def throughput(size: int, rounds: int) -> tuple[float, float, float]:
    """Median microseconds of (bare loop, bare loop + both hash passes, agent install)."""
    with tempfile.TemporaryDirectory() as d, Lab(Path(d)) as lab:
        pub = lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
        blob = pub.payload_path.relative_to(lab.repo.root).as_posix()
        lab.flash(make_app_image("1.0.0", size=64 * 1024), blob=blob)
        (lab.work / "speed.py").write_text(SPEED.replace("ROUNDS", str(rounds)))
        result = lab.boot(script=lab.work / "speed.py", heapsize="256K", max_boots=1,
                          timeout=600)
        rows = re.findall(r"^SPEED (\d+) (\d+) (\d+) True$", result.log, re.M)
        if len(rows) != rounds:
            raise RuntimeError("throughput run failed:\n" + result.log[-3000:])
        return tuple(statistics.median(int(r[i]) for r in rows)  # type: ignore[return-value]
                     for i in range(3))


def report(write_docs: bool, rounds: int) -> str:
    small = min_heap("esp32", 1_000_000)
    large = min_heap("esp32-8mb", 3_000_000)
    names = device_names("esp32", 1_000_000)
    fair_pools = 300 < names <= SIM_NAMES
    bare_us, hashed_us, agent_us = throughput(1_400_000, rounds)
    speed, fair = bare_us / agent_us, hashed_us / agent_us
    date = datetime.date.today().isoformat()
    text = f"""## Whole update (agent)

The smallest `-X heapsize` at which the agent completes a whole update on the simulated board
(manifest fetch and signature check, payload streamed into the spare slot through one 4 KB buffer,
read back and hashed, `set_boot`), with the agent loaded from `.mpy` and the simulator holding the
device code to that budget. On the 64-bit unix port, loaded `.mpy` bytecode lives in the heap and
objects are larger than on the 32-bit ESP32, where the agent is frozen into flash: these figures
are an upper bound for a board.

| image | board layout | min heap | goal | limit |
|---|---|---|---|---|
| 1,000,000 B | esp32 (4 MB) | {small} KB | ≤ {HEAP_GOAL} KB | ≤ {HEAP_LIMIT} KB |
| 3,000,000 B | esp32-8mb (8 MB) | {large} KB | | |
| difference | | {large - small} KB | | ≤ {GROWTH_LIMIT} KB |

How the simulator charges the device (docs/simulator.md): it leaves the budget as one free
region, as on a board (its own boot no longer leaves it in holes), and it fills the qstr pools its
own ~300 names use, so the device's names start in a fresh 640-entry pool (about 7 KB here): a
board spends 620 entries on pools for 301-620 names. The agent interned **{names}** names in
this update, {"so the pool charge matches a board's within 20 entries" if fair_pools else
"OUTSIDE 301-620, so the pool charge differs from a board's (docs/simulator.md)"}.

Until 2026-11-28 this read 69-70 KB: the simulator charged the device pools sized by its own
names (a 640-entry pool on top of a 320-entry one), and left the budget scattered over the holes
of its own boot. The agent also kept its check code loaded during install and the manifest field
checks during the RSA arithmetic; each is now loaded only for its phase (`ota.check`,
`ota.fields`).

Throughput, 1.4 MB image, median of {rounds} interleaved rounds in one device process over the
same loopback server and simulated flash:

| what | time | bare ÷ this |
|---|---|---|
| bare loop: socket → 4 KB buffer → `writeblocks` | {bare_us / 1000:.1f} ms | 1.00 |
| bare loop plus the two SHA-256 passes the agent must make (while receiving; over the slot read back from flash) | {hashed_us / 1000:.1f} ms | {bare_us / hashed_us:.2f} |
| the agent's `install()`: the above through the asyncio HTTP client, progress saved to NVS after every 4 KB block, header checks, `set_boot()` | {agent_us / 1000:.1f} ms | **{speed:.2f}** |

The goal, bare ÷ agent ≥ {SPEED_GOAL}, is not met here: on loopback with a simulated flash the
bare loop is so fast that the two SHA-256 passes alone, which the agent cannot skip (the signed
hash is checked on the bytes received and again on the bytes read back), cost more than the whole
bare loop. Against the bare loop that makes the same two passes, the agent reaches
**{fair:.2f}**; most of the rest is `set_boot()` itself, which verifies the whole image once
more (ESP-IDF's `esp_image_verify`, modelled by the simulator), and the asyncio event loop.
On a board the radio and the flash, not the CPU, set the pace; that has not been measured here.

Measured {date} with `.venv/bin/python -m bench.agent --write-docs`.
"""
    if write_docs:
        write_section("Whole update (agent)", text)
    return text



def main(argv: list[str] | None = None) -> int:
    """Measure and print; with --write-docs also update docs/performance.md."""
    ap = argparse.ArgumentParser(prog="python -m bench.agent", description=__doc__)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print(report(args.write_docs, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
