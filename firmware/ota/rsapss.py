# ota/rsapss.py: RSASSA-PSS signature verification, the "rsa3072-pss-sha256" entry of ota.crypto.
# MIT license; Copyright (c) 2026 otakit contributors
#
# verify(public_key, message, signature) -> bool for a 384-byte big-endian modulus and a 384-byte
# signature (ota.crypto checks types and lengths): RSASSA-PSS (RFC 8017 §9.1.2) with e = 65537,
# SHA-256, MGF1-SHA-256, salt length exactly 32, emBits = 3071 (docs/format.md §1.1). This is
# the ESP32 Secure Boot v2 scheme. Loaded only while a signature of this algorithm is checked.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:

    def const(x):
        return x


import hashlib

_DB_LEN = const(351)  # emLen - hLen - 1: the masked data block
_M256 = const((1 << 256) - 1)


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
def verify(public_key, message, signature):
    n = int.from_bytes(public_key, "big")  # the modulus
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
