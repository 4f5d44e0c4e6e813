# ota/manifest.py: parse and check a signed release manifest (docs/format.md §1, §2).
# MIT license; Copyright (c) 2026 otakit contributors
"""Signed manifest parser.

parse(data, keyring) -> Manifest, in this order (docs/format.md §1.2):
  size <= 4096 -> envelope framing -> key id in keyring, same alg -> crypto.verify over
  D = SHA-256(domain || data[0:18+N]) -> only then json.loads of the body -> every field of §2
  type- and range-checked (bools are never ints). Any refusal raises ManifestError(reason, detail).
data may be bytes, bytearray or memoryview (the agent passes a view of its fetch buffer); the
envelope checks and the digest do not copy it. parse allocates: the body bytes (<= 4078) for
json.loads, the decoded objects, and the Manifest. It checks nothing that needs device state;
check_target() and the agent do that.
"""

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:

    def const(x):
        return x


import hashlib

from ota.crypto import verify as _verify
from ota.errors import ManifestError

_MAX = const(4096)
_HDR = const(18)
_INT31 = const(0x7FFFFFFF)
_TIME_MAX = const(0xFFFFFFFF)
_DEPTH = const(16)  # deepest JSON nesting accepted in a body
_DOMAIN = b"otakit-manifest-v1\x00"
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"
_PATH_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~/-"
_HEX = "0123456789abcdef"
_SEVERITIES = ("low", "medium", "high", "critical")
ENCODINGS = ("raw",)
REPRESENTATIONS = ("deflate", "delta")  # payloads[] entries this parser knows; others are skipped
_REPS_MAX = const(4)


class Manifest:
    # A verified, checked manifest. Attributes (absent optional fields are None):
    #   alg (str), key_id (8 bytes)              - from the envelope
    #   product, board, channel, version (str), chip_id, sequence, security_version,
    #   created (int), expires (int|None), notes (str|None), support_end ("YYYY-MM-DD"),
    #   security (None | {"severity": str, "risk": str}),
    #   disruption (None | {"reboot": bool, "seconds": int}),
    #   rollout (None | {"percent": 0-100, "salt": str, "state": "active"|"paused"|"aborted"}),
    #   sbom (None | {"path": str, "size": int, "sha256": str}) - checked by ota.fleet
    #   path (str), size (int), sha256 (32 bytes, the raw digest), encoding (str) - payload
    #   payloads: list of the known alternative representations (docs/format.md §2.2), each a
    #     tuple (encoding, path, size, sha256, wbits, base_size, base_sha256); the last two are
    #     None for deflate; digests are 32 raw bytes
    # It has no methods on purpose: an instance then keeps only this small class alive, not
    # this module's code, which the agent releases after verifying (ota.release).
    pass


def _fill(m, alg, key_id, b):
    # The checked fields of body b onto m (a Manifest).
    m.alg = alg
    m.key_id = key_id
    m.product = _name(b, "product")
    m.board = _name(b, "board")
    m.chip_id = _int(b, "chip_id", 0, 0xFFFF)
    m.channel = _name(b, "channel")
    v = _get(b, "version")
    if not (type(v) is str and 1 <= len(v) <= 32 and _printable(v)):
        _bad("version")
    m.version = v
    m.sequence = _int(b, "sequence", 1, _INT31)
    m.security_version = _int(b, "security_version", 0, _INT31)
    m.created = _int(b, "created", 0, _TIME_MAX)
    m.expires = _int(b, "expires", 0, _TIME_MAX, False)
    m.notes = _str(b, "notes", 1024, False)
    v = _get(b, "support_end")
    if not _date(v):
        _bad("support_end")
    m.support_end = v
    m.security = _security(b)
    m.disruption = _disruption(b)
    m.rollout = m.sbom = None
    if "rollout" in b or "sbom" in b:  # the fleet fields (docs/format.md §2.3, §2.4)
        from .fleet import check

        check(m, b)
    p = _get(b, "payload")
    if type(p) is not dict:
        _bad("payload")
    m.path = _path(_get(p, "path"))
    m.size = _int(p, "size", 1, _INT31)
    m.sha256 = _sha256(_get(p, "sha256"))
    m.encoding = _name(p, "encoding")
    m.payloads = _payloads(b)


def _bad(field):
    raise ManifestError("BAD_BODY", field)


def _get(d, k):
    if k not in d:
        _bad("missing " + k)
    return d[k]


def _int(d, k, lo, hi, required=True):
    if not required and k not in d:
        return None
    v = _get(d, k)
    if type(v) is not int or not lo <= v <= hi:  # type() is int: a bool is not an int here
        _bad(k)
    return v


def _str(d, k, hi, required=True):
    if not required and k not in d:
        return None
    v = _get(d, k)
    if type(v) is not str or len(v) > hi:
        _bad(k)
    return v


def _only(s, chars):
    for c in s:
        if c not in chars:
            return False
    return True


def _printable(s):
    for c in s:
        if ord(c) < 0x20 or ord(c) == 0x7F:
            return False
    return True


def _name(d, k):
    v = _get(d, k)
    if type(v) is not str or not 1 <= len(v) <= 32 or not _only(v, _NAME_CHARS):
        _bad(k)
    return v


def _date(v):
    if type(v) is not str or len(v) != 10 or v[4] != "-" or v[7] != "-":
        return False
    if not _only(v[:4] + v[5:7] + v[8:], "0123456789"):
        return False
    return 1 <= int(v[5:7]) <= 12 and 1 <= int(v[8:]) <= 31


