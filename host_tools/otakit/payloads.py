"""Payload encodings (docs/format.md §2.2, §6): raw deflate, and delta patches against a base.

The device decodes these while streaming them into its spare slot (``firmware/ota/encoded.py``,
``firmware/ota/delta.py``); this module makes them and holds a reference decoder for the tests.

- ``deflate``: the image as a raw DEFLATE stream (RFC 1951, no zlib or gzip framing) whose
  back-references stay within ``2**wbits`` bytes, so a decoder with a ``2**wbits`` window
  (MicroPython's ``deflate.DeflateIO(s, deflate.RAW, wbits)``) can decode it.
- ``delta``: a sequential patch (§6) from one exact base image to the new image, itself stored as
  a raw DEFLATE stream like the above.

Resumable (chunked) forms, which `otakit release` makes (`deflate_chunked`, `delta_chunked`):
the image is cut into chunks of ``chunk`` output bytes (by default `auto_chunk`: the largest
multiple of 64 KB whose every chunk is at most 64 KB encoded, else 64 KB); the DEFLATE stream is
fully flushed (byte-aligned, history reset) after each chunk's bytes, so a fresh decoder can
start at any chunk's encoded offset, and for a delta no patch operation crosses a chunk boundary
and the base position at each boundary is listed. The blob stays one valid DEFLATE stream (and
one valid §6 patch), so a decoder that knows nothing of chunks decodes it as before.
`Encoded.lengths` (encoded bytes per chunk) and `Encoded.bases` (delta: base position at each
chunk's start minus the chunk's image offset) go into the signed manifest (§2.2).

Encrypted payloads (docs/format.md §2.8, `encrypt` / `decrypt`): the image encrypted with AES-256
in CBC mode, one CBC run per `CRYPT_BLOCK` (4 KB) image block, the IV of block ``k`` being
the AES-256 decryption of nonce || k (4 big-endian bytes) under the key (`block_iv`); no padding (the image's size is a multiple of 16,
as every ESP-IDF app image's is). A block decrypts on its own, so a download resumes at any
block; the nonce is random per release (`new_nonce`), so no key and IV pair repeats across
releases. A representation of an encrypted release is encrypted per chunk (`encrypt_chunks`):
its chunks are padded to multiples of 16 with empty stored blocks (``align=16``) and each is one
CBC run whose IV is `block_iv` of its own nonce and the chunk number, so it resumes at any chunk.

Invariants: every function but `new_nonce` is deterministic (same input, same bytes), so a
republished release gets the same content-addressed blobs (an encrypted one: new blobs under
its new nonce); `apply_patch` refuses any patch that reads outside the base
or produces other than the announced size (`PatchError`).
"""

from __future__ import annotations

import secrets
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from otakit.errors import OtakitError

PATCH_MAGIC = b"OTPD"
PATCH_VERSION = 1
PATCH_HEADER = struct.Struct("<4sBII")  # magic, version, target size, base size
DEFAULT_WBITS = 12
CHUNK = 65536  # image bytes per resumable chunk, and the most encoded bytes one should have
MIN_CHUNK, MAX_CHUNK = 4096, 1 << 24
MIN_WBITS, MAX_WBITS = 9, 15

_SEED = 12  # bytes an exact seed match must have
_STRIDE = 4  # base positions indexed: every 4th (a match of >= 15 bytes is always found)
_GIVE_UP = 24  # a fuzzy extension stops once it is this far below its best score
_MIN_MATCH = 24  # shorter matches are sent as literal bytes


class PatchError(OtakitError):
    """A patch is malformed or does not fit its base (reason ``BAD_PATCH``)."""

    def __init__(self, message: str) -> None:
        """Carry the reason ``BAD_PATCH``."""
        super().__init__(message, reason="BAD_PATCH")


