"""Benchmark of a whole update by the agent on the simulated board: heap and throughput.

Heap: the smallest ``-X heapsize`` from which every 1 KB step up to the top of the scan completes
a whole update — fetch and verify the manifest, stream the payload into the spare slot, read it
back, ``set_boot`` — with the simulator holding the device code to that budget (`bench.heap_scan`:
a bisection, then a 1 KB scan around it, since the outcome is not monotonic), and the boot after
it in the same heap: the trial confirmed and the telemetry report, which carries the install's
events, posted (it is best effort: without this check one that does not fit would be dropped
unseen, as it was up to 4 KB above the figure before 2026-12-07). Two settings
(docs/simulator.md): the agent loaded from ``.mpy`` (a development board) and the simulator's
frozen-code mode (agent and app executed in place from a ROMFS image, a product board), for a
1 MB image on the 4 MB esp32 layout, and in ``.mpy`` mode a 3 MB image on the 8 MB layout
(memory must not grow with the image). Each try is a freshly flashed board. Floors, in both
settings and scanned the same way: the simulator booting and running an empty main, and a bare
asyncio download loop with no checks (``BARE_ASYNC``), the least an asyncio-based agent needs.

Throughput: in one device process, a bare loop (plain socket GET of the payload, read into a 4 KB
buffer, 2-argument ``writeblocks`` per block), the same loop with the two SHA-256 passes, and the
agent's ``install()`` (the same download plus hashing, progress persistence, header check,
read-back and ``set_boot``), interleaved, same server, same simulated flash. Before every agent
round the device's resume point is forgotten (NVS ``d_id``/``d_off`` erased: the agent then
takes the payload as a new one and erases its progress records), so each round is a fresh
download; the bench fails unless every agent round reports ``resumed_from == 0`` and the server's
access log shows every payload request delivering the whole image. The figure is bare time ÷
agent time (1.0 = no overhead). ``--nvs-only`` measures and prints only the throughput rounds'
NVS paragraph (no heap scans).

Run: ``.venv/bin/python -m bench.agent [--rounds N] [--write-docs | --nvs-only]``.
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
from bench import HeapScan, blob_downloads, heap_scan, write_section
from otakit.mpy import compile_to_mpy
from otakit.sim.lab import Lab

HEAP_GOAL, FROZEN_GOAL, HEAP_LIMIT, GROWTH_LIMIT, SPEED_GOAL, NVS_GOAL = 48, 24, 64, 1, 0.8, 16

# What every bare loop starts from: the lab's server (host, port, the payload's path: the
# board's settings, `speed_lab`), the spare slot and one 4 KB buffer.
BARE_LIB = """\
import esp32, hashlib, json
cfg = json.load(open("ota_config.json"))
host, port = cfg["url"].split("//")[1].split(":")
path = cfg["blob"]
part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
buf = bytearray(4096)
mv = memoryview(buf)
req = ("GET /%s HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n" % path).encode()
"""

# Device-side helpers shared with bench.peer: the bare loop, a timer, and the erase of the
# agent's resume point that makes the next install a fresh download.
DEVICE_LIB = BARE_LIB + """\
import socket, time

def bare(check):
    # socket -> 4 KB buffer -> writeblocks; with check, also the two SHA-256 passes the agent
    # must make (while receiving, and over the slot read back from flash)
    h = hashlib.sha256()
    s = socket.socket()
    s.connect(socket.getaddrinfo(host, int(port))[0][-1])
    s.send(req)
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

NVS = esp32.NVS("otakit")

def fresh():
    # the device has never seen this payload: no resume point (ota.state: without d_id the
    # agent takes it as a new payload and erases its progress records)
    for k in ("d_id", "d_off"):
        try:
            NVS.erase_key(k)
        except OSError:
            pass
    NVS.commit()

# NVS records the agent writes, counted where the simulator appends one to its flash
# (_simnvs._append): as in ESP-IDF, a set to the value already stored and an erase of a key that
# is not there write nothing. [all records, resume-point (d_off) records]
import _simnvs
NVS_WRITES = [0, 0]
NVS_OTHER = []  # the keys of the other records, in order
_append = _simnvs._append

def _counted(ns, key, t, value):
    NVS_WRITES[0] += 1
    if key == "d_off":
        NVS_WRITES[1] += 1
    else:
        NVS_OTHER.append(key)
    return _append(ns, key, t, value)

