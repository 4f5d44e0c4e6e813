# ota/download.py: stream an image into the spare slot, block by block (the install phase).
# MIT license; Copyright (c) 2026 otakit contributors
#
# Writer assembles image bytes in the agent's one 4 KB buffer and writes each full block (and the
# last one, padded with 0xFF so the slot's tail stays erased) with an erase + write, hashing
# what it writes; block 0 must be an app image for this chip before anything is written. The raw
# payload goes straight from the HTTP response into that buffer; ota.encoded decodes deflate and
# delta representations into it. Nothing here allocates per block.
#
# raw() resumes from the offset persisted in NVS when d_id names this payload: hashlib state
# cannot be saved, so the blocks already in the slot are hashed again from flash, and the rest
# is asked for with a Range; a server that ignores the Range (200) means starting over. The
# offset is persisted after every block, once that block is in flash, so an interruption costs
# at most one 4 KB block downloaded again (docs/reliability.md).
# The code lives here, not in ota.agent, so that it is in the heap only while an install runs.
import hashlib

from .errors import FetchError, FlashError, ManifestError
from .slot import app_header_problem

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_BLOCK = const(4096)


class Writer:
    # Image bytes go into buf at offset o (see room/advance); done counts bytes in the slot.
    # progress(done, size) is called after every block written.
    def __init__(self, slot, buf, size, chip_id, progress, start=0):
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

    def room(self):
        # bytes that still fit in this block (never past the image's end)
        n = self.size - self.done - self.o
        k = _BLOCK - self.o
        return n if n < k else k

    def advance(self, n):
        self.o += n
        if self.o == _BLOCK or self.done + self.o == self.size:
            self._flush()

    def _flush(self):
        buf, n = self.buf, self.o
        if self.block == 0:
            problem = app_header_problem(buf, self.chip_id)
            if problem:
                raise FlashError("BAD_IMAGE", problem)
        for i in range(n, _BLOCK):  # only in the last block
            buf[i] = 0xFF
        self.h.update(self.mv[:n])
        self.slot.write_block(self.block, buf)
        self.block += 1
        self.done += n
        self.o = 0
        self.progress(self.done, self.size)


def reporter(agent, persist):
    # The progress callback of an install: status, the app's on_progress, and for a raw
    # download the resume offset (after the block is in flash: it never runs ahead).
    st = agent.state
    status = agent._status

    def progress(done, size):
        if persist:
            st.set("d_off", done)
        status["progress"] = done
        if agent.on_progress:
            agent.on_progress(done, size)
    return progress


async def raw(agent, m, slot):
    st = agent.state
    size = m.size
    tag = m.sha256[:8]
    start = 0
    if st.get_blob("d_id") == tag:
        start = st.get("d_off")
        if not 0 < start <= size or (start % _BLOCK and start != size):
            start = 0
    else:
        # Another payload (or none): forget its offset before naming this one, so a cut
        # between the two writes never pairs this payload with another one's progress.
        st.erase("d_off")
        st.set_blob("d_id", tag)
    w = Writer(slot, agent.buf, size, agent.cfg.chip_id, reporter(agent, True), start)
    if start:
        slot.hash_range(start, agent.buf, w.h)
    agent._status["resumed_from"] = start
    if start < size:
        client = agent._client()
        try:
            resp = await client.get(agent.cfg.payload_url(m.path), size - start, None, start)
        except BaseException:
            agent._done_with(client)
            raise
        try:
            if start and resp.range_start == 0:  # the server ignored Range: start again
                st.erase("d_off")
                w = Writer(slot, agent.buf, size, agent.cfg.chip_id, w.progress)
                start = agent._status["resumed_from"] = 0
            if resp.length != size - start:
                raise ManifestError("HASH_MISMATCH", "the server sent %d bytes, the manifest "
                                    "signs %d" % (start + resp.length, size))
            while w.done < size:
                k = await resp.readinto(w.mv[w.o:w.o + w.room()])
                if not k:
                    raise FetchError("SHORT_READ", "the payload ended at %d of %d bytes"
                                     % (w.done + w.o, size))
                w.advance(k)
        finally:
            await resp.close()
            agent._done_with(client)
    if w.h.digest() != m.sha256:
        raise FlashError("HASH_MISMATCH", "the downloaded payload's SHA-256 differs from the "
                         "signed one")
