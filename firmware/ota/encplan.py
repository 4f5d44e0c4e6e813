# ota/encplan.py: the start of an encoded install (ota.encoded): which representation, its
# decoder's buffers, and where in the image it starts.
# MIT license; Copyright (c) 2026 otakit contributors
#
# ota.encoded.download loads this module, calls plan() and forgets the module again before it
# connects, so that none of this code is in the heap while the representation streams in.
# plan() picks the smallest representation this device can use (the running slot is
# hashed only when a delta is the best candidate; a window over max_wbits is skipped), makes its
# decoder (source(): the install's largest allocations, made after a gc.collect() and before a
# delta's base is hashed, the slot's prefix is hashed for a resume and the HTTP client is made,
# so that they find room in one piece) and finds where a resume starts (ota.encoded's header
# comment: the first chunk k the progress records do not cover, and its blob offset).
# Nothing here imports ota.encoded.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_CAP = const(1024)  # compressed bytes held in RAM (ota.encoded.read: len(mv))


def source(wbits, delta):
    # ota.encoded's decoder state (a list in its layout: _IO, _MV, _E, _Z, _H, _T, then _DEC,
    # _RESP, _DL, _SIZE, _LEFT that install() sets): the _CAP-byte input buffer that
    # io.BytesIO reads in place (a bytes object: it would copy a bytearray), the view it is
    # filled through, the decoder (its state and window allocated now by decoding a one-byte
    # stored block that ends on a byte boundary: the representation's stream follows it as the
    # next block), the blob's hash; for a delta ota.delta's code is loaded now too.
    import deflate
    import gc
    import hashlib
    import io
    import time
    from uctypes import addressof, bytearray_at
    gc.collect()
    b = bytes(_CAP)
    bio = io.BytesIO(b)  # pyright: ignore[reportCallIssue, reportArgumentType]
    mv = memoryview(bytearray_at(addressof(b), _CAP))
    mv[:6] = b"\x00\x01\x00\xfe\xff\x00"  # a stored, non-final DEFLATE block of one byte
    z = deflate.DeflateIO(bio, deflate.RAW, wbits)
    try:
        z.readinto(mv[6:7])
    except OSError:  # (it did not read mv: a port whose BytesIO copies bytes too)
        from .errors import FlashError
        raise FlashError("HASH_MISMATCH", "the decoder does not read its buffer")
    if delta:
        from .delta import apply  # noqa: F401 - its code in the heap now, not after the client
    return [bio, mv, 6, z, hashlib.sha256(), time.ticks_ms(), None, None, None, 0, 0]


async def plan(cfg, st, m, slot, buf, esp32):
    # None: no representation is smaller and usable (the raw payload). True: the progress
    # covers the whole image and the slot reads back as the signed image (nothing to write).
    # Else (rep, src, k, off, h): start at chunk k, blob offset off, h the hash of the image
    # bytes already in the slot (0 when k is 0). Forgets this module as it returns.
    try:
        return await _plan(cfg, st, m, slot, buf, esp32)
    finally:
        import sys
        import ota
        del sys.modules[__name__]
        delattr(ota, "encplan")


async def _plan(cfg, st, m, slot, buf, esp32):
    src = None
    for r in sorted(m.payloads, key=lambda r: r[2]):
        if r[2] >= m.size:
            break  # no smaller than the raw payload
        if r[4] > cfg.max_wbits:
            continue
        src = source(r[4], r[0] == "delta")
        if r[0] != "delta":
            break
        part = esp32.Partition(esp32.Partition.RUNNING)
        if r[5] <= part.info()[3]:
            from .slot import hash_partition
            if (await hash_partition(part, r[5], buf)).digest() == r[6]:
                break
        src = None
    if src is None:
        return None
    chunk = r[7]  # pyright: ignore[reportPossiblyUnboundVariable] - src: r is the one taken
    size = m.size
    k = off = 0
    if chunk:  # resumable: its progress replaces any other payload's (the slot is overwritten)
        done = st.progress(r[3][:8], slot, size, buf)  # pyright: ignore[reportPossiblyUnbound]
        if done == size:  # the whole image is in the slot: read back, nothing rewritten
            if (await slot.hash_range(size, buf)).digest() == m.sha256:
                return True
            st.forget_progress()
            done = 0
        k = done // chunk
        for i in range(k):
            off += r[8][i]  # pyright: ignore[reportPossiblyUnbound]
    elif st.has_progress():  # another payload's resume point; this one overwrites the slot
        st.forget_progress(True)
    return r, src, k, off, k and await slot.hash_range(k * chunk, buf)  # pyright: ignore