_simnvs._append = _counted

def agent_round(agent, offer):
    # one install from fresh device state; NVS_WRITES then holds that install's records
    fresh()
    NVS_WRITES[0] = NVS_WRITES[1] = 0
    NVS_OTHER.clear()
    t, ok = timed(agent.install_sync, offer)
    return t, ok, agent.status().get("resumed_from", -1)
"""

# The floor of any asyncio-based agent: the module ``bareloop`` (compiled like the agent, so
# frozen in the frozen-code mode) streams the payload over asyncio.open_connection into the
# 4 KB buffer, SHA-256 on receive, 2-argument ``writeblocks`` per block, then ``set_boot``; no
# manifest, no signature, no read-back, no progress.
BARE_ASYNC = BARE_LIB + """\
import asyncio

async def _load():
    r, w = await asyncio.open_connection(host, int(port))
    w.write(req)
    await w.drain()
    while (await r.readline()) not in (b"\\r\\n", b""):
        pass
    h = hashlib.sha256()
    blk = 0
    while True:
        n = 0
        while n < 4096:
            k = await r.readinto(mv[n:])
            if not k:
                break
            n += k
        if not n:
            break
        h.update(mv[:n])
        part.writeblocks(blk, buf)
        blk += 1
    w.close()
    await w.wait_closed()
    h.digest()
    part.set_boot()
    return blk

def run():
    return asyncio.run(_load())
"""

# The floors' scripts: the board boots (boot.py) and runs an empty main; or the bare loop.
FLOORS = {"empty": 'print("FLOOR_DONE")\n',
          "bare": 'import bareloop\nprint("FLOOR_DONE", bareloop.run())\n'}

SPEED = DEVICE_LIB + """\
import ota
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"]))
offer = agent.check_sync()
for r in range(ROUNDS):
    t_bare = timed(bare, False)[0]
    t_hashed = timed(bare, True)[0]
    t_agent, ok, resumed = agent_round(agent, offer)
    print("SPEED", t_bare, t_hashed, t_agent, ok, resumed, NVS_WRITES[0], NVS_WRITES[1],
          ",".join(NVS_OTHER))
"""


def _installs(lab: Lab, old: bytes, heap_k: int) -> bool:
    lab.flash(old)
    lab.access_log.seek(0)
    lab.access_log.truncate()
    if "INSTALLED" not in lab.install_once(f"{heap_k}K").log:
        return False
    lab.access_log.seek(0)
    lab.access_log.truncate()
    (lab.work / "after.py").write_text(AFTER_REBOOT)
    after = lab.boot(script=lab.work / "after.py", heapsize=f"{heap_k}K", max_boots=1)
    return "BOOT confirmed" in after.log and reported(lab)


# The boot after the install, in the same heap: the trial is confirmed, and the check that
# follows posts the report with the install's events (kept in NVS through the reboot).
AFTER_REBOOT = """import json, ota
cfg = json.load(open("ota_config.json"))
print("BOOT " + ota.boot()[0])
ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"])).update_sync()
"""


def reported(lab: Lab) -> bool:
    """Whether the board posted its telemetry report (`ota.report`) since the lab's access log
    was emptied (the lab's server takes no reports: a 404, and the board keeps the events for
    another try). The report is best effort: one that does not fit the heap is dropped without
    a word, so the heap figure checks that it went out."""
    return any(method == "POST" and path.endswith("/.otakit/events")
               for method, path, _ in lab.access_log.requests())


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


def min_heap(board: str, size: int, *, frozen: bool = False, lo: int = 16,
             hi: int = 160) -> HeapScan:
    """The smallest heap (KB) from which the agent installs a ``size``-byte image on ``board``
    at every 1 KB step up to the scan's top (`bench.heap_scan`)."""
    with tempfile.TemporaryDirectory() as d, Lab(Path(d), board=board, frozen=frozen) as lab:
        old = make_app_image("1.0.0", size=64 * 1024)
        lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
        return heap_scan(lambda k: _installs(lab, old, k), lo, hi)


