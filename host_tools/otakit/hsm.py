"""Signing keys that live in a PKCS#11 token (an HSM, a smart card, SoftHSM2), via python-pkcs11.

A key is named by a PKCS#11 URI (RFC 7512)::

    pkcs11:token=otakit;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so

``module-path`` may instead come from ``$OTAKIT_PKCS11_MODULE``; the user PIN comes from
``$OTAKIT_PKCS11_PIN`` (or ``pin-value`` in the URI, for tests). `HSMKey` has the interface of
`otakit.keys.PrivateKey` that signing uses — ``alg``, ``key_id``, ``raw``, ``sign(digest)``,
``public_key()`` — so `otakit.manifest.sign_manifest` and ``otakit release`` / ``otakit rollout``
sign through the token unchanged.

Each algorithm's mechanism, key generation and public key reading live in its `otakit.algs`
module (``pkcs11_sign``, ``pkcs11_generate``, ``pkcs11_public``); both algorithms are checked
against SoftHSM 2.6 in the tests.

Invariants: keys are generated inside the token as sensitive and non-extractable (CKA_SENSITIVE
true, CKA_EXTRACTABLE false); nothing here ever reads private key material; only the public key
leaves the token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from otakit import algs
from otakit.errors import KeyFileError
from otakit.keys import PrivateKey, PublicKey

MODULE_ENV = "OTAKIT_PKCS11_MODULE"
PIN_ENV = "OTAKIT_PKCS11_PIN"
DEFAULT_MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
                   "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
_LIBS: dict[str, object] = {}


@dataclass(frozen=True)
class TokenRef:
    """A parsed ``pkcs11:`` URI."""

    token: str
    label: str
    module: str
    pin: str | None


def parse_uri(uri: str) -> TokenRef:
    """Parse ``pkcs11:token=T;object=O[?module-path=M&pin-value=P]``.

    Raises:
        KeyFileError: ``BAD_KEY`` for a malformed URI or no module.
    """
    if not uri.startswith("pkcs11:"):
        raise KeyFileError(f"not a pkcs11: URI: {uri!r}", reason="BAD_KEY")
    path, _, query = uri[7:].partition("?")
    attrs = dict(p.split("=", 1) for p in path.split(";") if "=" in p)
    attrs.update(dict(p.split("=", 1) for p in query.split("&") if "=" in p))
    attrs = {k: unquote(v) for k, v in attrs.items()}
    if "token" not in attrs or "object" not in attrs:
        raise KeyFileError(f"{uri}: give token=...;object=...", reason="BAD_KEY")
    module = attrs.get("module-path") or os.environ.get(MODULE_ENV) or next(
        (m for m in DEFAULT_MODULES if os.path.exists(m)), "")
    if not module:
        raise KeyFileError(f"no PKCS#11 module: add ?module-path=... to the URI or set "
                           f"{MODULE_ENV}", reason="BAD_KEY")
    return TokenRef(attrs["token"], attrs["object"], module,
                    attrs.get("pin-value") or os.environ.get(PIN_ENV))


def _token(ref: TokenRef):  # type: ignore[no-untyped-def]
    try:
        import pkcs11  # noqa: PLC0415
    except ImportError as e:
        raise KeyFileError("PKCS#11 signing needs python-pkcs11 (pip install python-pkcs11)",
                           reason="UNSUPPORTED_KEY") from e
    lib = _LIBS.get(ref.module)
    if lib is None:
        try:
            lib = _LIBS[ref.module] = pkcs11.lib(ref.module)
        except (OSError, RuntimeError, pkcs11.PKCS11Error) as e:
            raise KeyFileError(f"cannot load PKCS#11 module {ref.module}: {e}",
                               reason="BAD_KEY") from e
    try:
        return lib.get_token(token_label=ref.token)  # type: ignore[attr-defined]
    except pkcs11.PKCS11Error as e:
        raise KeyFileError(f"no PKCS#11 token labelled {ref.token!r}", reason="NO_KEY") from e


def _session(ref: TokenRef, rw: bool = False):  # type: ignore[no-untyped-def]
    import pkcs11  # noqa: PLC0415

    if not ref.pin:
        raise KeyFileError(f"the token's user PIN is needed: set {PIN_ENV}",
                           reason="PASSWORD_REQUIRED")
    try:
        return _token(ref).open(rw=rw, user_pin=ref.pin)
    except pkcs11.PinIncorrect as e:
        raise KeyFileError(f"wrong PIN for token {ref.token!r}", reason="BAD_PASSPHRASE") from e


def _public(pub) -> PublicKey:  # type: ignore[no-untyped-def]
    from pkcs11 import KeyType  # noqa: PLC0415

    for m in algs.ALGS.values():
        if pub.key_type == getattr(KeyType, m.PKCS11_KEY_TYPE):
            return PublicKey(m.pkcs11_public(pub))
    raise KeyFileError(f"token key type {pub.key_type} is not RSA or Ed25519",
                       reason="UNSUPPORTED_KEY")


class HSMKey(PrivateKey):
    """A signing key inside a PKCS#11 token; usable wherever a `PrivateKey` signs."""

    def __init__(self, ref: TokenRef, public: PublicKey) -> None:  # noqa: D107
        PublicKey.__init__(self, public._public)  # noqa: SLF001 - the public half only
        self.ref = ref

    def sign(self, digest: bytes) -> bytes:
        """Sign the 32-byte manifest digest ``D`` inside the token."""
        from pkcs11 import KeyType, ObjectClass  # noqa: PLC0415

        with _session(self.ref) as s:
            kt = getattr(KeyType, self._alg.PKCS11_KEY_TYPE)
            # get_key is typed as returning the base Key; a PRIVATE_KEY object can sign
            priv: Any = s.get_key(ObjectClass.PRIVATE_KEY, kt, label=self.ref.label)
            return self._alg.pkcs11_sign(priv, digest)

    def private_pem(self, passphrase: bytes | None) -> bytes:  # noqa: ARG002
        """Refused: the private key never leaves the token."""
        raise KeyFileError("the private key is inside the PKCS#11 token and cannot be exported",
                           reason="NOT_EXTRACTABLE")


