# ota/decrypt.py: decrypt an encrypted release's bytes as they stream in (docs/format.md §2.8).
# MIT license; Copyright (c) 2026 otakit contributors
#
# An encrypted payload is the image encrypted with AES-256 in CBC mode, one CBC run per 4 KB
# block of the image (the block the agent's buffer holds), with the IV of block k the AES-256
# decryption of nonce || k (12 + 4 bytes, big-endian k) under the content key, which
# ota.contentkey checked and put into m.crypt in the check phase. ota.download's Writer calls
# Decrypt.block() on each 4 KB block before its header check, its write and its read-back hash:
# what is hashed against the signed SHA-256 is the decrypted image, so the signature
# authenticates the plaintext and a wrong key or altered ciphertext is refused (BAD_IMAGE or
# HASH_MISMATCH) and never booted. A block decrypts on its own (its IV needs only the key, the
# nonce and k), so a resumed download starts at any block like the raw one.
# A representation of an encrypted release (ota.encoded) is encrypted per chunk instead: chunk k
# (its signed length, a multiple of 16) is one CBC run whose IV is made the same way from the
# representation's own nonce and k, so Decrypt.run decrypts its bytes as they arrive, from any
# chunk on; the blob's SHA-256 is the ciphertext's, and the decoded image is checked against the
# signed one as for any representation.
# cryptolib's CTR mode is not in the ESP32 build (MICROPY_PY_CRYPTOLIB_CTR is 0 there); ECB and
# CBC are (docs/security.md "Encrypted payloads").
# Loaded by ota.download and ota.encoded only for an encrypted release; RAM: one AES context (in
# decryption mode: it makes the IVs too) and two 16-byte buffers; bytes are decrypted in place
# (CBC decryption allows in == out).
try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_BLOCK = const(4096)


class Decrypt:
    # The content key's AES context (CBC, decryption; the key from ota.contentkey in m.crypt),
    # under nonce: the encrypted payload's (block()), or a representation's (run(), lengths:
    # its chunks', from chunk k on).
    def __init__(self, m, nonce, lengths=(), k=0):
        from cryptolib import aes
        self.cbc = aes(m.crypt[2], 2, bytes(16))  # decrypts the runs, makes their IVs (_start)
        self.ctr = bytearray(16)
        self.ctr[:12] = nonce
        self.iv = bytearray(16)
        self.lengths = lengths
        self.c = k - 1  # run(): the chunk being decrypted
        self.rem = 0  # run(): its bytes still to come

    def _start(self, k):
        # Start CBC run k: its IV is the AES decryption of nonce || k (one AES context, in
        # decryption mode, does it all). CBC decryption outputs D(block) XOR the chaining
        # value, then makes the block the chaining value: a zero block first, so that the
        # counter block's output is D(counter), the IV; then the IV, so that it chains from it.
        c, iv, cbc = self.ctr, self.iv, self.cbc
        for i in range(16):
            iv[i] = 0
        cbc.decrypt(iv, iv)  # chaining value: zeros (the output in iv is not used)
        c[12] = k >> 24
        c[13] = (k >> 16) & 0xFF
        c[14] = (k >> 8) & 0xFF
        c[15] = k & 0xFF
        cbc.decrypt(c, iv)  # iv = D(nonce || k); chaining value: the counter block
        cbc.decrypt(iv, iv)  # chaining value: the IV (the output in iv is not used)

    def block(self, k, buf, n):
        # Decrypt image block k, n bytes (a multiple of 16) at buf's start, in place.
        self._start(k)
        self.cbc.decrypt(buf if n == _BLOCK else memoryview(buf)[:n], buf)

    def run(self, mv):
        # Decrypt a representation's next bytes in place: whole AES blocks, else the body
        # ended inside one (SHORT_READ).
        n = len(mv)
        if n % 16:
            from .errors import FetchError
            raise FetchError("SHORT_READ", "the payload ended inside an AES block")
        i = 0
        while i < n:
            if not self.rem:
                self.c += 1
                self.rem = self.lengths[self.c]
                self._start(self.c)
            t = n - i
            if t > self.rem:
                t = self.rem
            v = mv[i:i + t]
            self.cbc.decrypt(v, v)
            i += t
            self.rem -= t
