# ota/delta.py: apply a sequential patch (docs/format.md §6) against the running slot.
# MIT license; Copyright (c) 2026 otakit contributors
#
# apply(src, read, w, base, base_size, chunk, bases, k): the decoded patch stream is
# read(src, mv, n) (ota.encoded.read of its decoder state src), w the image Writer
# (download.Writer), base the running Partition. The base is
# only ever read (3-argument readblocks, at the byte offset it needs); every output byte goes
# through w into the spare slot, so a power cut during an apply leaves the running image as it
# was. Every operation is bounded before it runs: it never writes past the image's size, never
# reads outside the base's first base_size bytes. A malformed patch raises
# FlashError(HASH_MISMATCH).
# Segments (docs/format.md §6): with chunk (image bytes per segment; 0: one segment), no
# operation may cross a multiple of chunk, and at each one the base position must be the signed
# k * chunk + bases[k]. Starting at segment k > 0 (a resumed download: src starts there, w at
# image offset k * chunk) there is no header and the base position is that signed one.
# Bounded work per output byte of each segment (a few KB of DEFLATE can decode to millions of
# empty operations): more than _IDLE_OPS operations in a row that write no image byte, or more
# than _FREE_OPS + (bytes written in this segment) / _BYTES_PER_OP operations in the segment,
# raise FlashError(BAD_PATCH) at once. The host's encoder writes at most one operation without
# output (the first) and every later one writes at least 24 bytes (or, split at a segment's
# end, at least 1), far inside both bounds. The loop yields to the app whenever _SLICE_MS have
# passed since its last yield (ota.encoded.read, which the numbers and bytes come through,
# yields on its own clock too).
#
# Allocates nothing per byte and no buffer of its own but _T bytes (t: the numbers' bytes, and
# the base's bytes of an add step in a block's last 2 * _T bytes): the header is read into the
# Writer's block buffer before any image byte, and an add step puts its diff bytes at the
# block's next free offset and the base's bytes it adds to them right after, in the block's
# room that is not image yet (half of it each: a block takes ~7 steps, 2048 bytes first).
import asyncio
import time

from .errors import FlashError

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

try:
    from .fastadd import add as _add  # pyright: ignore[reportAssignmentType] - viper inner loop
except (ImportError, SyntaxError, ValueError):  # no native emitter on this port
    def _add(out, o, base, b, n):
        for i in range(n):
            out[o + i] = (out[o + i] + base[b + i]) & 0xFF

_HDR = const(13)  # b"OTPD", version 1, u32 image size, u32 base size
_T = const(64)  # bytes of t: the base's bytes of an add step in a block's last < 128 bytes
_IDLE_OPS = const(64)  # operations in a row without an output byte
_FREE_OPS = const(64)  # operations allowed before any output ...
_BYTES_PER_OP = const(16)  # ... plus one per this many bytes written (64 per KB)
_SLICE_MS = const(10)  # yield to the app at least this often


async def apply(src, read, w, base, base_size, chunk=0, bases=None, k=0):
    buf, mv = w.buf, w.mv
    if not k:  # the header, in the block buffer before any image byte (w.o is 0)
        if await read(src, mv, _HDR) != _HDR or buf[:5] != b"OTPD\x01":
            raise FlashError("HASH_MISMATCH", "not an otakit patch")
        if int.from_bytes(buf[5:9], "little") != w.size:
            raise FlashError("HASH_MISMATCH", "patch for another size of image")
        if int.from_bytes(buf[9:13], "little") != base_size:
            raise FlashError("HASH_MISMATCH", "patch for another size of base")
    t = memoryview(bytearray(_T))  # (read() fills a slice of it: a view)
    size = w.size
    seg = w.done  # image offset where this segment starts
    pos = seg + bases[k] if k else 0  # pyright: ignore[reportOptionalSubscript] - k: chunked
    nxt = seg + chunk if chunk else size  # where it ends
    ops = idle = 0
    t0 = time.ticks_ms()  # the last yield to the app here (ota.encoded.read keeps its own)
    while w.done + w.o < size:
        if time.ticks_diff(time.ticks_ms(), t0) >= _SLICE_MS:
            await asyncio.sleep_ms(0)
            t0 = time.ticks_ms()
        at = w.done + w.o
        if at == nxt:  # the next segment: its own work bound, from its signed base position
            k += 1
            if pos != at + bases[k]:  # pyright: ignore[reportOptionalSubscript] - chunked
                raise FlashError("HASH_MISMATCH", "segment %d: another base position" % k)
            seg = at
            nxt = at + chunk
            ops = idle = 0
        ops += 1
        if ops > _FREE_OPS + (at - seg) // _BYTES_PER_OP:
            raise FlashError("BAD_PATCH", "%d operations for %d image bytes" % (ops, at - seg))
        add = copy = 0
        for j in range(3):  # add, copy, z: LEB128 numbers (read here: no coroutine per number)
            n = shift = 0
            while True:
                if await read(src, t, 1) != 1:
                    raise FlashError("HASH_MISMATCH", "patch ends in an operation")
                n |= (t[0] & 0x7F) << shift
                if not t[0] & 0x80:
                    break
                shift += 7
                if shift == 35:
                    raise FlashError("HASH_MISMATCH", "patch number over 5 bytes")
            if j == 0:
                add = n
            elif j == 1:
                copy = n
        z = n  # pyright: ignore[reportPossiblyUnbound] - j == 2 last
        if add or copy:
            idle = 0
        else:
            idle += 1
            if idle > _IDLE_OPS:
                raise FlashError("BAD_PATCH", "%d operations in a row write nothing" % idle)
        if add + copy > size - at:
            raise FlashError("HASH_MISMATCH", "an operation runs past the image")
        if add + copy > nxt - at:
            raise FlashError("HASH_MISMATCH", "an operation crosses a segment end")
        if add and (pos < 0 or pos + add > base_size):
            raise FlashError("HASH_MISMATCH", "an operation reads outside the base")
        while add:  # diff bytes at o; the base's at o + n in the block's room r (n <= r / 2),
            o = w.o  # or in t once the room is under 2 * _T
            r = w.room()
            n = r >> 1 if r >= 2 * _T else r if r < _T else _T
            if n > add:
                n = add
            if await read(src, mv[o:], n) != n:
                raise FlashError("HASH_MISMATCH", "patch ends in an operation")
            if r >= 2 * _T:
                base.readblocks(0, mv[o + n:o + n + n], pos)
                _add(buf, o, buf, o + n, n)
            else:
                base.readblocks(0, t[:n], pos)
                _add(buf, o, t, 0, n)
            if w.advance(n):
                await asyncio.sleep_ms(0)
            pos += n
            add -= n
        while copy:
            n = w.room()
            if n > copy:
                n = copy
            if await read(src, w.mv[w.o:], n) != n:
                raise FlashError("HASH_MISMATCH", "patch ends in an operation")
            if w.advance(n):
                await asyncio.sleep_ms(0)
            copy -= n
        pos += (z >> 1) ^ -(z & 1)