def deflate(data: bytes, wbits: int = DEFAULT_WBITS) -> bytes:
    """``data`` as a raw DEFLATE stream (zlib level 9) with a ``2**wbits``-byte window."""
    if not MIN_WBITS <= wbits <= MAX_WBITS:
        raise ValueError(f"wbits must be {MIN_WBITS}..{MAX_WBITS}")
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits, 9)
    return c.compress(data) + c.flush()


def inflate(data: bytes, wbits: int = DEFAULT_WBITS, limit: int = 1 << 31) -> bytes:
    """Decode a raw DEFLATE stream; refuses trailing bytes and output over ``limit``.

    Raises:
        PatchError: the stream is corrupt, truncated, followed by garbage or too large.
    """
    d = zlib.decompressobj(-wbits)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as e:
        raise PatchError(f"the deflate stream is corrupt ({e})") from e
    if not d.eof or d.unused_data or d.unconsumed_tail or len(out) > limit:
        raise PatchError("the deflate stream is truncated, too large or followed by garbage")
    return out


@dataclass(frozen=True)
class Op:
    """One patch operation: ``add`` diff bytes against the base, ``copy`` literal bytes, then
    move the base position by ``seek``."""

    add: int
    copy: int
    seek: int


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _svarint(n: int) -> bytes:
    return _uvarint((n << 1) if n >= 0 else ((-n << 1) - 1))


def _extend(old: bytes, new: bytes, i: int, j: int, step: int, limit: int) -> int:
    """How far (0..limit bytes) the alignment old[i]~new[j] extends in direction ``step``
    (+1 forward from i, j; -1 backward from i-1, j-1), allowing mismatches as long as equal
    bytes outnumber them (bsdiff's criterion): the length with the best score
    (+1 per equal byte, -1 per other byte)."""
    score = best = best_len = 0
    k = 0
    while k < limit:
        if step > 0:
            a, b = i + k, j + k
            if k + 32 <= limit and old[a:a + 32] == new[b:b + 32]:
                k += 32
                score += 32
                best, best_len = score, k
                continue
            eq = old[a] == new[b]
        else:
            eq = old[i - 1 - k] == new[j - 1 - k]
        k += 1
        score += 1 if eq else -1
        if score > best:
            best, best_len = score, k
        elif score < best - _GIVE_UP:
            break
    return best_len


def _matches(old: bytes, new: bytes) -> list[tuple[int, int, int]]:
    """Aligned regions (new start, old start, length), in new order, not overlapping in new."""
    index: dict[bytes, int] = {}
    for i in range(0, len(old) - _SEED + 1, _STRIDE):
        index.setdefault(old[i:i + _SEED], i)
    out: list[tuple[int, int, int]] = []
    j, diag, done = 0, 0, 0  # diag: old - new of the last match; done: end of it in new
    n = len(new)
    while j <= n - _SEED:
        key = new[j:j + _SEED]
        i = j + diag
        if not (0 <= i <= len(old) - _SEED and old[i:i + _SEED] == key):
            found = index.get(key)
            if found is None:
                j += 1
                continue
            i = found
        back = _extend(old, new, i, j, -1, min(i, j - done))
        fwd = _extend(old, new, i, j, 1, min(len(old) - i, n - j))
        start, length = j - back, back + fwd
        if length < _MIN_MATCH:
            j += 1
            continue
        out.append((start, i - back, length))
        diag, done, j = i - j, start + length, start + length
    return out


def make_ops(old: bytes, new: bytes) -> list[Op]:
    """The patch operations that rebuild ``new`` from ``old``."""
    found = _matches(old, new)
    first_new, first_old = (found[0][0], found[0][1]) if found else (len(new), 0)
    ops = [Op(0, first_new, first_old)]  # literal bytes before the first match, seek to it
    for k, (start, ostart, length) in enumerate(found):
        nxt_new, nxt_old = ((found[k + 1][0], found[k + 1][1]) if k + 1 < len(found)
                            else (len(new), ostart + length))
        ops.append(Op(length, nxt_new - start - length, nxt_old - ostart - length))
    return [o for o in ops if o.add or o.copy or o.seek]


