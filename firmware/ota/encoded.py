# ota/encoded.py: install a deflate or delta representation of an image while it streams in.
# MIT license; Copyright (c) 2026 otakit contributors
#
# docs/format.md §2.2 (representations) and §6 (patches). The agent calls download(cfg, st, m,
# slot, buf, esp32, new_client, done_with, progress): it picks the smallest representation this
# device can use (ota.encplan.plan, loaded for that and forgotten before the connection: the
# running slot is hashed only when a delta is the best candidate), returns False when that is
# the raw payload, else downloads it and decodes it into the spare slot through the agent's 4 KB
# block buffer (install) and returns True; it raises FetchError (and WRITE_FAILED) like the raw
# download.
# When the representation's bytes are refused (HASH_MISMATCH, or BAD_PATCH: a delta doing more
# work than its output allows, ota.delta) it prints one "ota: ..." line and returns False, so
# the agent installs the signed raw payload in the same check instead of retrying a broken or
# hostile encoding at every check.
# Resume: a representation with chunks (docs/format.md §2.2, body revision 4) records its
# progress with ota.state's progress operations (progress, save_progress: the ones the raw
# download uses, named by the first 8 bytes of the representation's SHA-256)
# at every chunk boundary of the image, once the chunk is in flash. After an interruption the
# slot's first bytes up to the recorded boundary k * chunk are hashed again from flash, the rest
# of the blob is asked for with a Range from chunk k's encoded offset (the sum of the signed
# chunk lengths before it), and a fresh decoder starts there (for a delta at the signed base
# position of chunk k): at most one chunk of encoded bytes is fetched again. The blob's own
# SHA-256 is checked only when it was received whole; a resumed one is checked by the decoded
# image's SHA-256 (and the slot's read-back before set_boot). Progress that covers the whole
# image (a cut after the last block) is only read back and compared with the signed SHA-256, as
# the raw download does, and nothing is written: rewriting a chunk the records already cover
# would let a cut tear blocks they still claim (a mismatch forgets the progress and starts from
# the first chunk). A representation without chunks
# starts again from its first byte. The download has the raw download's overall deadline
# (ota.writer.deadline, for the image bytes still to make: the decode's work is bounded by it
# too), checked at every decode call (read), so also while no byte arrives. The decode yields
# to the app whenever _SLICE_MS have passed (read, and ota.delta on its own clock), whether or
# not it makes output.
# In an encrypted release (docs/format.md §2.8) every representation is encrypted per chunk:
# read() asks for whole AES blocks, hashes the received (encrypted) bytes and has them decrypted
# in place (ota.decrypt.Decrypt.run, from chunk k on) before the decoder sees them.
# The code lives here (and in ota.encplan), not in ota.agent, so that it costs no RAM during a
# raw update.
#
# deflate.DeflateIO pulls its source one byte per call, so it never sees the socket: it reads an
# io.BytesIO over a _CAP-byte bytes object, which io.BytesIO reads in place (it would copy a
# bytearray; MicroPython tests that it does not copy a bytes object: heapalloc_bytesio2.py; a
# port that did would fail the priming decode in ota.encplan.source, HASH_MISMATCH), and read()
# refills that same memory from the HTTP response (Response.readinto) through a uctypes view of
# it before each decode step: one input buffer, no staging copy. Only [0, e) of it holds
# received bytes. While more of the body is to come, a decode step asks for at most
# (unread - _HDR) / 2 bytes (a DEFLATE stream needs at most 2 input bytes per output byte plus a
# block header of at most ~560 bytes, _HDR) and the buffer is refilled below _LOW unread bytes
# (so a step makes at least 64 bytes, and a refill brings at least _CAP - _LOW, ota.encplan's
# _CAP being the buffer's size); a read past e is caught after each step and refused. Every
# received byte is hashed and counted against the representation's signed size (and, received
# whole, its SHA-256); the decoded bytes are hashed against the image's.
#
# RAM (allocated once per install): the _CAP-byte input buffer (ota.encplan), the decoder's
# window (2**wbits bytes) and state (~1.4 KB), and for a delta ota.delta's code (it reads the
# base into the Writer's block buffer: no buffer of its own). ota.encplan.source makes them,
# after a gc.collect(), for the candidate it is about to take, before a delta's base is hashed,
# the slot's prefix is hashed for a resume and the HTTP client is made: they are the install's
# largest blocks and find room in one piece then (what a hash of the running slot leaves behind
# would split it). The decoder's state and window, which DeflateIO allocates at its first read,
# are made then by decoding a one-byte stored block that ends on a byte boundary, so the
# representation's stream follows it as the next block. Nothing is allocated per byte; each
# decode step allocates one memoryview slice.
# pyright: reportAttributeAccessIssue=false
# (micropython-stdlib-stubs' io.BytesIO lacks the stream methods MicroPython's has: tell,
# readinto, seek.)
import asyncio
import time

