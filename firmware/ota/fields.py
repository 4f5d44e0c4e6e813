# ota/fields.py: the field checks of a signed manifest body (docs/format.md §2).
# MIT license; Copyright (c) 2026 otakit contributors
#
# fill(m, alg, key_id, body) puts every field of the decoded JSON body onto m (an
# ota.manifest.Manifest), type- and range-checked (bools are never ints); anything else raises
# ManifestError BAD_BODY naming the field. ota.manifest.parse loads this module only after the
# signature holds. The typed getters it shares with ota.fleet are in ota.jsonfields.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:

    def const(x):
        return x


from array import array

from ota.errors import ManifestError
from ota.jsonfields import HEX, bad, get, integer, name, only, path

_INT31 = const(0x7FFFFFFF)
_TIME_MAX = const(0xFFFFFFFF)
_REPS_MAX = const(4)
_CHUNK_MIN = const(4096)  # a representation's chunk: a multiple of this ...
_CHUNK_MAX = const(0x1000000)  # ... up to this


def fill(m, alg, key_id, b):
    # The checked fields of body b onto m (a Manifest).
    m.alg = alg
    m.key_id = key_id
    m.product = name(b, "product")
    m.board = name(b, "board")
    m.chip_id = integer(b, "chip_id", 0, 0xFFFF)
    m.channel = name(b, "channel")
    m.revision = integer(b, "revision", 1, _INT31)  # this channel's signed-state counter
    v = get(b, "version")
    if type(v) is not str or not 1 <= len(v) <= 32:
        bad("version")
    for c in v:  # printable: no control character
        if ord(c) < 0x20 or ord(c) == 0x7F:
            bad("version")
    m.version = v
    m.sequence = integer(b, "sequence", 1, _INT31)
    m.security_version = integer(b, "security_version", 0, _INT31)
    m.created = integer(b, "created", 0, _TIME_MAX)
    m.expires = integer(b, "expires", 0, _TIME_MAX, False)
    m.min_keyring = integer(b, "min_keyring", 0, _INT31, False) or 0
    m.notes = _str(b, "notes", 1024, False)
    v = get(b, "support_end")
    if not _date(v):
        bad("support_end")
    m.support_end = v
    m.security = m.disruption = None
    if "security" in b:
        v = b["security"]
        if type(v) is not dict or v.get("severity") not in ("low", "medium", "high", "critical"):
            bad("security")
        m.security = {"severity": v["severity"], "risk": _str(v, "risk", 512)}
    if "disruption" in b:
        v = b["disruption"]
        if type(v) is not dict or type(v.get("reboot")) is not bool:
            bad("disruption")
        m.disruption = {"reboot": v["reboot"], "seconds": integer(v, "seconds", 0, 86400)}
    # "action": "revert" (docs/format.md §2.6): the image named is to be taken from the other
    # slot. Any other action is refused: this device does not know what it would ask.
    m.revert = "action" in b
    if m.revert and b["action"] != "revert":
        bad("action")
    m.rollout = m.sbom = m.cohort = m.pins = None
    if "rollout" in b or "sbom" in b or "cohort" in b or "pins" in b:  # fleet: §2.3, §2.4, §2.7
        from .fleet import check

        check(m, b)
    p = get(b, "payload")
    if type(p) is not dict:
        bad("payload")
    m.path = path(get(p, "path"))
    m.size = integer(p, "size", 1, _INT31)
    m.sha256 = _sha256(get(p, "sha256"))
    m.encoding = name(p, "encoding")
    m.crypt = None
    if m.encoding == "aes-256-cbc":  # an encrypted payload (docs/format.md §2.8)
        m.crypt = _crypt(p, m.size)
    m.payloads = _payloads(b, m.size, m.crypt is not None)


def _str(d, k, hi, required=True):
    if not required and k not in d:
        return None
    v = get(d, k)
    if type(v) is not str or len(v) > hi:
        bad(k)
    return v


def _date(v):
    if type(v) is not str or len(v) != 10 or v[4] != "-" or v[7] != "-":
        return False
    if not only(v[:4] + v[5:7] + v[8:], "0123456789"):
        return False
    return 1 <= int(v[5:7]) <= 12 and 1 <= int(v[8:]) <= 31


def _sha256(v):
    if type(v) is not str or len(v) != 64 or not only(v, HEX):
        bad("payload.sha256")
    from binascii import unhexlify

    return unhexlify(v)


def _hex(d, k, n, where="payload."):
    v = get(d, k)
    if type(v) is not str or len(v) != 2 * n or not only(v, HEX):
        bad(where + k)
    from binascii import unhexlify

    return unhexlify(v)


def _crypt(p, size):
    # (nonce, key_id) of an encrypted payload; its blob's SHA-256 (blob_sha256) is the host's.
    if size % 16:
        bad("payload.size")
    _hex(p, "blob_sha256", 32)
    return _hex(p, "nonce", 12), _hex(p, "key_id", 8)


def _payloads(b, image_size, encrypted):
    if "payloads" not in b:
        return []
    v = b["payloads"]
    if type(v) is not list or not 1 <= len(v) <= _REPS_MAX:
        bad("payloads")
    out = []
    for r in v:
        if type(r) is not dict:
            bad("payloads")
        enc = name(r, "encoding")
        if enc != "deflate" and enc != "delta":
            continue  # a later revision's encoding: this device cannot use it
        base_size = base_sha = None
        if enc == "delta":
            base_size = integer(r, "base_size", 1, _INT31)
            base_sha = _sha256(get(r, "base_sha256"))
        size = integer(r, "size", 1, _INT31)
        rep = ((enc, path(get(r, "path")), size, _sha256(get(r, "sha256")),
                integer(r, "wbits", 9, 15), base_size, base_sha)
               + _chunks(r, enc, size, image_size, base_size))
        nonce = None
        if encrypted:  # encrypted per chunk (§2.8): chunks of whole AES blocks, and a nonce
            lengths = rep[8]
            if lengths is None:
                bad("chunk")
            else:
                for n in lengths:
                    if int(n) % 16:
                        bad("chunks")
            nonce = _hex(r, "nonce", 12, "payloads[].")
        out.append(rep + (nonce,))
    return out


def _chunks(r, enc, size, image_size, base_size):
    # (chunk, lengths, bases) of a resumable representation (body revision 4), Nones without.
    # The lists are kept as arrays of i32 (a third of a parsed list's RAM during the install).
    if "chunk" not in r:
        return None, None, None
    chunk = integer(r, "chunk", _CHUNK_MIN, _CHUNK_MAX) or 0  # required here: never None
    if chunk % _CHUNK_MIN:
        bad("chunk")
    n = (image_size + chunk - 1) // chunk
    lengths = get(r, "chunks")
    if type(lengths) is not list or len(lengths) != n:
        bad("chunks")
    total = 0
    for v in lengths:
        if type(v) is not int or not 1 <= v <= _INT31:
            bad("chunks")
        total += v
    if total != size:
        bad("chunks")
    bases = None
    if enc == "delta":
        bases = get(r, "chunk_bases")
        if type(bases) is not list or len(bases) != n or bases[0] != 0:
            bad("chunk_bases")
        at = 0
        for v in bases:
            if type(v) is not int or not 0 <= at + v <= base_size:
                bad("chunk_bases")
            at += chunk
        bases = array("i", bases)
    return chunk, array("i", lengths), bases