def make_patch(old: bytes, new: bytes) -> bytes:
    """The uncompressed patch stream (docs/format.md §6) from ``old`` to ``new``."""
    out = bytearray(PATCH_HEADER.pack(PATCH_MAGIC, PATCH_VERSION, len(new), len(old)))
    pos = at = 0
    for op in make_ops(old, new):
        out += _uvarint(op.add) + _uvarint(op.copy) + _svarint(op.seek)
        if op.add:
            a, b = old[pos:pos + op.add], new[at:at + op.add]
            out += bytes((x - y) & 0xFF for x, y in zip(b, a))
        out += new[at + op.add:at + op.add + op.copy]
        pos += op.add + op.seek
        at += op.add + op.copy
    return bytes(out)


def encode_delta(old: bytes, new: bytes, wbits: int = DEFAULT_WBITS) -> bytes:
    """A ``delta`` payload: the patch from ``old`` to ``new``, deflated with ``wbits``."""
    return deflate(make_patch(old, new), wbits)


def _read_uvarint(p: bytes, k: int) -> tuple[int, int]:
    n = shift = 0
    for _ in range(5):
        if k >= len(p):
            raise PatchError("the patch ends inside an operation")
        b = p[k]
        k += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, k
        shift += 7
    raise PatchError("a patch number is longer than 5 bytes")


def apply_patch(old: bytes, patch: bytes) -> bytes:
    """Rebuild the new image from ``old`` and an uncompressed patch (the reference decoder).

    Raises:
        PatchError: bad header, base of another size, reads outside the base, output of another
            size than announced, or bytes after the end.
    """
    if len(patch) < PATCH_HEADER.size:
        raise PatchError("the patch is shorter than its header")
    magic, version, target, base = PATCH_HEADER.unpack_from(patch)
    if magic != PATCH_MAGIC or version != PATCH_VERSION:
        raise PatchError("not an otakit patch (magic or version)")
    if base != len(old):
        raise PatchError(f"the patch is for a {base}-byte base, this one has {len(old)}")
    return _apply_ops(old, patch, PATCH_HEADER.size, 0, target)


def _apply_ops(old: bytes, patch: bytes, k: int, pos: int, target: int) -> bytes:
    """Apply the operations of ``patch`` from its byte ``k`` on, the base position at ``pos``,
    until ``target`` bytes are made; the patch must end there."""
    out = bytearray()
    while len(out) < target:
        add, k = _read_uvarint(patch, k)
        copy, k = _read_uvarint(patch, k)
        z, k = _read_uvarint(patch, k)
        seek = (z >> 1) ^ -(z & 1)
        if add + copy > target - len(out) or k + add + copy > len(patch):
            raise PatchError("an operation runs past the end of the image or the patch")
        if add and (pos < 0 or pos + add > len(old)):
            raise PatchError("an operation reads outside the base")
        out += bytes((x + y) & 0xFF for x, y in zip(patch[k:k + add], old[pos:pos + add]))
        out += patch[k + add:k + add + copy]
        k += add + copy
        pos += add + seek
    if k != len(patch):
        raise PatchError("bytes after the end of the patch")
    return bytes(out)


def decode_delta(old: bytes, payload: bytes, wbits: int = DEFAULT_WBITS) -> bytes:
    """Inflate and apply a ``delta`` payload (reference decoder)."""
    return apply_patch(old, inflate(payload, wbits))


# --- resumable (chunked) representations ------------------------------------------------------

@dataclass(frozen=True)
class Encoded:
    """A chunked representation: its bytes, the encoded length of each chunk and (delta only)
    the base position at each chunk's start minus that chunk's image offset."""

    data: bytes
    chunk: int
    lengths: tuple[int, ...]
    bases: tuple[int, ...] | None = None

    def offset(self, k: int) -> int:
        """Where chunk ``k``'s encoded bytes start in ``data``."""
        return sum(self.lengths[:k])