def script_min_heap(lab: Lab, script: Path, marker: str, old: bytes, blob: str, *,
                    lo: int = 16, hi: int = 160) -> HeapScan:
    """The smallest heap (KB) from which ``script`` prints ``marker`` on the lab's board at every
    1 KB step up to the scan's top (`bench.heap_scan`), each try a board freshly flashed with
    ``old`` whose settings name the payload ``blob`` (its path in the lab's repository)."""
    def ok(k: int) -> bool:
        lab.flash(old, blob=blob)
        return marker in lab.boot(script=script, heapsize=f"{k}K", max_boots=1,
                                  timeout=900).log

    return heap_scan(ok, lo, hi)


def floor_min_heap(kind: str, *, frozen: bool = False, size: int = 1_000_000) -> HeapScan:
    """The min heap of a baseline on the same board, server and ``size``-byte image as
    `min_heap`: ``"empty"`` the simulator booting and running an empty main; ``"bare"`` the bare
    asyncio download loop (``BARE_ASYNC``), the least an asyncio-based agent can need."""
    with tempfile.TemporaryDirectory() as d, Lab(Path(d), frozen=frozen) as lab:
        pub = lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
        blob = pub.payload_path.relative_to(lab.repo.root).as_posix()
        if kind == "bare":
            src = lab.work / "bareloop.py"
            src.write_text(BARE_ASYNC)
            compile_to_mpy([src], lab.device_dir)
        script = lab.work / "floor.py"
        script.write_text(FLOORS[kind])
        old = make_app_image("1.0.0", size=64 * 1024)
        return script_min_heap(lab, script, "FLOOR_DONE", old, blob, lo=1, hi=64)


def run_rounds(lab: Lab, script: str, rounds: int, pattern: str, downloads_per_round: int,
               *, heapsize: str = "256K") -> list[tuple[str, ...]]:
    """Run ``script`` (ROUNDS replaced) on the lab's board; return the ``pattern`` rows. Fails
    unless every row came out and every payload request in the server's log delivered the
    whole file, ``downloads_per_round`` of them per round."""
    lab.access_log.seek(0)
    lab.access_log.truncate()
    (lab.work / "timed.py").write_text(script.replace("ROUNDS", str(rounds)))
    result = lab.boot(script=lab.work / "timed.py", heapsize=heapsize, max_boots=1,
                      timeout=900)
    rows = re.findall(pattern, result.log, re.M)
    if len(rows) != rounds:
        raise RuntimeError("timed run failed:\n" + result.log[-3000:])
    full, short = blob_downloads(lab.access_log.getvalue(), lab.repo.root)
    if short or full != rounds * downloads_per_round:
        raise RuntimeError(f"not every round downloaded the whole payload: {full} full, "
                           f"{short} partial requests for {rounds} rounds")
    return rows


def speed_lab(d: str, size: int) -> tuple[Lab, Path]:
    """A lab (entered: the caller exits it) with a ``size``-byte 1.1.0 published and 1.0.0
    flashed, and the payload file; its repository path is in the board's settings (``blob``)."""
    lab = Lab(Path(d)).__enter__()
    pub = lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
    blob = pub.payload_path.relative_to(lab.repo.root).as_posix()
    lab.flash(make_app_image("1.0.0", size=64 * 1024), blob=blob)
    return lab, pub.payload_path


def throughput(size: int, rounds: int
               ) -> tuple[float, float, float, float, float, list[str]]:
    """Median microseconds of (bare loop, bare loop + both hash passes, agent install), every
    agent round a fresh full download, and the agent's NVS records written per MB downloaded
    (all, and those of the resume point; most in any round)."""
    with tempfile.TemporaryDirectory() as d:
        lab, payload = speed_lab(d, size)
        try:
            rows = run_rounds(lab, SPEED, rounds,
                              r"^SPEED (\d+) (\d+) (\d+) (True|False) (-?\d+) (\d+) (\d+) (\S*)$",
                              3)
            mb = payload.stat().st_size / 1e6
        finally:
            lab.__exit__(None, None, None)
    if any(r[3] != "True" or r[4] != "0" for r in rows):
        raise RuntimeError(f"an agent round failed or resumed: {rows}")
    bare, hashed, agent = (float(statistics.median(int(r[i]) for r in rows)) for i in range(3))
    most = max(rows, key=lambda r: int(r[5]))
    return bare, hashed, agent, int(most[5]) / mb, int(most[6]) / mb, most[7].split(",")