def _path(v):
    if type(v) is not str or not 1 <= len(v) <= 255 or not _only(v, _PATH_CHARS):
        _bad("payload.path")
    for seg in v.split("/"):  # also refuses a leading "/", "//", "." and ".."
        if seg in ("", ".", ".."):
            _bad("payload.path")
    return v


def _sha256(v):
    if type(v) is not str or len(v) != 64 or not _only(v, _HEX):
        _bad("payload.sha256")
    from binascii import unhexlify

    return unhexlify(v)


def _payloads(b):
    if "payloads" not in b:
        return []
    v = b["payloads"]
    if type(v) is not list or not 1 <= len(v) <= _REPS_MAX:
        _bad("payloads")
    out = []
    for r in v:
        if type(r) is not dict:
            _bad("payloads")
        enc = _name(r, "encoding")
        if enc not in REPRESENTATIONS:
            continue  # a later revision's encoding: this device cannot use it
        base_size = base_sha = None
        if enc == "delta":
            base_size = _int(r, "base_size", 1, _INT31)
            base_sha = _sha256(_get(r, "base_sha256"))
        out.append((enc, _path(_get(r, "path")), _int(r, "size", 1, _INT31),
                    _sha256(_get(r, "sha256")), _int(r, "wbits", 9, 15), base_size, base_sha))
    return out


def _security(b):
    if "security" not in b:
        return None
    v = b["security"]
    if type(v) is not dict or v.get("severity") not in _SEVERITIES:
        _bad("security")
    return {"severity": v["severity"], "risk": _str(v, "risk", 512)}


def _disruption(b):
    if "disruption" not in b:
        return None
    v = b["disruption"]
    if type(v) is not dict or type(v.get("reboot")) is not bool:
        _bad("disruption")
    return {"reboot": v["reboot"], "seconds": _int(v, "seconds", 0, 86400)}


# Whether the JSON text in data[s:e] nests arrays/objects at most `limit` deep (strings skipped).
# Checked before json.loads, whose parser stack grows with the nesting (docs/format.md §2).
def _shallow(data, s, e, limit):
    depth = 0
    in_str = esc = False
    for i in range(s, e):
        c = data[i]
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:
                esc = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c == 0x5B or c == 0x7B:
            depth += 1
            if depth > limit:
                return False
        elif c == 0x5D or c == 0x7D:
            depth -= 1
    return True


# The envelope: returns (alg, key id, body end). Allocates only the 8-byte key id.
def _envelope(data):
    n = len(data)
    if n > _MAX:
        raise ManifestError("TOO_LARGE", "%d bytes" % n)
    if n < _HDR or data[0] != 0x4F or data[1] != 0x54 or data[2] != 0x41 or data[3] != 0x4D:
        raise ManifestError("BAD_FORMAT", "magic")
    if data[4] != 1:
        raise ManifestError("UNSUPPORTED_VERSION", "%d" % data[4])
    if data[5] == 1:
        alg, sig_len = "ed25519", 64
    elif data[5] == 2:
        alg, sig_len = "rsa3072-pss-sha256", 384
    else:
        raise ManifestError("UNKNOWN_ALGORITHM", "%d" % data[5])
    body_len = data[14] | data[15] << 8
    if body_len < 1 or (data[16] | data[17] << 8) != sig_len or _HDR + body_len + sig_len != n:
        raise ManifestError("BAD_FORMAT", "lengths")
    return alg, bytes(data[6:14]), _HDR + body_len


def parse(data, keyring):
    alg, key_id, end = _envelope(data)
    key = keyring.get(key_id)
    if key is None or key[0] != alg:
        from binascii import hexlify

        raise ManifestError("UNKNOWN_KEY", hexlify(key_id).decode())
    mv = memoryview(data)
    h = hashlib.sha256(_DOMAIN)
    h.update(mv[:end])
    if not _verify(alg, key[1], h.digest(), mv[end:]):
        raise ManifestError("BAD_SIGNATURE", "")
    if not _shallow(mv, _HDR, end, _DEPTH):
        _bad("nested deeper than %d" % _DEPTH)
    import json  # only once the signature holds

    try:
        body = json.loads(bytes(mv[_HDR:end]))
    except (ValueError, UnicodeError):  # CPython's JSONDecodeError is a ValueError
        raise ManifestError("BAD_BODY", "not UTF-8 JSON") from None
    if type(body) is not dict:
        _bad("not an object")
    m = Manifest()
    _fill(m, alg, key_id, body)
    return m


# For the agent, after parse(): refuses a manifest this device must not install, whatever its
# state. Raises ManifestError WRONG_PRODUCT, WRONG_BOARD (board name or chip id),
# UNSUPPORTED_ENCODING (not in ENCODINGS) or PAYLOAD_TOO_LARGE.
def check_target(m, product, board, chip_id, slot_size):
    if m.product != product:
        raise ManifestError("WRONG_PRODUCT", m.product)
    if m.board != board or m.chip_id != chip_id:
        raise ManifestError("WRONG_BOARD", "%s (chip id %d)" % (m.board, m.chip_id))
    if m.encoding not in ENCODINGS:
        raise ManifestError("UNSUPPORTED_ENCODING", m.encoding)
    if m.size > slot_size:
        raise ManifestError("PAYLOAD_TOO_LARGE", "%d > %d" % (m.size, slot_size))


# Whether the manifest has expired at Unix time now (the caller knows whether its clock is set).
def expired(m, now):
    return m.expires is not None and now > m.expires