def _check_chunk(chunk: int, wbits: int) -> None:
    if not MIN_WBITS <= wbits <= MAX_WBITS:
        raise ValueError(f"wbits must be {MIN_WBITS}..{MAX_WBITS}")
    if not MIN_CHUNK <= chunk <= MAX_CHUNK or chunk % MIN_CHUNK:
        raise ValueError(f"chunk must be a multiple of {MIN_CHUNK} up to {MAX_CHUNK}")


_EMPTY_STORED = b"\x00\x00\x00\xff\xff"  # an empty stored block, byte-aligned (RFC 1951 3.2.4)
_FINAL_STORED = b"\x01\x00\x00\xff\xff"  # the same, marked final: ends the stream


def _deflate_pieces(pieces: list[bytes], wbits: int,
                    align: int = 1) -> tuple[bytes, tuple[int, ...]]:
    """One raw DEFLATE stream of the pieces, fully flushed after each but the last (which ends
    the stream); returns it and the encoded length of each piece. ``align`` 16 (an encrypted
    representation): every piece's bytes are padded to a multiple of 16 with empty stored
    blocks (the last one's end with an empty final block), still one valid stream."""
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits, 9)
    out, lengths = [], []
    for i, piece in enumerate(pieces):
        last = i + 1 == len(pieces)
        if align == 1:
            z = c.compress(piece) + c.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)
        else:
            z = c.compress(piece) + c.flush(zlib.Z_FULL_FLUSH)
            tail = _FINAL_STORED if last else b""
            n = next(a for a in range(align) if (len(z) + len(tail) + 5 * a) % align == 0)
            z += _EMPTY_STORED * n + tail
        out.append(z)
        lengths.append(len(z))
    return b"".join(out), tuple(lengths)


