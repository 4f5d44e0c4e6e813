# ota/crypto.py: the device's one table of signature algorithms, and verify() dispatching on it
# (docs/format.md §1, §1.1, §3). MIT license; Copyright (c) 2026 otakit contributors
#
# ALGS holds one row per algorithm: (envelope id, name, raw public key length, signature length,
# module, as a name for __import__). The module has verify(public_key, message, signature) -> bool for
# buffers (bytes, bytearray or memoryview) of exactly those lengths; it is imported only while a signature of its algorithm is
# checked, so its code and tables are not in the heap otherwise (RSA-only devices never load the
# Ed25519 tables). The manifest envelope (ota.manifest), the keyring (ota.keyring) and the
# keyring record (ota.keyring.pack/unpack) read ids and lengths from here. Adding an algorithm:
# a module with verify(), one row here; the host side is host_tools/otakit/algs/.
#   1 "ed25519": RFC 8032 §5.1.7, strict and cofactorless (ota/ed25519.py)
#   2 "rsa3072-pss-sha256": RSASSA-PSS, SHA-256, salt 32, e = 65537, 3072 bits (ota/rsapss.py)
ALGS = (
    (1, "ed25519", 32, 64, "ota.ed25519"),
    (2, "rsa3072-pss-sha256", 384, 384, "ota.rsapss"),
)


# The row with envelope id i, or None.
def by_id(i):
    for a in ALGS:
        if a[0] == i:
            return a
    return None


# The row named name, or None.
def by_name(name):
    for a in ALGS:
        if a[1] == name:
            return a
    return None


# The module that verifies alg, as a name for __import__, when the arguments are buffers of its
# lengths; else None. ota.check calls it, releases this module, then imports that one.
def module(alg, public_key, message, signature):
    for x in (public_key, message, signature):
        if not isinstance(x, (bytes, bytearray, memoryview)):
            return None
    a = by_name(alg)
    if a is None or len(public_key) != a[2] or len(signature) != a[3]:
        return None
    return a[4]


# verify(alg, public_key, message, signature) -> bool: the signature check by the table. It
# never raises on bad data: wrong types, wrong lengths or an unknown algorithm all give False.
def verify(alg, public_key, message, signature):
    m = module(alg, public_key, message, signature)
    return m is not None and __import__(m, None, None, ("verify",), 0).verify(
        public_key, message, signature)