from .errors import FetchError, FlashError

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_HDR = const(560)  # input bytes a step may read besides 2 per output byte (a block header)
_LOW = const(688)  # refill below this many unread bytes (then a step makes >= 64 bytes)
_SLICE_MS = const(10)  # the decode yields to the app at least this often (ota.delta too)


# The decoder's state (src): a list, made with its buffers before the request by
# ota.encplan.source in this layout (a list, not a class: a class costs ~0.5 KB of heap).
# install() then attaches the body: resp, size bytes due by the deadline dl
# (ota.writer.deadline), which may start at a chunk boundary of the blob (a resume).
_IO = const(0)  # the io.BytesIO the decoder reads, over the input buffer
_MV = const(1)  # the view of the input buffer read() fills
_E = const(2)  # [0, e) of the buffer holds received bytes
_Z = const(3)  # the deflate.DeflateIO
_H = const(4)  # the blob's SHA-256 (of the bytes received)
_T = const(5)  # the last yield to the app
_DEC = const(6)  # an encrypted release's ota.decrypt.Decrypt, else None
_RESP = const(7)  # the body
_DL = const(8)  # its deadline
_SIZE = const(9)  # its size
_LEFT = const(10)  # its bytes not received yet


async def read(s, mv, n):
    # Decode exactly n bytes of src s into mv (n <= len(mv)); fewer only at the stream's end.
    overdue(s[_DL], s[_SIZE] - s[_LEFT], s[_SIZE])
    got = 0
    z, bio, buf = s[_Z], s[_IO], s[_MV]
    while got < n:
        if time.ticks_diff(time.ticks_ms(), s[_T]) >= _SLICE_MS:
            await asyncio.sleep_ms(0)
            s[_T] = time.ticks_ms()
        p = bio.tell()
        u = s[_E] - p
        if s[_LEFT] and u < _LOW:  # refill: the unread bytes to the front (in pieces
            i = 0  # that do not overlap), then what the response has, up to _CAP
            while i < u and p:
                j = u - i if u - i < p else p
                buf[i:i + j] = buf[p + i:p + i + j]
                i += j
            j = len(buf) - u  # (ota.encplan's _CAP)
            if j > s[_LEFT]:
                j = s[_LEFT]
            if s[_DEC]:
                j &= ~15  # whole AES blocks (the blob's size and chunks are multiples of 16)
                if not j:
                    raise FlashError("HASH_MISMATCH", "bytes after the deflate stream")
            j = await s[_RESP].readinto(buf[u:u + j])
            if not j:
                raise FetchError("SHORT_READ", "%d bytes short" % s[_LEFT])
            v = buf[u:u + j]
            s[_H].update(v)  # the blob's bytes as signed (encrypted: the ciphertext)
            if s[_DEC]:
                s[_DEC].run(v)
            s[_LEFT] -= j
            bio.seek(0)
            s[_E] = u + j
            continue  # (again while the response gives less than asked)
        k = n - got
        if s[_LEFT]:  # more to come: only what the unread bytes surely decode to
            j = (u - _HDR) >> 1
            if k > j:
                k = j
        try:
            r = z.readinto(mv[got:got + k])
        except (OSError, EOFError, ValueError):
            raise FlashError("HASH_MISMATCH", "not a valid deflate stream")
        if bio.tell() > s[_E]:
            raise FlashError("HASH_MISMATCH", "the deflate stream runs past the payload")
        if not r:
            break
        got += r
    return got


