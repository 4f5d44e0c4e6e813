"""ota.writer's write loop (ota.download's Writer) on the real MicroPython unix port: under
micropython.heap_lock() (any allocation raises MemoryError), Writer takes several full blocks
into the agent's buffer, (block 0's image header check may allocate, once; it runs unlocked)
writes each block to the slot, reads it back and hashes what it read, and reports progress. A
byte the flash does not keep makes the SHA-256 differ from the image's. On the simulated board:
the NVS writes one more MB of download costs (none: the resume point is in progress marks in the
slot, which count only for their payload, whole), and a stuck flash bit refused before set_boot."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from otakit.appimage import make_app_image
from otakit.mpy import compile_to_mpy, run_micropython
from otakit.paths import FIRMWARE_DIR
from otakit.sim.lab import Lab
from otakit.sim.oracle import lab_kept_progress

MB = 1024 * 1024

SCRIPT = r"""
import hashlib, micropython, sys
from ota.writer import Writer

image = open(sys.argv[1], "rb").read()
padded = image + b"\xff" * (-len(image) % 4096)  # after the image's end: as erased flash

class Part:  # the slot's flash, preallocated; readblocks(n, buf, offset) as esp32.Partition's
    def __init__(self, size):
        self.flash = bytearray(size)
        self.flip = -1  # a byte offset that reads back inverted (a failing flash)
    def readblocks(self, n, buf, offset=0):
        a, f = n * 4096 + offset, self.flash
        for i in range(len(buf)):
            buf[i] = f[a + i] ^ (0xFF if a + i == self.flip else 0)

class Slot:  # keeps a digest of what was written, in preallocated objects
    def __init__(self, size):
        self.h = hashlib.sha256()
        self.blocks = 0
        self.part = Part(size)
        self.label = "ota_1"
        self.read_back = 0
    def write_block(self, n, buf):
        self.h.update(buf)
        self.blocks += 1
        a, f = n * 4096, self.part.flash
        for i in range(4096):
            f[a + i] = buf[i]

seen = [0]
def progress(done, size):
    seen[0] = done

slot = Slot(len(padded))
buf = bytearray(4096)
w = Writer(slot, buf, len(image), 0, progress)
src = memoryview(image)
def feed(w, src, chunk, until):
    # reads of odd sizes, as from a socket, each copied into the buffer without allocating
    buf = w.buf
    while w.done < until:
        k = w.room()
        if k > chunk:
            k = chunk
        o, s = w.o, w.done + w.o
        for i in range(k):
            buf[o + i] = src[s + i]
        w.advance(k)

feed(w, src, 1000, 4096)  # block 0: its image header check may allocate, once
result = -1  # the global exists before the heap is locked
micropython.heap_lock()
try:
    feed(w, src, 1000, w.size - w.size % 4096)  # every full block
except MemoryError:
    result = w.done + w.o  # where it allocated
micropython.heap_unlock()
feed(w, src, 1000, w.size)  # the padded last block is hashed through a view
print("OK" if result < 0 else "ALLOCATED at %d" % result, slot.blocks, seen[0], w.h.digest() == hashlib.sha256(image).digest(),
      slot.h.digest() == hashlib.sha256(padded).digest(), slot.read_back == len(image))

# the flash returns one byte of block 2 inverted: the SHA-256 read back is not the image's
slot = Slot(len(padded))
slot.part.flip = 2 * 4096 + 777
w = Writer(slot, buf, len(image), 0, progress)
feed(w, src, 1000, w.size)
print(w.h.digest() == hashlib.sha256(image).digest(), slot.h.digest() == hashlib.sha256(padded).digest())
"""


def test_the_raw_write_loop_allocates_nothing_per_block(tmp_path: Path) -> None:
    image = make_app_image("1.1.0", size=6 * 4096)
    (tmp_path / "image.bin").write_bytes(image)
    compile_to_mpy(sorted((FIRMWARE_DIR / "ota").glob("*.py")), tmp_path / "lib" / "ota")
    (tmp_path / "loop.py").write_text(SCRIPT)
    r = run_micropython([str(tmp_path / "loop.py"), str(tmp_path / "image.bin")],
                        path=[tmp_path / "lib"])
    out = r.stdout.decode()
    assert r.returncode == 0, out
    first, second = out.splitlines()
    assert first.split() == ["OK", str(-(-len(image) // 4096)), str(len(image)), "True", "True",
                             "True"], out
    assert second.split() == ["False", "True"], out  # written right, read back wrong


# --- the whole update on the simulated board -------------------------------------------------

# Counts the agent's NVS writes (every set and erase) during one update; the board's flash is
# written by the real simulated partition, except where FLIP names a byte of the spare slot that
# a write leaves programmed to 0 (a bit stuck in the flash, silent: the write call succeeds).
UPDATE = """\
import esp32, json, ota
writes = [0]
class CountingNVS(esp32.NVS):
    def set_i32(self, k, v):
        writes[0] += 1
        super().set_i32(k, v)
    def set_blob(self, k, v):
        writes[0] += 1
        super().set_blob(k, v)
    def erase_key(self, k):
        writes[0] += 1
        return super().erase_key(k)
