# ota/manifest.py: parse and check a signed release manifest (docs/format.md §1, §2).
# MIT license; Copyright (c) 2026 otakit contributors
"""Signed manifest parser.

parse(data, keyring) -> Manifest, in this order (docs/format.md §1.2):
  size <= 4096 -> envelope framing -> key id in keyring, same alg -> crypto.verify over
  D = SHA-256(domain || data[0:18+N]) -> only then json.loads of the body -> every field of §2
  type- and range-checked (bools are never ints). Any refusal raises ManifestError(reason, detail).
Its steps are signed() (up to the digest D) and body() (once the signature holds): the agent
(ota.check) calls them itself and checks the signature in between with this module released,
so that its code is not in the heap during the signature's arithmetic.
data may be bytes, bytearray or memoryview (the agent passes a view of its fetch buffer); the
envelope checks, the digest and json.loads (ota.strictjson) do not copy it. parse allocates:
the decoded objects and the Manifest. It checks nothing that needs device state;
check_target() and the agent do that.
"""

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:

    def const(x):
        return x


import hashlib

from ota import release
from ota.errors import ManifestError

_MAX = const(4096)
_HDR = const(18)
_DEPTH = const(16)  # deepest JSON nesting accepted in a body
_DOMAIN = b"otakit-manifest-v1\x00"
ENCODINGS = ("raw", "aes-256-cbc")  # aes-256-cbc: an encrypted payload (§2.8)


class Manifest:
    # A verified, checked manifest. Attributes (absent optional fields are None):
    #   alg (str), key_id (8 bytes)              - from the envelope
    #   product, board, channel, version (str), chip_id, sequence, security_version,
    #   created (int), expires (int|None), notes (str|None), support_end ("YYYY-MM-DD"),
    #   security (None | {"severity": str, "risk": str}),
    #   disruption (None | {"reboot": bool, "seconds": int}),
    #   rollout (None | {"percent": 0-100, "salt": str, "state": "active"|"paused"|"aborted"}),
    #   sbom (None | {"path": str, "size": int, "sha256": str}) - checked by ota.fleet
    #   cohort (None | (name, [member hash, ...])), pins (None | [{"member", "sequence"}, ...])
    #     - checked by ota.fleet (docs/format.md section 2.6)
    #   path (str), size (int), sha256 (32 bytes, the raw digest), encoding (str) - payload
    #   revert (bool): "action": "revert" (docs/format.md §2.6); ota.vet keeps it True only for
    #     a revert below the installed sequence, which ota.revert takes from the other slot
    #   crypt: None, or (nonce 12 bytes, key_id 8 bytes) of an encrypted payload (§2.8), and
    #     once ota.vet accepted it the device's content key (32 bytes, ota.contentkey)
    #   payloads: list of the known alternative representations (docs/format.md §2.2), each a
    #     tuple (encoding, path, size, sha256, wbits, base_size, base_sha256, chunk, chunks,
    #     chunk_bases, nonce); base_size, base_sha256 and chunk_bases are None but for a delta,
    #     the chunk fields None without chunks, nonce (12 bytes) None but in an encrypted
    #     release (§2.8); digests are 32 raw bytes
    # It has no methods on purpose: an instance then keeps only this small class alive, not
    # this module's code, which the agent releases after verifying (ota.release).
    crypt = None


# The envelope: returns (alg, key id, body end). Allocates only the 8-byte key id.
def _envelope(data):
    n = len(data)
    if n > _MAX:
        raise ManifestError("TOO_LARGE", "%d bytes" % n)
    if n < _HDR or data[0] != 0x4F or data[1] != 0x54 or data[2] != 0x41 or data[3] != 0x4D:
        raise ManifestError("BAD_FORMAT", "magic")
    if data[4] != 1:
        raise ManifestError("UNSUPPORTED_VERSION", "%d" % data[4])
    from ota.crypto import by_id  # the algorithm table; released with the signature check

    a = by_id(data[5])
    if a is None:
        raise ManifestError("UNKNOWN_ALGORITHM", "%d" % data[5])
    sig_len = a[3]
    body_len = data[14] | data[15] << 8
    if body_len < 1 or (data[16] | data[17] << 8) != sig_len or _HDR + body_len + sig_len != n:
        raise ManifestError("BAD_FORMAT", "lengths")
    return a[1], bytes(data[6:14]), _HDR + body_len


def parse(data, keyring):
    alg, key_id, key, end, digest = signed(data, keyring)
    if not _verify(alg, key, digest, memoryview(data)[end:]):
        raise ManifestError("BAD_SIGNATURE", "")
    return body(data, alg, key_id, end)


# parse()'s signature check (ota.crypto.verify: the algorithm by the table, types and lengths).
def _verify(alg, public_key, digest, signature):
    from ota.crypto import verify

    return verify(alg, public_key, digest, signature)


# The envelope's algorithm, key id and public key (from keyring), the body's end and the
# digest D the signature data[end:] must verify over; refuses what parse() refuses before that.
def signed(data, keyring):
    alg, key_id, end = _envelope(data)
    key = keyring.get(key_id)
    if key is None or key[0] != alg:
        from binascii import hexlify

        raise ManifestError("UNKNOWN_KEY", hexlify(key_id).decode())
    h = hashlib.sha256(_DOMAIN)
    h.update(memoryview(data)[:end])
    return alg, key_id, key[1], end, h.digest()


# The Manifest of the body data[18:end], only once its signature holds.
def body(data, alg, key_id, end):
    from ota import strictjson

    try:
        b = strictjson.loads(memoryview(data), _HDR, end, _DEPTH)
    except ValueError as e:
        raise ManifestError("BAD_BODY", e.args[0]) from None
    finally:
        strictjson = None
        release()  # strictjson is not in the heap while the field checks run
    if type(b) is not dict:
        raise ManifestError("BAD_BODY", "not an object")
    from ota.fields import fill  # the field checks: loaded only for a signed body

    m = Manifest()
    fill(m, alg, key_id, b)
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
