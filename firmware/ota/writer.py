# ota/writer.py: the image's blocks into the spare slot (Writer), and a download's deadline.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Writer assembles image bytes in the agent's one 4 KB buffer and writes each full block (and the
# last one, padded with 0xFF, as erased flash reads) with an erase + write, then reads
# the block back from flash into the same buffer right away and hashes what it read: the SHA-256
# the signed one is checked against is that of the image as the slot holds it, every byte read
# back from flash once (Slot.read_back records how far, so ota.finish.verify need not hash the
# slot again), and a byte the flash did not keep fails that check like a byte the network altered
# (HASH_MISMATCH). Block 0 must be an app image for this chip before anything is written. The
# raw payload goes straight from the HTTP response into that buffer (ota.download.raw);
# ota.encoded decodes deflate and delta representations into it; an encrypted payload's blocks
# are decrypted (ota.decrypt) before anything else is done with them. The Writer allocates
# nothing per block (but a view for a decrypted last block).
# Writer.advance tells the caller to yield to the app (await asyncio.sleep_ms(0)) once _SLICE_MS
# of work have passed since it last did, checked after each block written.
# Every download has an overall deadline (deadline(): Config.deadline_s + bytes / Config.min_rate),
# checked after every read (overdue()): a server dripping the payload slower than that ends it
# with FetchError DEADLINE, the progress kept for the next attempt, which gets a new deadline
# for the bytes it still needs. ota.download and ota.encoded use the same two functions.
# This module is loaded once a payload's headers are in (not while connecting, a peak of RAM);
# ota.download gives its names too (ota.download.Writer, for the callers that import them
# from there).
import asyncio
import hashlib
import time

from .errors import FetchError, FlashError, ManifestError
from .slot import app_header_problem

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_BLOCK = const(4096)
_SLICE_MS = const(10)  # the writer asks its caller to yield at least this often
_LIMIT_MAX = const(0x10000000)  # ms (3 days): ticks_diff() is exact well beyond it


def deadline(cfg, n):
    # (start, allowed ms) for n bytes: Config.deadline_s + n / Config.min_rate seconds.
    ms = (cfg.deadline_s + n // cfg.min_rate) * 1000
    return time.ticks_ms(), ms if ms < _LIMIT_MAX else _LIMIT_MAX


def overdue(dl, done, size):
    # FetchError DEADLINE once the time of deadline() dl has passed; done of size bytes so far.
    ms = time.ticks_diff(time.ticks_ms(), dl[0])
    if ms > dl[1]:
        raise FetchError("DEADLINE", "%d of %d bytes after %d s (allowed %d s)"
                         % (done, size, ms // 1000, dl[1] // 1000))


class Writer:
    # Image bytes go into buf at offset o (see room/advance); done counts bytes in the slot
    # (written and read back). progress(done, size) is called after every block written.
    # dec: None, or the ota.decrypt.Decrypt of an encrypted payload (each block decrypted first)
    def __init__(self, slot, buf, size, chip_id, progress, start=0, dec=None):
        self.dec = dec
        self.slot = slot
        self.buf = buf
        self.mv = memoryview(buf)
        self.size = size
        self.chip_id = chip_id
        self.progress = progress
        self.h = hashlib.sha256()
        self.o = 0
        self.block = start // _BLOCK
        self.done = start
        self.t = time.ticks_ms()  # when the caller last yielded (advance)

    def room(self):
        # bytes that still fit in this block (never past the image's end)
        n = self.size - self.done - self.o
        k = _BLOCK - self.o
        return n if n < k else k

    def advance(self, n):
        # True when a block was written and _SLICE_MS have passed since the last True: the
        # caller yields then (await asyncio.sleep_ms(0)), so the app's tasks run during an
        # install even when reads never block.
        self.o += n
        if self.o == _BLOCK or self.done + self.o == self.size:
            self._flush()
            t = time.ticks_ms()
            if time.ticks_diff(t, self.t) >= _SLICE_MS:
                self.t = t
                return True
        return False

    def _flush(self):
        buf, n = self.buf, self.o
        if self.dec:
            self.dec.block(self.block, buf, n)
        if self.block == 0:
            problem = app_header_problem(buf, self.chip_id)
            if problem:
                raise FlashError("BAD_IMAGE", problem)
        for i in range(n, _BLOCK):  # only in the last block
            buf[i] = 0xFF
        self.slot.write_block(self.block, buf)
        self.slot.part.readblocks(self.block, buf)  # what is hashed is what the flash holds
        self.h.update(buf if n == _BLOCK else self.mv[:n])  # a view only for the last block
        if self.slot.read_back >= self.done:  # every byte from the slot's start read back
            self.slot.read_back = self.done + n
        self.block += 1
        self.done += n
        self.o = 0
        self.progress(self.done, self.size)


async def take(w, resp, cfg):
    # The raw payload's bytes from w.done on (ota.download.raw: w made at the offset asked for)
    # out of the HTTP body resp, straight into w's buffer: the body's length checked against
    # the image's, then block by block under the download's deadline (deadline(), overdue()).
    # The loop allocates only the read's coroutine (one read fills a whole block:
    # Body.readinto waits for all of it) and, for the last block, a view of the buffer.
    size = w.size
    if resp.length != size - w.done:
        raise ManifestError("HASH_MISMATCH", "the server sent %d bytes, the manifest signs %d"
                            % (w.done + resp.length, size))
    dl = deadline(cfg, resp.length)  # for the bytes still needed
    mv = w.mv
    while w.done < size:
        o, n = w.o, w.room()
        k = await resp.readinto(mv if n == _BLOCK else mv[o:o + n])  # o == 0 then
        if not k:
            raise FetchError("SHORT_READ", "the payload ended at %d of %d bytes"
                             % (w.done + w.o, size))
        if w.advance(k):
            await asyncio.sleep_ms(0)
        if w.done < size:  # the blocks in flash stay the resume point
            overdue(dl, w.done + w.o, size)