def auto_chunk(build: Callable[[int], Encoded], size: int) -> Encoded:
    """``build(chunk)`` for the largest chunk (a multiple of `CHUNK`) whose every chunk is at most
    `CHUNK` bytes encoded, so that a resume fetches at most 64 KB again while a representation
    that compresses well pays for few flushes; ``build(CHUNK)`` when no larger one qualifies."""
    fine = build(CHUNK)
    n = len(fine.lengths)
    for m in range(-(-size // CHUNK), 1, -1):  # merged chunks are no larger than their sum
        groups = [sum(fine.lengths[i:i + m]) for i in range(0, n, m)]
        if max(groups) <= CHUNK:
            coarse = build(m * CHUNK)
            return coarse if max(coarse.lengths) <= CHUNK else fine
    return fine


def deflate_chunked(data: bytes, wbits: int = DEFAULT_WBITS, chunk: int | None = None,
                    align: int = 1) -> Encoded:
    """A resumable ``deflate`` payload: every ``chunk`` image bytes (None: `auto_chunk`) the
    stream is fully flushed (and padded to a multiple of ``align``, `_deflate_pieces`)."""
    if chunk is None:
        return auto_chunk(lambda c: deflate_chunked(data, wbits, c, align), len(data))
    _check_chunk(chunk, wbits)
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
    blob, lengths = _deflate_pieces(pieces, wbits, align)
    return Encoded(blob, chunk, lengths)


def make_segments(old: bytes, new: bytes, chunk: int = CHUNK,
                  ops: list[Op] | None = None) -> tuple[list[bytes], list[int]]:
    """The patch (§6) from ``old`` to ``new`` (``ops``: `make_ops`'s, when already made) cut into
    one segment per ``chunk`` image bytes (the header in the first): no operation crosses a
    chunk boundary (one that would is split there). Returns the segments and the base position
    at each segment's start."""
    segs = [bytearray(PATCH_HEADER.pack(PATCH_MAGIC, PATCH_VERSION, len(new), len(old)))]
    starts = [0]
    pos = at = 0
    end = chunk

    def emit(add: int, copy: int, seek: int) -> None:
        seg = segs[-1]
        seg += _uvarint(add) + _uvarint(copy) + _svarint(seek)
        if add:
            seg += bytes((x - y) & 0xFF for x, y in zip(new[at:at + add], old[pos:pos + add]))
        seg += new[at + add:at + add + copy]

    for op in make_ops(old, new) if ops is None else ops:
        add, copy, seek = op.add, op.copy, op.seek
        while add + copy > end - at:  # split at the boundary, the rest in the next segment
            a = min(add, end - at)
            c = min(copy, end - at - a)
            emit(a, c, 0)
            pos, at, add, copy = pos + a, at + a + c, add - a, copy - c
            segs.append(bytearray())
            starts.append(pos)
            end += chunk
        emit(add, copy, seek)
        pos, at = pos + add + seek, at + add + copy
        if at == end and at < len(new):
            segs.append(bytearray())
            starts.append(pos)
            end += chunk
    return [bytes(s) for s in segs], starts


def delta_chunked(old: bytes, new: bytes, wbits: int = DEFAULT_WBITS,
                  chunk: int | None = None, ops: list[Op] | None = None,
                  align: int = 1) -> Encoded:
    """A resumable ``delta`` payload: the segmented patch, fully flushed after each segment
    (and padded to a multiple of ``align``; ``chunk`` None: `auto_chunk`)."""
    if chunk is None:
        ops = make_ops(old, new) if ops is None else ops
        return auto_chunk(lambda c: delta_chunked(old, new, wbits, c, ops, align), len(new))
    _check_chunk(chunk, wbits)
    segs, starts = make_segments(old, new, chunk, ops)
    blob, lengths = _deflate_pieces(segs, wbits, align)
    return Encoded(blob, chunk, lengths, tuple(p - k * chunk for k, p in enumerate(starts)))


def decode_from(enc: Encoded, k: int, size: int, wbits: int = DEFAULT_WBITS,
                old: bytes | None = None) -> bytes:
    """Image bytes ``[k * chunk, size)`` decoded by a fresh decoder from chunk ``k``'s encoded
    offset on: what a device resuming at chunk ``k`` writes (reference decoder). ``old`` is the
    base of a delta (None: ``enc`` is a deflate payload).

    Raises:
        PatchError: the stream or the patch is bad from there, or decodes to another length.
    """
    stream = inflate(enc.data[enc.offset(k):], wbits)
    if old is None:
        if len(stream) != size - k * enc.chunk:
            raise PatchError("the chunks decode to another length than the image's")
        return stream
    assert enc.bases is not None
    if k == 0:
        return apply_patch(old, stream)
    return _apply_ops(old, stream, 0, k * enc.chunk + enc.bases[k], size - k * enc.chunk)


# --- encrypted payloads (docs/format.md §2.8) -------------------------------------------------

CRYPT_BLOCK = 4096  # image bytes per CBC run: the device's block
NONCE_LEN = 12


class EncryptError(OtakitError):
    """An image cannot be encrypted as asked (reason ``BAD_ARGUMENT``)."""

    def __init__(self, message: str) -> None:
        """Carry the reason ``BAD_ARGUMENT``."""
        super().__init__(message, reason="BAD_ARGUMENT")


def new_nonce() -> bytes:
    """A fresh random 96-bit nonce: one per release."""
    return secrets.token_bytes(NONCE_LEN)


def _aes(key: bytes, mode: object) -> object:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms  # noqa: PLC0415

    return Cipher(algorithms.AES(key), mode)  # type: ignore[arg-type]


def block_iv(key: bytes, nonce: bytes, k: int) -> bytes:
    """The IV of CBC run ``k``: the AES-256 decryption of nonce || k under the key (the device
    makes it with the one AES context it decrypts with)."""
    from cryptography.hazmat.primitives.ciphers import modes  # noqa: PLC0415

    d = _aes(key, modes.ECB()).decryptor()  # type: ignore[attr-defined]
    return d.update(nonce + k.to_bytes(4, "big")) + d.finalize()


def _crypt(data: bytes, key: bytes, nonce: bytes, start: int, encrypt: bool) -> bytes:
    from cryptography.hazmat.primitives.ciphers import modes  # noqa: PLC0415

    if len(key) != 32 or len(nonce) != NONCE_LEN:
        raise EncryptError("a content key is 32 bytes and a nonce 12")
    if len(data) % 16 or start % CRYPT_BLOCK:
        raise EncryptError(f"an encrypted payload's size must be a multiple of 16 bytes, not "
                           f"{len(data)} (every ESP-IDF app image's is)")
    out = []
    for i in range(0, len(data), CRYPT_BLOCK):
        c = _aes(key, modes.CBC(block_iv(key, nonce, (start + i) // CRYPT_BLOCK)))
        op = c.encryptor() if encrypt else c.decryptor()  # type: ignore[attr-defined]
        out.append(op.update(data[i:i + CRYPT_BLOCK]) + op.finalize())
    return b"".join(out)


def encrypt(image: bytes, key: bytes, nonce: bytes) -> bytes:
    """The encrypted payload of ``image`` (its size a multiple of 16).

    Raises:
        EncryptError: the image's size is not a multiple of 16, or a bad key or nonce length.
    """
    return _crypt(image, key, nonce, 0, True)


def decrypt(blob: bytes, key: bytes, nonce: bytes, start: int = 0) -> bytes:
    """The image bytes of an encrypted payload's bytes ``blob`` from image offset ``start`` (a
    multiple of `CRYPT_BLOCK`) on: what a device resuming there writes (reference decoder)."""
    return _crypt(blob, key, nonce, start, False)


def _crypt_chunks(data: bytes, lengths: tuple[int, ...], key: bytes, nonce: bytes, k: int,
                  encrypt: bool) -> bytes:
    from cryptography.hazmat.primitives.ciphers import modes  # noqa: PLC0415

    out, at = [], 0
    for i, n in enumerate(lengths[k:], k):
        if n % 16:
            raise EncryptError("an encrypted representation's chunks are multiples of 16 bytes")
        c = _aes(key, modes.CBC(block_iv(key, nonce, i)))
        op = c.encryptor() if encrypt else c.decryptor()  # type: ignore[attr-defined]
        out.append(op.update(data[at:at + n]) + op.finalize())
        at += n
    return b"".join(out)


def encrypt_chunks(enc: Encoded, key: bytes, nonce: bytes) -> Encoded:
    """An encrypted representation (docs/format.md §2.8): each chunk of ``enc`` (made with
    ``align=16``) one CBC run, the IV of chunk ``k`` `block_iv` (key, nonce, k); its own nonce."""
    return Encoded(_crypt_chunks(enc.data, enc.lengths, key, nonce, 0, True), enc.chunk,
                   enc.lengths, enc.bases)


def decrypt_chunks(enc: Encoded, key: bytes, nonce: bytes, k: int = 0) -> bytes:
    """The DEFLATE bytes of an encrypted representation from chunk ``k`` on (reference)."""
    return _crypt_chunks(enc.data[enc.offset(k):], enc.lengths, key, nonce, k, False)


__all__ = ["CHUNK", "CRYPT_BLOCK", "DEFAULT_WBITS", "MAX_WBITS", "MIN_WBITS", "NONCE_LEN",
           "PATCH_MAGIC", "Encoded", "EncryptError", "Op", "block_iv", "decrypt",
           "decrypt_chunks", "encrypt", "encrypt_chunks", "new_nonce", "PatchError", "apply_patch", "auto_chunk", "decode_delta", "decode_from",
           "deflate", "deflate_chunked", "delta_chunked", "encode_delta", "inflate", "make_ops",
           "make_patch", "make_segments"]