async def install(resp, rep, m, w, esp32, dl, k=0, off=0, src=None):
    # Decode rep's blob from its chunk k, at blob offset off (resp: the body from there), into
    # the Writer w (at image offset k * chunk), through src (its decoder, made here if None).
    # rep: (encoding, path, size, sha256, wbits, base_size, base_sha256, chunk, lengths, bases,
    # nonce), indexed where used (a small frame: it is live for the whole decode).
    global overdue  # read()'s deadline check: ota.writer's, bound once the body is here
    from .writer import overdue

    size = rep[2] - off
    if resp.length != size:
        raise FlashError("HASH_MISMATCH", "%d bytes sent, %d signed" % (off + resp.length, rep[2]))
    if src is None:
        from .encplan import source
        src = source(rep[4], rep[0] == "delta")
    if rep[10] is not None:  # an encrypted release (docs/format.md §2.8): loaded only then
        from .decrypt import Decrypt
        src[_DEC] = Decrypt(m, rep[10], rep[8], k)
    src[_RESP] = resp
    src[_DL] = dl
    src[_SIZE] = src[_LEFT] = size
    if rep[0] == "delta":
        from .delta import apply
        await apply(src, read, w, esp32.Partition(esp32.Partition.RUNNING), rep[5], rep[7],
                    rep[9], k)
    else:
        while w.done < w.size:
            size = w.room()
            if await read(src, w.mv[w.o:], size) != size:
                raise FlashError("HASH_MISMATCH", "it decodes to too few bytes")
            if w.advance(size):
                await asyncio.sleep_ms(0)
    # The stream must end here, with the body (the decoder past its last byte: no byte of it
    # unread, none still to come), and a blob received whole must be the signed one.
    if await read(src, bytearray(1), 1) or src[_LEFT] or src[_IO].tell() != src[_E]:
        raise FlashError("HASH_MISMATCH", "bytes after the image")
    if not off and src[_H].digest() != rep[3]:
        raise FlashError("HASH_MISMATCH", "the payload's SHA-256 is not the signed one")
    if w.h.digest() != m.sha256:
        raise FlashError("HASH_MISMATCH", "the decoded SHA-256 is not the signed one")


async def download(cfg, st, m, slot, buf, esp32, new_client, done_with, progress):
    from .encplan import plan
    found = await plan(cfg, st, m, slot, buf, esp32)  # (it forgets its module)
    plan = None  # its code goes now, before the connection
    if found is None or found is True:
        return bool(found)
    rep, src, k, off, h = found
    found = None
    chunk = rep[7]

    def persist(done, size):
        if chunk and (done % chunk == 0 or done == size):  # a chunk's end, its blocks in flash
            st.save_progress(done)
        progress(done, size)

    client = new_client()
    try:
        resp = await client.get(cfg.payload_url(rep[1]), rep[2] - off, None, off)
        try:
            from .writer import Writer, deadline  # once the headers are in, as ota.download
            if off and not resp.range_start:  # the server ignored the Range: start again
                st.forget_progress()
                k = off = 0
            w = Writer(slot, buf, m.size, cfg.chip_id, persist, k and k * chunk)
            if k:
                w.h = h
            h = None
            await install(resp, rep, m, w, esp32, deadline(cfg, m.size - w.done), k, off, src)
        except FlashError as e:
            if e.reason not in ("HASH_MISMATCH", "BAD_PATCH"):  # not the representation's bytes
                raise
            print("ota: %s payload refused (%s); taking the raw payload" % (rep[0], e))
            return False
        finally:
            await resp.close()
    finally:
        done_with(client)
    return True