def measure(rounds: int) -> dict[str, object]:
    """Every figure of the section: heap scans, interned names, throughput."""
    bare_us, hashed_us, agent_us, nvs_writes, nvs_progress, nvs_other = throughput(1_400_000,
                                                                                  rounds)
    return {"nvs_writes": nvs_writes, "nvs_progress": nvs_progress, "nvs_other": nvs_other,
            "small": min_heap("esp32", 1_000_000, lo=32),
            "large": min_heap("esp32-8mb", 3_000_000, lo=32),
            "frozen": min_heap("esp32", 1_000_000, frozen=True),
            "names": device_names("esp32", 1_000_000),
            "floors": {(kind, frozen): floor_min_heap(kind, frozen=frozen)
                       for kind in FLOORS for frozen in (False, True)},
            "bare_us": bare_us, "hashed_us": hashed_us, "agent_us": agent_us}


def nvs_paragraph(nvs_writes: float, nvs_progress: float, other: list[str]) -> str:
    """The section's paragraph on the agent's NVS records (``throughput``'s last three)."""
    return f"""\
NVS records the agent wrote in one of those installs (the most in any round), counted where
the simulator appends a record to its NVS partition (as in ESP-IDF, setting the value already
stored or erasing a key that is not there writes nothing). All of them together, per MB
downloaded: **{nvs_writes:.1f}** for this 1.4 MB image (goal ≤ {NVS_GOAL}). Once per install,
whatever the image's size, {len(other)}: {", ".join(f"`{k}`" for k in other)} (the payload's
name, the trial's records of `ota/stateops.py:arm_trial`, and the install's telemetry events kept
for the report after the reboot). The resume point is not among
them: it is kept in progress records in the spare slot's last 4 KB sector, a 32-byte flash write
per 64 KB (docs/reliability.md, "Resumed downloads"); NVS `d_off` holds it only for an image that
leaves no room for that sector (up to {1e6 / 65536:.1f} records per MB then): {nvs_progress:.1f}
per MB here. `commit()` writes nothing (ESP-IDF's is a no-op)."""