esp32.NVS = CountingNVS
write = esp32.Partition.writeblocks
def stuck_bit(self, n, buf, offset=None):
    if offset is not None:
        return write(self, n, buf, offset)
    write(self, n, buf)
    if FLIP is not None and n == FLIP // 4096 and self.info()[4] == "ota_1":
        write(self, n, b"\\x00", FLIP % 4096)
esp32.Partition.writeblocks = stuck_bit
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"]))
writes[0] = 0
installed = agent.update_sync()
print("STATUS " + json.dumps(agent.status()))
print("NVS_WRITES %d %s" % (writes[0], installed))
"""


def update(lab: Lab, flip: int | None = None) -> tuple[int, dict[str, Any]]:
    script = lab.work / "update.py"
    script.write_text(f"FLIP = {flip!r}\n" + UPDATE)
    result = lab.boot(script=script, heapsize="128K", max_boots=1)
    m = re.search(r"^NVS_WRITES (\d+) (\w+)$", result.log, re.M)
    assert m, result.log
    return int(m[1]), json.loads(re.findall(r"^STATUS (.*)$", result.log, re.M)[-1])


def padded_image(version: str, size: int) -> bytes:
    # an app image of exactly size bytes: 0xFF after its end, as in an erased slot
    image = make_app_image(version, size=size - 1024)
    return image + b"\xff" * (size - len(image))


def test_progress_costs_at_most_16_nvs_writes_per_mb(tmp_path: Path) -> None:
    counts = []
    for size in (256 * 1024, 256 * 1024 + MB):
        with Lab(tmp_path / str(size)) as lab:
            lab.flash(make_app_image("1.0.0", size=64 * 1024))
            lab.publish(padded_image("1.1.0", size), "1.1.0", 2)
            writes, status = update(lab)
            assert status["state"] == "installed" and status["resumed_from"] == 0, status
            assert lab.state().next_boot == "ota_1"
            counts.append(writes)
    assert counts[1] - counts[0] <= 16, counts  # one MB more downloaded: at most 16 more NVS writes
    assert counts[1] == counts[0], counts  # none: the resume point is in the slot's marks


def test_a_block_the_flash_did_not_keep_is_refused_before_set_boot(tmp_path: Path) -> None:
    with Lab(tmp_path / "lab") as lab:
        lab.flash(make_app_image("1.0.0", size=64 * 1024))
        new = make_app_image("1.1.0", size=64 * 1024)
        lab.publish(new, "1.1.0", 2)
        flip = 5 * 4096 + next(i for i in range(100, 4096) if new[5 * 4096 + i])
        _, status = update(lab, flip)
        assert status["state"] == "failed" and status["reason"] == "HASH_MISMATCH", status
        assert "read back" in status["detail"], status
        st = lab.state()
        assert st.next_boot == "ota_0"
        assert [(e.seq, e.state_name) for e in st.otadata if e.valid] == [(1, "VALID")]
        assert "d_off" not in lab.nvs()  # the slot is not kept as a resume point
        assert lab_kept_progress(lab, hashlib.sha256(new).digest()[:8], len(new)) == 0


# The resume point's records on the simulated board, through ota.state and ota.slot themselves:
# progress records in the spare slot's last sector (a mark per 64 KB, a stop where a download
# stopped between two), under the payload d_id names.
MARKS = """\
import esp32
from ota.records import MAGIC_MARK, MAGIC_STOP, fill
from ota.slot import Slot
from ota.state import State
buf = bytearray(4096)
rec = bytearray(32)
A, B, SIZE = b"AAAAAAAA", b"BBBBBBBB", 200000

def kept(tag, size=SIZE):  # what a fresh boot resumes from
    return State(esp32).progress(tag, Slot(esp32), size, buf)

