# ota/crypto.py: signature verification for release manifests (docs/format.md §1.1).
# MIT license; Copyright (c) 2026 otakit contributors
#
# verify(alg, public_key, message, signature) -> bool is the only entry point. It never raises on
# bad data: wrong types, wrong lengths or an unknown algorithm all give False.
#   "rsa3072-pss-sha256": public_key is the 384-byte big-endian modulus, e = 65537; RSASSA-PSS
#     (RFC 8017 §9.1.2) with SHA-256, MGF1-SHA-256, salt length exactly 32, emBits = 3071.
#   "ed25519": RFC 8032 §5.1.7, strict and cofactorless (see ota/ed25519.py).
# Pure Python; runs on MicroPython (ESP32 and unix) and on CPython >= 3.11. The Ed25519 code is
# imported only when an Ed25519 signature is checked, so RSA-only devices never load its tables.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:

    def const(x):
        return x


import hashlib

_RSA_LEN = const(384)  # modulus, signature and EM length in bytes (emBits = 3071)
_DB_LEN = const(351)  # emLen - hLen - 1: the masked data block
_M256 = const((1 << 256) - 1)


def _is_buf(x):
    return isinstance(x, (bytes, bytearray, memoryview))


def verify(alg, public_key, message, signature):
    if not (_is_buf(public_key) and _is_buf(message) and _is_buf(signature)):
        return False
    if alg == "ed25519":
        if len(public_key) != 32 or len(signature) != 64:
            return False
        from ota.ed25519 import verify as ed25519_verify

        return ed25519_verify(bytes(public_key), message, bytes(signature))
    if alg == "rsa3072-pss-sha256":
        if len(public_key) != _RSA_LEN or len(signature) != _RSA_LEN:
            return False
        return _rsa_pss_verify(public_key, message, signature)
    return False


# MGF1-SHA-256 mask of seed, _DB_LEN bytes, returned as an integer with its leftmost bit cleared
# (8*emLen - emBits = 1). Allocates one 352-byte buffer and one digest per block.
def _mgf1_int(seed):
    buf = bytearray(_DB_LEN + 1)
    c = bytearray(4)
    for i in range(11):
        c[3] = i
        h = hashlib.sha256(seed)
        h.update(c)
        buf[i * 32 : i * 32 + 32] = h.digest()
    buf[0] &= 0x7F
    return int.from_bytes(buf, "big") >> 8


# RFC 8017 §8.1.2 + §9.1.2, working on the integer m = s^e mod n instead of the byte string EM:
# EM = maskedDB (351 bytes) || H (32) || 0xbc, so every field is a shift and a mask.
def _rsa_pss_verify(modulus, message, signature):
    n = int.from_bytes(modulus, "big")
    if n >> 3071 != 1 or not n & 1:  # a 3072-bit odd modulus
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    m = pow(s, 65537, n)
    if m & 0xFF != 0xBC or m >> 3071:  # trailer field; leftmost bit of EM must be zero
        return False
    h = ((m >> 8) & _M256).to_bytes(32, "big")
    db = (m >> 264) ^ _mgf1_int(h)
    # DB = PS (318 zero bytes) || 0x01 || salt (32 bytes)
    if db >> 256 != 1:
        return False
    mp = hashlib.sha256(bytes(8))
    mp.update(hashlib.sha256(message).digest())
    mp.update((db & _M256).to_bytes(32, "big"))
    return mp.digest() == h