def load_pkcs11_key(uri: str) -> HSMKey:
    """The token key a ``pkcs11:`` URI names (its public key is read from the token).

    Raises:
        KeyFileError: bad URI, module or token, wrong PIN, or no such key (``NO_KEY``).
    """
    import pkcs11  # noqa: PLC0415
    from pkcs11 import ObjectClass  # noqa: PLC0415

    ref = parse_uri(uri)
    with _session(ref) as s:
        try:
            pub = s.get_key(ObjectClass.PUBLIC_KEY, label=ref.label)
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as e:
            raise KeyFileError(f"no single public key labelled {ref.label!r} in token "
                               f"{ref.token!r}", reason="NO_KEY") from e
        return HSMKey(ref, _public(pub))


def generate_in_token(uri: str, alg: str) -> HSMKey:
    """Generate a key pair inside the token: the private key sensitive and non-extractable.

    Raises:
        KeyFileError: a key with that label exists (``EXISTS``), or the token refuses.
    """
    from pkcs11 import Attribute, ObjectClass  # noqa: PLC0415

    ref = parse_uri(uri)
    private = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
               Attribute.TOKEN: True, Attribute.PRIVATE: True}
    with _session(ref, rw=True) as s:
        if list(s.get_objects({Attribute.LABEL: ref.label,
                               Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            raise KeyFileError(f"token {ref.token!r} already has a key labelled {ref.label!r}",
                               reason="EXISTS")
        pub = algs.ALGS[alg].pkcs11_generate(s, ref.label, private)
        return HSMKey(ref, _public(pub))


__all__ = ["HSMKey", "TokenRef", "generate_in_token", "load_pkcs11_key", "parse_uri"]
