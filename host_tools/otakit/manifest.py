"""Signed manifests, host side: sign the envelope, parse and verify it (the body, its
dataclasses and checks, is `otakit.manifest_body`).

Implements docs/format.md §1–§2 exactly; the device's ``ota/manifest.py`` implements the same
page, and both are checked against ``tests/vectors/``. The checks run in the order the format
page gives (size, envelope, key, signature, body), with the same reason codes as the device.

Invariants:
- The signature covers the exact stored bytes ``data[0:18+N]`` (through the digest ``D``); the
  body is never re-serialised after signing.
- `verify_manifest` checks the signature before it parses any JSON.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from otakit.errors import ManifestError
from otakit.keys import ALG_IDS, SIG_LENGTHS, PrivateKey, PublicKey
from otakit.manifest_body import ManifestBody, parse_body

MAGIC = b"OTAM"
FORMAT_VERSION = 1
MAX_MANIFEST = 4096
HEADER_LEN = 18
DOMAIN = b"otakit-manifest-v1\x00"
_HEADER = struct.Struct("<4sBB8sHH")
ALG_NAMES = {v: k for k, v in ALG_IDS.items()}

@dataclass(frozen=True)
class Envelope:
    """A parsed envelope (docs/format.md §1), signature not yet checked."""

    alg: str
    key_id: bytes
    signed: bytes
    body: bytes
    signature: bytes

    @property
    def digest(self) -> bytes:
        """``D``, the 32-byte digest the signature is over."""
        return signed_digest(self.signed)


@dataclass(frozen=True)
class SignedManifest:
    """A manifest whose signature has been verified (or, from `parse_unverified`, not)."""

    envelope: Envelope
    body: ManifestBody
    verified: bool


def signed_digest(signed: bytes) -> bytes:
    """``D = SHA-256(b"otakit-manifest-v1\\x00" || data[0:18+N])`` (docs/format.md §1.1)."""
    return hashlib.sha256(DOMAIN + signed).digest()


def sign_manifest(body: ManifestBody | bytes, key: PrivateKey) -> bytes:
    """Build and sign a manifest.

    Args:
        body: a `ManifestBody` (serialised compactly) or exact body bytes (tests and vectors).
        key: the signing key; its algorithm and key id go into the header.

    Returns:
        The manifest file bytes.

    Raises:
        ManifestError: the body is invalid (``BAD_BODY``) or the result exceeds 4096 bytes
            (``TOO_LARGE``).
    """
    raw = body.to_json() if isinstance(body, ManifestBody) else body
    sig_len = SIG_LENGTHS[key.alg]
    total = HEADER_LEN + len(raw) + sig_len
    if total > MAX_MANIFEST:
        raise ManifestError(f"manifest would be {total} bytes, over the {MAX_MANIFEST}-byte "
                            "limit (shorten the notes)", reason="TOO_LARGE")
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, ALG_IDS[key.alg], key.key_id, len(raw), sig_len)
    signed = header + raw
    return signed + key.sign(signed_digest(signed))


def parse_envelope(data: bytes) -> Envelope:
    """Check the envelope framing (docs/format.md §1) without checking the signature.

    Raises:
        ManifestError: ``TOO_LARGE``, ``BAD_FORMAT``, ``UNSUPPORTED_VERSION`` or
            ``UNKNOWN_ALGORITHM``.
    """
    if len(data) > MAX_MANIFEST:
        raise ManifestError(f"manifest is {len(data)} bytes, over {MAX_MANIFEST}",
                            reason="TOO_LARGE")
    if len(data) < HEADER_LEN:
        raise ManifestError("manifest truncated: shorter than its header", reason="BAD_FORMAT")
    magic, version, alg_id, key_id, n, s = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ManifestError("not an otakit manifest (bad magic)", reason="BAD_FORMAT")
    if version != FORMAT_VERSION:
        raise ManifestError(f"manifest format version {version} is not supported",
                            reason="UNSUPPORTED_VERSION")
    if alg_id not in ALG_NAMES:
        raise ManifestError(f"unknown signature algorithm id {alg_id}", reason="UNKNOWN_ALGORITHM")
    alg = ALG_NAMES[alg_id]
    if n < 1 or s != SIG_LENGTHS[alg] or HEADER_LEN + n + s != len(data):
        raise ManifestError(f"manifest lengths do not add up (body {n}, signature {s}, "
                            f"file {len(data)})", reason="BAD_FORMAT")
    end = HEADER_LEN + n
    return Envelope(alg, bytes(key_id), bytes(data[:end]), bytes(data[HEADER_LEN:end]),
                    bytes(data[end:]))


def verify_manifest(data: bytes, keyring: Mapping[bytes, PublicKey]) -> SignedManifest:
    """Parse a manifest, verify its signature against ``keyring``, then parse its body.

    Args:
        data: the manifest file bytes.
        keyring: key id -> `PublicKey` (see `otakit.keys.load_keyring_module`).

    Returns:
        The verified manifest.

    Raises:
        ManifestError: any refusal, with the device's reason code (docs/format.md §5).
    """
    env = parse_envelope(data)
    key = keyring.get(env.key_id)
    if key is None or key.alg != env.alg:
        raise ManifestError(f"manifest signed by unknown {env.alg} key {env.key_id.hex()}",
                            reason="UNKNOWN_KEY")
    if not key.verify(env.digest, env.signature):
        raise ManifestError(f"manifest signature does not verify (key {env.key_id.hex()})",
                            reason="BAD_SIGNATURE")
    return SignedManifest(env, parse_body(env.body), verified=True)


def parse_unverified(data: bytes) -> SignedManifest:
    """Parse envelope and body without any signature check (inspect, the repository's own use).

    Raises:
        ManifestError: the envelope or body is malformed.
    """
    env = parse_envelope(data)
    return SignedManifest(env, parse_body(env.body), verified=False)


__all__ = ["DOMAIN", "MAX_MANIFEST", "Envelope", "SignedManifest", "parse_envelope",
           "parse_unverified", "sign_manifest", "signed_digest", "verify_manifest"]