def program(tag, a, b, magic, place, n=32):  # a record at place, only its first n bytes
    s = Slot(esp32)
    fill(rec, tag, a, b, magic)
    s.part.writeblocks(s.size // 4096 - 1, memoryview(rec)[:n], place * 32)

st, slot = State(esp32), Slot(esp32)
print("R new", st.progress(A, slot, SIZE, buf))
st.save_progress(65536)
st.save_progress(131072)
print("R marks", kept(A))
st.save_progress(135168)
print("R stop", kept(A))
st.save_progress(139264)
print("R stops", kept(A))
st.save_progress(SIZE)
print("R whole", kept(A))
st.nvs.set_blob("d_id", B)  # B named over A's records: they never count for B
print("R other", kept(B))
print("R renamed", kept(A), st.progress(A, slot, SIZE, buf))
program(A, 0, 255, MAGIC_MARK, 0, 16)  # a mark torn by a cut: its first half programmed
print("R torn mark", kept(A))
program(A, 1, 254, MAGIC_MARK, 0)  # mark 1 in mark 0's place
print("R misplaced", kept(A))
st = State(esp32)
st.progress(A, slot, SIZE, buf)
st.save_progress(65536)
program(A, 1, 254, MAGIC_MARK, 1, 16)  # mark 1 torn: the resume point is mark 0's
st = State(esp32)
print("R torn second", st.progress(A, slot, SIZE, buf))
st.save_progress(131072)  # mark 1 written again, the same 32 bytes
print("R rewritten", kept(A))
program(A, 40, 0, MAGIC_STOP, 127, 16)  # a stop torn by a cut
print("R torn stop", kept(A))
st = State(esp32)
st.progress(A, slot, SIZE, buf)
st.save_progress(163840)  # the next stop: one place lower, the torn one left as it is
slot.part.readblocks(slot.size // 4096 - 1, buf)
print("R next stop", kept(A), int(buf[127 * 32 + 16:] == b"\\xff" * 16))
program(B, 45, 0, MAGIC_STOP, 100)  # another payload's stop
print("R other stop", kept(A))
st.forget_progress()
print("R forgotten", kept(A))
big = slot.size - 2048  # an image that leaves no sector for records: NVS d_off
st = State(esp32)
print("R big", st.progress(B, slot, big, buf))
st.save_progress(65536)
print("R big kept", kept(B, big), st.nvs.get_i32("d_off"))
C = b"CCCCCCCC"  # 4 marks' places: 124 places for stops, from 127 down to 4
st = State(esp32)
st.progress(C, slot, SIZE, buf)
st.save_progress(65536)
for i in range(124):
    st.save_progress(65536 + 4096 * (1 + i % 15))
print("R stops full", kept(C), st.i32("d_off"))
st.save_progress(180224)  # no place left for a stop: NVS d_off
print("R stop in nvs", kept(C), st.i32("d_off"))
st = State(esp32)
st.progress(C, slot, SIZE, buf)
st.save_progress(131072)  # the marks' places were never taken by a stop
print("R mark after", kept(C), st.i32("d_off"))
st.save_progress(SIZE)
print("R whole after", kept(C))
"""


def test_progress_records_give_the_resume_point_and_nothing_else_counts(tmp_path: Path) -> None:
    with Lab(tmp_path / "lab") as lab:
        lab.flash(make_app_image("1.0.0", size=64 * 1024))
        (lab.work / "marks.py").write_text(MARKS)
        log = lab.boot(script=lab.work / "marks.py", heapsize="128K", max_boots=1).log
    assert dict(re.findall(r"^R (\D+?) ([\d ]+)$", log, re.M)) == {
        "new": "0",  # a new payload: nothing kept
        "marks": "131072",  # the run of marks (two of 64 KB)
        "stop": "135168",  # stopped between two marks
        "stops": "139264",  # the furthest stop
        "whole": "200000",  # the last mark: up to the image's end
        "other": "0",  # another payload's records
        "renamed": "0 0",  # A named again: its records were erased when B was named
        "torn mark": "0",  # a torn mark does not count
        "misplaced": "0",  # nor a mark in another mark's place
        "torn second": "65536",  # the marks before it do
        "rewritten": "131072",  # the torn mark written again: whole
        "torn stop": "131072",  # a torn stop does not count
        "next stop": "163840 1",  # one place lower: the torn one is never written again
        "other stop": "163840",  # another payload's stop does not count
        "forgotten": "0",  # the records erased (d_id kept)
        "big": "0",
        "big kept": "65536 65536",  # no room for records: NVS d_off
        "stops full": "126976 0",  # 124 stops, the furthest counts; nothing in NVS d_off
        "stop in nvs": "180224 180224",  # the places used up: the stop goes to NVS d_off
        "mark after": "180224 180224",  # mark 1 written below it; d_off still the furthest
        "whole after": "200000",  # the marks up to the image's end
    }, log
