"""``ed25519``: RFC 8032 Ed25519 over the 32-byte manifest digest ``D`` (docs/format.md §1.1).

Envelope algorithm id 1, 64-byte signatures; the raw public key is the 32-byte point encoding.
In a PKCS#11 token: an EC_EDWARDS key pair on curve 1.3.101.112, signed with CKM_EDDSA (pure).
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

NAME = "ed25519"
ALG_ID = 1
SIG_LEN = 64
RAW_LEN = 32
CLI_NAMES = ("ed25519",)  # the first is offered by ``otakit keygen --alg``
DESCRIPTION = "ed25519"
PUBLIC_TYPE = ed25519.Ed25519PublicKey
PRIVATE_TYPE = ed25519.Ed25519PrivateKey
PKCS11_KEY_TYPE = "EC_EDWARDS"  # pkcs11.KeyType member


def raw_public(key: ed25519.Ed25519PublicKey) -> bytes:
    """The raw public key as a keyring stores it (the 32-byte encoding)."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_from_raw(raw: bytes) -> ed25519.Ed25519PublicKey:
    """The public key whose `raw_public` is ``raw`` (RAW_LEN bytes)."""
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def generate() -> ed25519.Ed25519PrivateKey:
    """A new private key."""
    return ed25519.Ed25519PrivateKey.generate()


def sign(key: ed25519.Ed25519PrivateKey, digest: bytes) -> bytes:
    """The signature over the 32-byte ``digest``."""
    return key.sign(digest)


def verify(key: ed25519.Ed25519PublicKey, digest: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature over ``digest``."""
    try:
        key.verify(signature, digest)
    except InvalidSignature:
        return False
    return True


def pkcs11_sign(private: Any, digest: bytes) -> bytes:
    """Sign ``digest`` with a token's private key object."""
    from pkcs11 import Mechanism  # noqa: PLC0415

    return bytes(private.sign(digest, mechanism=Mechanism.EDDSA))


def pkcs11_public(public: Any) -> ed25519.Ed25519PublicKey:
    """The public key of a token's EC_EDWARDS public key object."""
    from pkcs11 import Attribute  # noqa: PLC0415

    point = bytes(public[Attribute.EC_POINT])
    if len(point) == 34 and point[:2] == b"\x04\x20":  # DER OCTET STRING
        point = point[2:]
    return public_from_raw(point)


def pkcs11_generate(session: Any, label: str, private_template: dict) -> Any:
    """Generate a key pair in the token; return the public key object."""
    from pkcs11 import Attribute, KeyType  # noqa: PLC0415
    from pkcs11.util.ec import encode_named_curve_parameters  # noqa: PLC0415

    params = {Attribute.EC_PARAMS: encode_named_curve_parameters("1.3.101.112"),
              Attribute.VERIFY: True, Attribute.TOKEN: True}
    pub, _ = session.generate_keypair(KeyType.EC_EDWARDS, None, label=label, store=True,
                                      public_template=params, private_template=private_template)
    return pub
