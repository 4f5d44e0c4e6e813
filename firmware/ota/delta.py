# ota/delta.py: apply a sequential patch (docs/format.md §6) against the running slot.
# MIT license; Copyright (c) 2026 otakit contributors
#
# apply(src, w, base, base_size, chunk, bases, k): src is the decoded patch stream
# (encoded.Source), w the image Writer (download.Writer), base the running Partition. The base is
# only ever read (through a 512-byte cache, with 3-argument readblocks); every output byte goes
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
# passed since the last yield (src.t, shared with encoded.Source).
#
# Allocates nothing per byte; its one buffer (SPACE bytes: the 512-byte cache of the base, then
# one byte) is src.cache, made by ota.encoded.Source with the decoder's buffers.
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

_CACHE = const(512)
SPACE = const(513)  # the buffer apply() needs, allocated by its caller (src.cache)
_BLOCK = const(4096)
_HDR = const(13)  # b"OTPD", version 1, u32 image size, u32 base size
_IDLE_OPS = const(64)  # operations in a row without an output byte
_FREE_OPS = const(64)  # operations allowed before any output ...
_BYTES_PER_OP = const(16)  # ... plus one per this many bytes written (64 per KB)
_SLICE_MS = const(10)  # yield to the app at least this often


def _bad(detail):
    return FlashError("HASH_MISMATCH", "bad patch: " + detail)


async def _uvarint(src, one):
    n = 0
    shift = 0
    for _ in range(5):
        if await src.readinto(one, 1) != 1:
            raise _bad("it ends inside an operation")
        b = one[0]
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n
        shift += 7
    raise _bad("a number is longer than 5 bytes")


async def apply(src, w, base, base_size, chunk=0, bases=None, k=0):
    buf = src.cache  # SPACE bytes: the cache of the base, then one byte for _uvarint
    mv = memoryview(buf)
    cache = mv[:_CACHE]
    if not k:  # the header, in the cache before it caches anything
        if await src.readinto(mv, _HDR) != _HDR or buf[:5] != b"OTPD\x01":
            raise _bad("not an otakit patch")
        if int.from_bytes(buf[5:9], "little") != w.size:
            raise _bad("it makes an image of another size")
        if int.from_bytes(buf[9:13], "little") != base_size:
            raise _bad("it is for a base of another size")
    cached = -1  # base offset of the cache's first byte
    one = mv[_CACHE:]
    size = w.size
    seg = w.done  # image offset where this segment starts
    pos = seg + bases[k] if k else 0  # pyright: ignore[reportOptionalSubscript] - k: chunked
    nxt = seg + chunk if chunk else size  # where it ends
    ops = idle = 0
    while w.done + w.o < size:
        if time.ticks_diff(time.ticks_ms(), src.t) >= _SLICE_MS:
            await asyncio.sleep_ms(0)
            src.t = time.ticks_ms()
        at = w.done + w.o
        if at == nxt:  # the next segment: its own work bound, from its signed base position
            k += 1
            if pos != at + bases[k]:  # pyright: ignore[reportOptionalSubscript] - chunked
                raise _bad("segment %d starts at another base position than signed" % k)
            seg = at
            nxt = at + chunk
            ops = idle = 0
        ops += 1
        if ops > _FREE_OPS + (at - seg) // _BYTES_PER_OP:
            raise FlashError("BAD_PATCH", "%d operations for %d image bytes" % (ops, at - seg))
        add = await _uvarint(src, one)
        copy = await _uvarint(src, one)
        z = await _uvarint(src, one)
        if add or copy:
            idle = 0
        else:
            idle += 1
            if idle > _IDLE_OPS:
                raise FlashError("BAD_PATCH", "%d operations in a row write no byte" % idle)
        if add + copy > size - at:
            raise _bad("an operation runs past the image's end")
        if add + copy > nxt - at:
            raise _bad("an operation crosses a segment's end")
        if add and (pos < 0 or pos + add > base_size):
            raise _bad("an operation reads outside the base")
        while add:
            at = pos & ~(_CACHE - 1)
            if at != cached:
                base.readblocks(at // _BLOCK, cache, at % _BLOCK)
                cached = at
            off = pos - at
            n = _CACHE - off
            if n > add:
                n = add
            r = w.room()
            if n > r:
                n = r
            o = w.o
            if await src.readinto(w.mv[o:], n) != n:
                raise _bad("it ends inside an operation")
            _add(w.buf, o, cache, off, n)
            if w.advance(n):
                await asyncio.sleep_ms(0)
            pos += n
            add -= n
        while copy:
            n = w.room()
            if n > copy:
                n = copy
            if await src.readinto(w.mv[w.o:], n) != n:
                raise _bad("it ends inside an operation")
            if w.advance(n):
                await asyncio.sleep_ms(0)
            copy -= n
        pos += (z >> 1) ^ -(z & 1)
