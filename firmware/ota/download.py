# ota/download.py: stream an image into the spare slot, block by block (the install phase).
# MIT license; Copyright (c) 2026 otakit contributors
#
# raw() streams the raw payload straight from the HTTP response into the agent's one 4 KB buffer,
# block by block (ota.writer.take, the read loop), through an ota.writer.Writer (write, read
# back, hash). The read loop allocates only the read's coroutine (one read fills a whole block:
# Body.readinto waits for all of it) and, for the last block, a view of the buffer.
#
# raw() resumes from the offset ota.state kept for this payload (State.progress): hashlib state
# cannot be saved, so the blocks already in the slot are hashed again from flash, and the rest is
# asked for with a Range; a server that ignores the Range (200) means starting over. The offset is
# persisted (State.save_progress: a progress record in the slot's last sector, ota.records, or NVS
# d_off for an image that leaves no room for it) at every multiple of _SAVE_EVERY bytes (64 KB) and
# at the image's end, each time once that block is in flash and read back, and when the download
# stops on an error (a lost connection, a deadline, a cancelled task): the blocks written so far
# are in flash. So a lost connection costs at most the 4 KB block in hand downloaded again, and a
# power cut or a reset at most 64 KB + that block (docs/reliability.md). Every download has an
# overall deadline (ota.writer.deadline, checked after every read by ota.writer.overdue).
# RAM: while it connects, only raw() is in the heap of this phase's code (with the HTTP
# client's); the Writer and the read loop (ota.writer) come in once the headers are in, when the
# client has let its header code go (ota.http).
# Writer, deadline and overdue are also found here (a module __getattr__ loads ota.writer), for
# the callers that import them from ota.download (ota.encoded).
# The code lives here, not in ota.agent, so that it is in the heap only while an install runs.
# It takes its inputs as arguments and returns what it did; it writes nothing of the agent's.
from .errors import FlashError

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_BLOCK = const(4096)
_SAVE_EVERY = const(0x10000)  # 64 KB: the resume point is persisted this often


def __getattr__(name):
    # ota.download.Writer, .deadline, .overdue: ota.writer's (loaded by the first such import)
    from . import writer
    return getattr(writer, name)


async def raw(cfg, st, m, slot, buf, new_client, done_with, progress):
    # Streams the raw payload of manifest m into slot through buf, resuming from the offset
    # ota.state kept; progress(done, size) after every block. new_client() / done_with(client)
    # give and take back the HTTP client. Returns the offset it resumed from (0: from the start).
    size = m.size
    tag = m.sha256[:8]
    start = st.progress(tag, slot, size, buf)
    if not 0 < start <= size or (start % _BLOCK and start != size):
        start = 0

    def persist(done, size):
        if not done % _SAVE_EVERY or done == size:
            st.save_progress(done)  # the block is in flash and read back: never runs ahead
        progress(done, size)

    dec = None
    if m.crypt is not None:  # encrypted (docs/format.md §2.8): ota.decrypt, loaded only then
        from .decrypt import Decrypt
        dec = Decrypt(m, m.crypt[0])
    w = None  # made once the headers are in (not in the heap while connecting), unless
    if start:  # the blocks already in the slot are hashed again from flash first
        from .writer import Writer

        w = Writer(slot, buf, size, cfg.chip_id, persist, start, dec)
        await slot.hash_range(start, buf, w.h)
    if start < size:
        client = new_client()
        try:
            resp = await client.get(cfg.payload_url(m.path), size - start, None, start)
        except BaseException:
            done_with(client)
            raise
        try:
            from .writer import Writer, take

            if start and resp.range_start == 0:  # the server ignored Range: start again
                st.forget_progress()
                w = None
                start = 0
            if w is None:
                w = Writer(slot, buf, size, cfg.chip_id, persist, 0, dec)
            await take(w, resp, cfg)
        finally:
            if w and w.done < size and w.done % _SAVE_EVERY:  # stopped between two saves: keep
                st.save_progress(w.done)  # what is in flash and read back
            await resp.close()
            done_with(client)
    if w.h.digest() != m.sha256:  # pyright: ignore[reportOptionalMemberAccess] - made above
        raise FlashError("HASH_MISMATCH", "the payload read back differs from the signed SHA-256")
    return start
