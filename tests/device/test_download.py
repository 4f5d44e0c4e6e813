"""ota.download's write loop on the real MicroPython unix port: under micropython.heap_lock()
(any allocation raises MemoryError), Writer takes several full blocks into the agent's buffer,
(block 0's image header check may allocate, once; it runs unlocked) hashes and writes each block to the slot, and reports progress."""

from __future__ import annotations

from pathlib import Path

from otakit.appimage import make_app_image
from otakit.mpy import compile_to_mpy, run_micropython
from otakit.paths import FIRMWARE_DIR

SCRIPT = r"""
import hashlib, micropython, sys
from ota.download import Writer

image = open(sys.argv[1], "rb").read()
padded = image + b"\xff" * (-len(image) % 4096)  # the slot's tail stays erased

class Slot:  # keeps a digest of what was written, in preallocated objects
    def __init__(self):
        self.h = hashlib.sha256()
        self.blocks = 0
    def write_block(self, n, buf):
        self.h.update(buf)
        self.blocks += 1

seen = [0]
def progress(done, size):
    seen[0] = done

slot = Slot()
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
      slot.h.digest() == hashlib.sha256(padded).digest())
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
    assert out.split() == ["OK", str(-(-len(image) // 4096)), str(len(image)), "True", "True"], out
