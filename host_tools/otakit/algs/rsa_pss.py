"""``rsa3072-pss-sha256``: RSA-3072, e = 65537, RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32,
over the 32-byte manifest digest ``D`` (docs/format.md §1.1; the ESP32 Secure Boot v2 scheme).

Envelope algorithm id 2, 384-byte signatures; the raw public key is the 384-byte big-endian
modulus. In a PKCS#11 token: CKM_SHA256_RSA_PKCS_PSS with MGF1-SHA-256 and a 32-byte salt (the
token hashes ``D`` itself, as RSASSA-PSS over the message ``D`` requires).
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from otakit.errors import KeyFileError

NAME = "rsa3072-pss-sha256"
ALG_ID = 2
SIG_LEN = 384
BITS = 3072
EXPONENT = 65537
PSS_SALT = 32
RAW_LEN = BITS // 8
CLI_NAMES = ("rsa3072-pss", "rsa")  # the first is offered by ``otakit keygen --alg``
DESCRIPTION = "RSA-3072"
PUBLIC_TYPE = rsa.RSAPublicKey
PRIVATE_TYPE = rsa.RSAPrivateKey
PKCS11_KEY_TYPE = "RSA"  # pkcs11.KeyType member

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT)


def raw_public(key: rsa.RSAPublicKey) -> bytes:
    """The raw public key as a keyring stores it; other sizes or exponents are refused.

    Raises:
        KeyFileError: ``UNSUPPORTED_KEY`` for anything but RSA-3072 with e = 65537.
    """
    nums = key.public_numbers()
    if key.key_size != BITS or nums.e != EXPONENT:
        raise KeyFileError(f"RSA key is {key.key_size}-bit with e={nums.e}; otakit needs "
                           f"RSA-{BITS} with e={EXPONENT}", reason="UNSUPPORTED_KEY")
    return nums.n.to_bytes(RAW_LEN, "big")


def public_from_raw(raw: bytes) -> rsa.RSAPublicKey:
    """The public key whose `raw_public` is ``raw`` (RAW_LEN bytes)."""
    return rsa.RSAPublicNumbers(EXPONENT, int.from_bytes(raw, "big")).public_key()


def generate() -> rsa.RSAPrivateKey:
    """A new private key."""
    return rsa.generate_private_key(public_exponent=EXPONENT, key_size=BITS)


def sign(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    """The signature over the 32-byte ``digest``."""
    return key.sign(digest, _PSS, hashes.SHA256())


def verify(key: rsa.RSAPublicKey, digest: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature over ``digest``."""
    try:
        key.verify(signature, digest, _PSS, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def pkcs11_sign(private: Any, digest: bytes) -> bytes:
    """Sign ``digest`` with a token's private key object."""
    from pkcs11 import MGF, Mechanism  # noqa: PLC0415

    return bytes(private.sign(digest, mechanism=Mechanism.SHA256_RSA_PKCS_PSS,
                              mechanism_param=(Mechanism.SHA256, MGF.SHA256, PSS_SALT)))


def pkcs11_public(public: Any) -> rsa.RSAPublicKey:
    """The public key of a token's RSA public key object."""
    from pkcs11 import Attribute  # noqa: PLC0415

    n = int.from_bytes(public[Attribute.MODULUS], "big")
    e = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(e, n).public_key()


def pkcs11_generate(session: Any, label: str, private_template: dict) -> Any:
    """Generate a key pair in the token; return the public key object.

    Raises:
        KeyFileError: ``BAD_KEY`` when the token refuses.
    """
    import pkcs11  # noqa: PLC0415
    from pkcs11 import Attribute, KeyType  # noqa: PLC0415

    params = {Attribute.PUBLIC_EXPONENT: EXPONENT.to_bytes(3, "big"), Attribute.VERIFY: True,
              Attribute.TOKEN: True}
    try:
        pub, _ = session.generate_keypair(KeyType.RSA, BITS, label=label, store=True,
                                          public_template=params,
                                          private_template=private_template)
    except pkcs11.PKCS11Error as e:
        raise KeyFileError(f"the token refused to generate the key: {e!r}",
                           reason="BAD_KEY") from e
    return pub
