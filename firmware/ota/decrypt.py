# ota/decrypt.py: decrypt an encrypted payload (docs/format.md §2.6) as its blocks stream in.
# MIT license; Copyright (c) 2026 otakit contributors
#
# An encrypted payload is the image encrypted with AES-256 in CBC mode, one CBC run per 4 KB
# block of the image (the block the agent's buffer holds), with the IV of block k the AES-256
# encryption of nonce || k (12 + 4 bytes, big-endian k) under the content key. The device holds
# that key in the file KEY_FILE its provisioning wrote (the host's key file as it is:
# otakit.contentkey); key_problem() compares its fingerprint with the manifest's key_id in the
# check phase (ota.vet: NO_CONTENT_KEY), and ota.download's Writer calls Decrypt.block() on each
# 4 KB block before its header check, its write and its read-back hash: what is hashed against
# the signed SHA-256 is the decrypted image, so the signature authenticates the plaintext and a
# wrong key or altered ciphertext is refused (BAD_IMAGE or HASH_MISMATCH) and never booted. A
# block decrypts on its own (its IV needs only the key, the nonce and k), so a resumed download
# starts at any block like the raw one.
# cryptolib's CTR mode is not in the ESP32 build (MICROPY_PY_CRYPTOLIB_CTR is 0 there); ECB and
# CBC are (docs/security.md "Encrypted payloads").
# Loaded by ota.vet and ota.download only for an encrypted payload; RAM: two AES contexts and
# three 16-byte buffers; the block is decrypted in place (CBC decryption allows in == out).
import hashlib

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

KEY_FILE = "ota_content.key"
_LINE = const(83)  # the key file's line without its newline
_BLOCK = const(4096)
_DOMAIN = b"otakit content key\x00"


def key_id(key):
    # The 8-byte fingerprint of a content key (docs/format.md §2.6): it names the key, never
    # reveals it.
    return hashlib.sha256(_DOMAIN + key).digest()[:8]


def _load():
    # The key in KEY_FILE: the host's content key file as it is (otakit.contentkey), one line
    # "otakit-content-key " + 64 lowercase hex digits; None when absent or not that.
    try:
        with open(KEY_FILE, "rb") as f:
            line = f.read(_LINE + 2)
    except OSError:
        return None
    if line[-1:] == b"\n":
        line = line[:-1]
    if len(line) != _LINE or line[:19] != b"otakit-content-key ":
        return None
    from binascii import unhexlify
    try:
        return unhexlify(line[19:]) if line[19:].lower() == line[19:] else None
    except ValueError:
        return None


def key_problem(m):
    # Why this device cannot decrypt m's payload ("" when it can).
    key = _load()
    if key is None:
        return "the payload is encrypted and this device holds no content key (%s)" % KEY_FILE
    if key_id(key) != m.crypt[1]:
        return "the payload is encrypted for another content key than this device's"
    return ""


class Decrypt:
    def __init__(self, m):
        from cryptolib import aes
        key = _load()
        if key is None or key_id(key) != m.crypt[1]:  # the key file changed since the check
            from .errors import ManifestError
            raise ManifestError("NO_CONTENT_KEY", key_problem(m) or "the content key changed")
        self.ecb = aes(key, 1)  # the IVs
        self.cbc = aes(key, 2, bytes(16))  # the blocks: its IV is set per block (block())
        key = None
        self.ctr = bytearray(16)
        self.ctr[:12] = m.crypt[0]
        self.iv = bytearray(16)
        self.junk = bytearray(16)

    def block(self, k, buf, n):
        # Decrypt image block k, n bytes (a multiple of 16) at buf's start, in place.
        c = self.ctr
        c[12] = k >> 24
        c[13] = (k >> 16) & 0xFF
        c[14] = (k >> 8) & 0xFF
        c[15] = k & 0xFF
        self.ecb.encrypt(c, self.iv)
        # CBC decryption's chaining value becomes the last ciphertext block it was given: giving
        # it the IV as one block sets it to the IV (its output, into junk, is not used)
        self.cbc.decrypt(self.iv, self.junk)
        self.cbc.decrypt(buf if n == _BLOCK else memoryview(buf)[:n], buf)
