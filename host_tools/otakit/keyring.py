"""Keyring documents, host side (docs/format.md §7): root keys delegate to release keys.

A keyring document lists the release keys a product's devices trust for manifests. It is signed
by the product's root keys (kept offline); the firmware names the roots and a threshold ``k`` in
its frozen ``ota_keys`` module, and a device accepts a keyring with ``k`` valid signatures by
distinct roots it knows, a higher ``version`` than the one it holds, for its product and env,
and not expired. Rotation = publish a new version; revocation = leave a key out.

The device's ``ota/keyring.py`` implements the same page; both are checked against
``tests/vectors/keyrings/``.

Invariants:
- Signatures cover ``D = SHA-256(b"otakit-keyring-v1\\0" || body)``: the exact stored body bytes,
  so signatures can be added one root at a time (offline, on different machines) without
  re-signing the others.
- A document is at most 4096 bytes, 1..8 signatures, 1..8 keys.
- A detached signature (`add_signatures`, ``otakit keyring sign --signature-in``) is verified
  against its root before it goes into a document.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from otakit import strictjson
from otakit.algs import ALGS
from otakit.errors import ManifestError
from otakit.keys import ALG_IDS, ENVS, PrivateKey, PublicKey
from otakit.manifest_body import INT31, MAX_DEPTH, NAME_RE, TIME_MAX

MAGIC = b"OTAK"
FORMAT_VERSION = 1
MAX_KEYRING = 4096
HEADER_LEN = 8
MAX_SIGNATURES = 8
MAX_KEYS = 8
DOMAIN = b"otakit-keyring-v1\x00"
ALG_NAMES = {v: k for k, v in ALG_IDS.items()}


@dataclass(frozen=True)
class KeyringBody:
    """The keyring body (docs/format.md §7.2)."""

    product: str
    env: str
    version: int
    created: int
    expires: int
    keys: tuple[PublicKey, ...]

    def to_json(self) -> bytes:
        """The body bytes that are signed (compact JSON)."""
        d = {"product": self.product, "env": self.env, "version": self.version,
             "created": self.created, "expires": self.expires,
             "keys": [{"alg": k.alg, "public": k.raw.hex()} for k in self.keys]}
        return json.dumps(d, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Signature:
    """One signature record: the algorithm name (None if unknown), key id and signature."""

    alg: str | None
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class ParsedKeyring:
    """A keyring document split into its parts; ``signers`` are the roots that verified."""

    body: KeyringBody
    body_bytes: bytes
    signatures: tuple[Signature, ...]
    signers: tuple[bytes, ...] = ()

    @property
    def digest(self) -> bytes:
        """``D``, the signed digest of the body."""
        return body_digest(self.body_bytes)


def body_digest(body: bytes) -> bytes:
    """``D = SHA-256(domain || body)``."""
    return hashlib.sha256(DOMAIN + body).digest()


def _bad(detail: str) -> ManifestError:
    return ManifestError(f"bad keyring body: {detail}", reason="BAD_BODY")


def encode(body: bytes, signatures: Iterable[Signature]) -> bytes:
    """Frame ``body`` and its signature records (docs/format.md §7.1)."""
    sigs = list(signatures)
    out = bytearray(struct.pack("<4sBBH", MAGIC, FORMAT_VERSION, len(sigs), len(body)) + body)
    for s in sigs:
        alg_id = ALG_IDS[s.alg] if s.alg else 0
        out += struct.pack("<B8sH", alg_id, s.key_id, len(s.signature)) + s.signature
    return bytes(out)


def sign_keyring(body: KeyringBody | bytes, roots: Iterable[PrivateKey],
                 existing: Iterable[Signature] = ()) -> bytes:
    """Sign ``body`` with every root in ``roots`` (kept after ``existing`` signatures).

    Raises:
        ManifestError: no signature, more than 8, more than 8 keys, or over 4096 bytes.
    """
    raw = body.to_json() if isinstance(body, KeyringBody) else body
    if isinstance(body, KeyringBody) and not 1 <= len(body.keys) <= MAX_KEYS:
        raise ManifestError(f"a keyring lists 1..{MAX_KEYS} keys", reason="BAD_BODY")
    d = body_digest(raw)
    sigs = {s.key_id: s for s in existing}
    for r in roots:
        sigs[r.key_id] = Signature(r.alg, r.key_id, r.sign(d))
    return _assemble(raw, sigs)


def add_signatures(body: bytes, signed: Iterable[tuple[PublicKey, bytes]],
                   existing: Iterable[Signature] = ()) -> bytes:
    """The document of ``body`` with detached signatures added (kept after ``existing``):
    ``signed`` pairs each root's public key with its raw signature over ``D``, each checked
    before anything is built.

    Raises:
        ManifestError: a signature does not verify (``BAD_SIGNATURE``), or as `sign_keyring`.
    """
    d = body_digest(body)
    sigs = {s.key_id: s for s in existing}
    for key, sig in signed:
        if not key.verify(d, sig):
            raise ManifestError(f"the signature given for root {key.key_id_hex} is not its "
                                "signature over this keyring body's digest", reason="BAD_SIGNATURE")
        sigs[key.key_id] = Signature(key.alg, key.key_id, sig)
    return _assemble(body, sigs)


def _assemble(raw: bytes, sigs: Mapping[bytes, Signature]) -> bytes:
    if not 1 <= len(sigs) <= MAX_SIGNATURES:
        raise ManifestError(f"a keyring carries 1..{MAX_SIGNATURES} signatures",
                            reason="BAD_FORMAT")
    doc = encode(raw, sigs.values())
    if len(doc) > MAX_KEYRING:
        raise ManifestError(f"the keyring is {len(doc)} bytes, over {MAX_KEYRING}: list fewer "
                            "keys or use Ed25519 roots", reason="TOO_LARGE")
    return doc


def parse_unverified(data: bytes) -> ParsedKeyring:
    """Split a keyring document and check its framing and body, in the order of §7.3 (but
    without signatures).

    Raises:
        ManifestError: TOO_LARGE, BAD_FORMAT, UNSUPPORTED_VERSION or BAD_BODY.
    """
    n = len(data)
    if n > MAX_KEYRING:
        raise ManifestError(f"keyring of {n} bytes", reason="TOO_LARGE")
    if n < HEADER_LEN or data[:4] != MAGIC:
        raise ManifestError("not a keyring document (magic)", reason="BAD_FORMAT")
    if data[4] != FORMAT_VERSION:
        raise ManifestError(f"keyring format version {data[4]}", reason="UNSUPPORTED_VERSION")
    count, body_len = data[5], struct.unpack_from("<H", data, 6)[0]
    if not 1 <= count <= MAX_SIGNATURES or body_len < 1 or HEADER_LEN + body_len > n:
        raise ManifestError("keyring lengths", reason="BAD_FORMAT")
    p = HEADER_LEN + body_len
    sigs = []
    for _ in range(count):
        if p + 11 > n:
            raise ManifestError("keyring signature record", reason="BAD_FORMAT")
        alg_id, kid, s = struct.unpack_from("<B8sH", data, p)
        if s < 1 or p + 11 + s > n:
            raise ManifestError("keyring signature length", reason="BAD_FORMAT")
        sigs.append(Signature(ALG_NAMES.get(alg_id), kid, data[p + 11:p + 11 + s]))
        p += 11 + s
    if p != n:
        raise ManifestError("keyring length", reason="BAD_FORMAT")
    raw = data[HEADER_LEN:HEADER_LEN + body_len]
    return ParsedKeyring(parse_body(raw), raw, tuple(sigs))


def _strict_json(raw: bytes) -> Any:
    if raw.startswith(b"\xef\xbb\xbf"):
        raise _bad("BOM")
    try:
        return strictjson.loads(raw, MAX_DEPTH)
    except strictjson.StrictJSONError as e:
        raise _bad(str(e)) from None


def _int(d: Mapping[str, Any], k: str, lo: int, hi: int) -> int:
    v = d.get(k)
    if type(v) is not int or not lo <= v <= hi:
        raise _bad(k)
    return v


def parse_body(raw: bytes) -> KeyringBody:
    """Check a keyring body (§7.2). Raises ManifestError(BAD_BODY)."""
    d = _strict_json(raw)
    if not isinstance(d, dict):
        raise _bad("not an object")
    names = {}
    for k in ("product", "env"):
        v = d.get(k)
        if not isinstance(v, str) or not NAME_RE.fullmatch(v):
            raise _bad(k)
        names[k] = v
    keys = d.get("keys")
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
        raise _bad("keys")
    out = []
    for e in keys:
        if not isinstance(e, dict) or e.get("alg") not in ALG_IDS:
            raise _bad("keys")
        pub = e.get("public")
        size = ALGS[e["alg"]].RAW_LEN
        if not isinstance(pub, str) or len(pub) != 2 * size or pub.strip("0123456789abcdef"):
            raise _bad("keys")
        try:
            out.append(PublicKey.from_raw(e["alg"], bytes.fromhex(pub)))
        except Exception as ex:  # noqa: BLE001 - an invalid point or modulus
            raise _bad("keys") from ex
    return KeyringBody(names["product"], names["env"], _int(d, "version", 1, INT31),
                       _int(d, "created", 0, TIME_MAX), _int(d, "expires", 0, TIME_MAX),
                       tuple(out))


def verify_keyring(data: bytes, roots: Mapping[bytes, PublicKey], threshold: int,
                   product: str | None = None, env: str | None = None) -> ParsedKeyring:
    """Parse and verify: ``threshold`` distinct ``roots`` signed the body (§7.3).

    Raises:
        ManifestError: any §7.3 refusal (UNKNOWN_KEY, BAD_SIGNATURE, WRONG_PRODUCT, WRONG_ENV...).
    """
    # Framing first, then the signatures, then the body: the device's order.
    pk = _split_for_signatures(data)
    d = body_digest(pk[0])
    good: list[bytes] = []
    known = False
    for s in pk[1]:
        key = roots.get(s.key_id)
        if s.key_id in good or key is None or key.alg != s.alg:
            continue
        known = True
        if key.verify(d, s.signature):
            good.append(s.key_id)
    need = max(1, threshold)
    if len(good) < need:
        if not known:
            raise ManifestError("no keyring signature by a known root key", reason="UNKNOWN_KEY")
        raise ManifestError(f"keyring: {len(good)} of {need} root signatures",
                            reason="BAD_SIGNATURE")
    parsed = parse_unverified(data)
    if product is not None and parsed.body.product != product:
        raise ManifestError(f"a keyring for {parsed.body.product}", reason="WRONG_PRODUCT")
    if env is not None and parsed.body.env != env:
        raise ManifestError(f"a {parsed.body.env} keyring for {env} firmware",
                            reason="WRONG_ENV")
    return ParsedKeyring(parsed.body, parsed.body_bytes, parsed.signatures, tuple(good))


def _split_for_signatures(data: bytes) -> tuple[bytes, list[Signature]]:
    """Framing checks only; the body and the signature records."""
    try:
        parse_unverified(data)
    except ManifestError as e:
        if e.reason != "BAD_BODY":
            raise
    body_len = struct.unpack_from("<H", data, 6)[0]
    p = HEADER_LEN + body_len
    sigs = []
    for _ in range(data[5]):
        alg_id, kid, s = struct.unpack_from("<B8sH", data, p)
        sigs.append(Signature(ALG_NAMES.get(alg_id), kid, data[p + 11:p + 11 + s]))
        p += 11 + s
    return data[HEADER_LEN:HEADER_LEN + body_len], sigs


def new_body(product: str, keys: Iterable[PublicKey], version: int, created: int, expires: int,
             env: str = "production") -> KeyringBody:
    """A checked keyring body (round-trips through `parse_body`).

    Raises:
        ManifestError: a field out of range (BAD_BODY).
    """
    if env not in ENVS:
        raise _bad(f"env must be one of {', '.join(ENVS)}")
    body = KeyringBody(product, env, version, created, expires, tuple(keys))
    parse_body(body.to_json())
    return body
