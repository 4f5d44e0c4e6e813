# ota/keyring.py: verify a signed keyring document against the root keys (docs/format.md §7).
# MIT license; Copyright (c) 2026 otakit contributors
"""Keyring documents: root keys (frozen in ota_keys) delegate to release keys.

parse(data, roots, threshold, product, env) -> Keyring, in the order of docs/format.md §7.3:
  size <= 4096 -> magic, version, framing of the signature records -> at least `threshold`
  distinct root keys (known to this firmware, same algorithm) whose signature over
  D = SHA-256(domain || body) verifies -> only then json.loads of the body -> every field
  checked -> product and env must be this device's. Raises ManifestError.
Signatures by keys this firmware does not know (e.g. a new root during a root rotation) are
skipped unverified, so verifying costs at most `threshold` + (bad signatures) verifications.
State (the version already accepted, expiry against the clock) is the agent's business.

The fetch phase that uses it is ota.trusted. pack(keys) / unpack(blob) turn the release keys
into the compact record form ota.state keeps: alg id u8 | key id 8 | raw public key, repeated.
"""

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:

    def const(x):
        return x


import hashlib
from ota.crypto import by_id, by_name
from ota.errors import ManifestError

_MAX = const(4096)
_HDR = const(8)
_MAX_SIGS = const(8)
_MAX_KEYS = const(8)
_INT31 = const(0x7FFFFFFF)
_TIME_MAX = const(0xFFFFFFFF)
_DOMAIN = b"otakit-keyring-v1\x00"
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"


class Keyring:
    # version (int), expires (int), created (int), product, env (str),
    # keys {key_id: (alg, raw)}, signers [root key ids that verified], digest (D, 32 bytes)
    pass


def _bad(field):
    raise ManifestError("BAD_BODY", "keyring " + field)


def _int(d, k, lo, hi):
    v = d.get(k)
    if type(v) is not int or not lo <= v <= hi:
        _bad(k)
    return v


def _name(d, k):
    v = d.get(k)
    if type(v) is not str or not 1 <= len(v) <= 32:
        _bad(k)
    for c in v:
        if c not in _NAME_CHARS:
            _bad(k)
    return v


def _hex(v, n):
    if type(v) is not str or len(v) != 2 * n:
        return None
    for c in v:
        if c not in "0123456789abcdef":
            return None
    from binascii import unhexlify

    return unhexlify(v)


def _records(data, n, count, start):
    # The signature records as [(alg or None, key id, offset, length)]; framing errors raise.
    out = []
    p = start
    for _ in range(count):
        if p + 11 > n:
            raise ManifestError("BAD_FORMAT", "keyring signature record")
        s = data[p + 9] | data[p + 10] << 8
        if s < 1 or p + 11 + s > n:
            raise ManifestError("BAD_FORMAT", "keyring signature length")
        a = by_id(data[p])
        out.append((a[1] if a else None, bytes(data[p + 1 : p + 9]), p + 11, s))
        p += 11 + s
    if p != n:
        raise ManifestError("BAD_FORMAT", "keyring length")
    return out


def parse(data, roots, threshold, product, env, accepted=None):
    # accepted: the body digest of the keyring this device holds; the same body again returns
    # None without verifying anything (it was verified when it was accepted).
    n = len(data)
    if n > _MAX:
        raise ManifestError("TOO_LARGE", "keyring %d bytes" % n)
    if n < _HDR or bytes(data[0:4]) != b"OTAK":
        raise ManifestError("BAD_FORMAT", "keyring magic")
    if data[4] != 1:
        raise ManifestError("UNSUPPORTED_VERSION", "keyring %d" % data[4])
    count = data[5]
    body_len = data[6] | data[7] << 8
    if not 1 <= count <= _MAX_SIGS or body_len < 1 or _HDR + body_len > n:
        raise ManifestError("BAD_FORMAT", "keyring lengths")
    end = _HDR + body_len
    sigs = _records(data, n, count, end)
    mv = memoryview(data)
    h = hashlib.sha256(_DOMAIN)
    h.update(mv[_HDR:end])
    d = h.digest()
    if d == accepted:
        return None
    if threshold < 1:
        threshold = 1
    from ota.crypto import verify as _verify

    good = []
    known = False
    for alg, kid, off, s in sigs:
        if kid in good:
            continue  # one root counts once, however many times it signed
        key = roots.get(kid)
        if key is None or key[0] != alg:
            continue
        known = True
        if _verify(alg, key[1], d, mv[off : off + s]):
            good.append(kid)
            if len(good) >= threshold:
                break
    if len(good) < threshold:
        if not known:
            raise ManifestError("UNKNOWN_KEY", "no signature by a root key of this firmware")
        raise ManifestError("BAD_SIGNATURE", "keyring: %d of %d root signatures"
                            % (len(good), threshold))
    from ota.strictjson import loads  # only once the signatures hold

    try:
        body = loads(mv, _HDR, end, 16)
    except ValueError as e:
        raise ManifestError("BAD_BODY", e.args[0]) from None
    if type(body) is not dict:
        _bad("not an object")
    k = Keyring()
    k.product = _name(body, "product")
    k.env = _name(body, "env")
    k.version = _int(body, "version", 1, _INT31)
    k.created = _int(body, "created", 0, _TIME_MAX)
    k.expires = _int(body, "expires", 0, _TIME_MAX)
    keys = body.get("keys")
    if type(keys) is not list or not 1 <= len(keys) <= _MAX_KEYS:
        _bad("keys")
    k.keys = {}
    for e in keys:  # pyright: ignore[reportOptionalIterable] - checked above
        a = by_name(e.get("alg")) if type(e) is dict else None
        raw = _hex(e.get("public"), a[2]) if a else None  # pyright: ignore[reportOptionalMemberAccess]
        if raw is None:
            _bad("keys")
        k.keys[hashlib.sha256(raw).digest()[:8]] = (a[1], raw)  # pyright: ignore[reportOptionalSubscript]
    k.signers = good
    k.digest = d
    if k.product != product:
        raise ManifestError("WRONG_PRODUCT", "keyring for " + k.product)
    if k.env != env:
        raise ManifestError("WRONG_ENV", "a %s keyring on %s firmware" % (k.env, env))
    return k


def pack(keys):
    out = bytearray()
    for kid, (alg, raw) in keys.items():
        out.append(by_name(alg)[0])  # pyright: ignore[reportOptionalSubscript]
        out += kid
        out += raw
    return bytes(out)


def unpack(blob):
    keys = {}
    p = 0
    while p + 9 <= len(blob):
        a = by_id(blob[p])
        if a is None:
            break
        keys[bytes(blob[p + 1 : p + 9])] = (a[1], bytes(blob[p + 9 : p + 9 + a[2]]))
        p += 9 + a[2]
    return keys
