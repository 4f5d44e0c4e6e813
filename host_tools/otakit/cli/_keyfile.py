"""Key arguments shared by several commands: a PEM file or a ``pkcs11:`` URI.

Not a command module: `load_any_key` (any key, prompting for a passphrase), `load_signing_key`
(the same, refusing a public key) and `trusted_keys` (the --key/--keyring pair of ``verify`` and
``inspect``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from otakit import keys
from otakit.errors import KeyFileError

K = TypeVar("K", bound=keys.PublicKey)


def load_any_key(path: str) -> keys.PublicKey:
    """Load a key file, or a token key by its ``pkcs11:`` URI (`otakit.hsm`); an encrypted
    private key file uses $OTAKIT_KEY_PASSPHRASE or a prompt."""
    if path.startswith("pkcs11:"):
        return _token_key(path)
    return _with_passphrase(path, keys.load_key)


def load_signing_key(path: str) -> keys.PrivateKey:
    """`load_any_key`, refusing a public key (``NOT_PRIVATE``): the key signs."""
    if path.startswith("pkcs11:"):
        return _token_key(path)
    return _with_passphrase(path, keys.load_private_key)


def _token_key(uri: str) -> keys.PrivateKey:
    from otakit.hsm import load_pkcs11_key  # noqa: PLC0415

    return load_pkcs11_key(uri)


def _with_passphrase(path: str, load: Callable[[str, bytes | None], K]) -> K:
    try:
        return load(path, keys.passphrase_from_env())
    except KeyFileError as e:
        if e.reason != "PASSWORD_REQUIRED":
            raise
    value = click.prompt(f"Passphrase for {path}", hide_input=True, default="",
                         show_default=False)
    return load(path, value.encode() or None)


def trusted_keys(key_files: tuple[str, ...], keyring: str | None) -> dict[bytes, keys.PublicKey]:
    """The keys that --key KEY_FILE... and --keyring MODULE name, by key id; at least one."""
    ring = {k.key_id: k for k in keys.dedupe(load_any_key(f) for f in key_files)}
    if keyring:
        ring.update(keys.load_keyring_module(keyring))
    if not ring:
        raise KeyFileError("give the trusted public keys: --key PUBKEY... or --keyring "
                           "ota_keys.py", reason="NO_KEY")
    return ring