def render(fig: dict[str, object], rounds: int, command: str) -> str:
    """The docs section from ``measure``'s figures."""
    small, large, frozen = fig["small"], fig["large"], fig["frozen"]
    assert isinstance(small, HeapScan) and isinstance(large, HeapScan)
    assert isinstance(frozen, HeapScan)
    floors = fig["floors"]
    assert isinstance(floors, dict)
    empty, empty_f, bare, bare_f = (floors[k] for k in (("empty", False), ("empty", True),
                                                         ("bare", False), ("bare", True)))
    names = int(fig["names"])  # type: ignore[call-overload]
    nvs_writes, nvs_progress = (float(fig[k])  # type: ignore[arg-type]
                                for k in ("nvs_writes", "nvs_progress"))
    other = fig["nvs_other"]
    assert isinstance(other, list)
    bare_us, hashed_us, agent_us = (float(fig[k])  # type: ignore[arg-type]
                                    for k in ("bare_us", "hashed_us", "agent_us"))
    fair_pools = 300 < names <= SIM_NAMES
    speed, fair = bare_us / agent_us, hashed_us / agent_us
    date = datetime.date.today().isoformat()
    return f"""## Whole update (agent)

The smallest `-X heapsize` from which the agent completes a whole update at every 1 KB step up to
the top of the scan (manifest fetch and signature check, payload streamed into the spare slot
through one 4 KB buffer, read back and hashed, `set_boot`; then, in the same heap, the boot into
it: the trial confirmed and the telemetry report with the install's events posted), each try on
a freshly flashed board,
with the simulator holding the device code to that budget. Two settings (docs/simulator.md):
**`.mpy`** — the agent, app and keyring loaded from `.mpy` files, their bytecode and names in the
heap, as on a development board; **frozen** — the same code executed in place from a ROMFS image
outside the budget, as on a product board with the agent frozen into its firmware. Both on the
64-bit unix port, where objects are larger than on the 32-bit ESP32: upper bounds for a board.

| image | board layout | code | min heap | goal | limit |
|---|---|---|---|---|---|
| 1,000,000 B | esp32 (4 MB) | `.mpy` | **{small.lowest} KB** | ≤ {HEAP_GOAL} KB | ≤ {HEAP_LIMIT} KB |
| 1,000,000 B | esp32 (4 MB) | frozen | **{frozen.lowest} KB** | ≤ {FROZEN_GOAL} KB | |
| 3,000,000 B | esp32-8mb (8 MB) | `.mpy` | {large.lowest} KB | | |
| difference | | | {large.lowest - small.lowest} KB | | ≤ {GROWTH_LIMIT} KB |

Floors, on the same simulated board, server and 1,000,000 B image, scanned the same way: how
much of the agent's figure the platform takes (the 64-bit unix port: 32-byte GC blocks, 16 on
the ESP32, and pointers twice the size) and how much the agent adds.

| baseline | `.mpy` | frozen |
|---|---|---|
| the simulator booting (boot.py, which imports the `ota` package) and running an empty main | {empty.lowest} KB | {empty_f.lowest} KB |
| a bare asyncio download loop: `asyncio.open_connection` to the same server, one 4 KB buffer, SHA-256 on receive, 2-argument `writeblocks` per block, `set_boot`; no checks (`bench/agent.py` `BARE_ASYNC`, a module compiled like the agent) | {bare.lowest} KB | {bare_f.lowest} KB |
| the agent (above) | {small.lowest} KB | {frozen.lowest} KB |

Found the same way: empty main, `.mpy`: {empty.note()}; frozen: {empty_f.note()}. Bare loop,
`.mpy`: {bare.note()}; frozen: {bare_f.note()}.

How each figure was found (a bisection, then 1 KB steps, since whether an update fits is not
monotonic in the heap size — where the allocations fall moves with it): 1 MB `.mpy`:
{small.note()}; 1 MB frozen: {frozen.note()}; 3 MB `.mpy`: {large.note()}.

How the simulator charges the device (docs/simulator.md): it leaves the budget as one free
region, as on a board, and it fills the qstr pools its own ~300 names use, so the device's names
start in a fresh 640-entry pool (about 7 KB here): a board spends 620 entries on pools for
301-620 names. The agent interned **{names}** names in this update, {"so the pool charge matches a board's within 20 entries" if fair_pools else
"OUTSIDE 301-620, so the pool charge differs from a board's (docs/simulator.md)"}.

Throughput, 1.4 MB image, median of {rounds} interleaved rounds in one device process over the
same loopback server and simulated flash. Before every agent round the device's resume point is
erased, so every round is a fresh download: the bench fails unless each agent round reports
`resumed_from` 0 and the server's access log shows every payload request delivering the whole
image. (Until 2026-12-07 only the first round was: the resume point stayed in NVS after an
install, so later rounds hashed the slot and skipped the download, and the agent's figure was
too good.)

| what | time | bare ÷ this |
|---|---|---|
| bare loop: socket → 4 KB buffer → `writeblocks` | {bare_us / 1000:.1f} ms | 1.00 |
| bare loop plus the two SHA-256 passes the agent must make (while receiving; over the slot read back from flash) | {hashed_us / 1000:.1f} ms | {bare_us / hashed_us:.2f} |
| the agent's `install()`: the above through the asyncio HTTP client, progress records written to the slot, header checks, `set_boot()` | {agent_us / 1000:.1f} ms | **{speed:.2f}** |

{nvs_paragraph(nvs_writes, nvs_progress, other)}

Against the bare loop that makes the same two hash passes, the agent reaches **{fair:.2f}**
(goal for bare ÷ agent: ≥ {SPEED_GOAL}). On loopback with a simulated flash the CPU sets the pace;
on a board the radio and the flash do (`bench.peer` also measures the agent with the server
paced at 2 MB/s, and against glenn20's micropython-esp32-ota loop).

Measured {date} with `{command}`.
"""


def report(write_docs: bool, rounds: int) -> str:
    """Measure, render, and with ``write_docs`` write the section."""
    text = render(measure(rounds), rounds, ".venv/bin/python -m bench.agent"
                  f"{'' if rounds == 5 else f' --rounds {rounds}'} --write-docs")
    if write_docs:
        write_section("Whole update (agent)", text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Measure and print; with --write-docs also update docs/performance.md."""
    ap = argparse.ArgumentParser(prog="python -m bench.agent", description=__doc__)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--nvs-only", action="store_true")
    args = ap.parse_args(argv)
    if args.nvs_only:
        nvs_writes, nvs_progress, other = throughput(1_400_000, args.rounds)[3:]
        print(nvs_paragraph(nvs_writes, nvs_progress, other))
        return 0
    print(report(args.write_docs, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
