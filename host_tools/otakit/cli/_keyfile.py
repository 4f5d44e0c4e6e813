"""Key arguments shared by several commands: a PEM file or a ``pkcs11:`` URI.

Not a command module: `load_any_key` (any key, asking for a passphrase), `load_signing_key`
(the same, refusing a public key; under ``--digest-out`` a stand-in, `otakit.cli._detached`),
`trusted_keys` (the --key/--keyring pair of ``verify`` and ``inspect``) and `passphrase_file_option` (``--passphrase-file``, on every command that reads a
key). A passphrase comes from --passphrase-file, else $OTAKIT_KEY_PASSPHRASE, else a prompt on a
terminal; without a terminal the command stops with one line naming both
(``PASSWORD_REQUIRED``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import click

from otakit import keys
from otakit.errors import KeyFileError

K = TypeVar("K", bound=keys.PublicKey)

_META = "otakit.passphrase_file"
NO_TERMINAL = (f"give its passphrase in ${keys.PASSPHRASE_ENV} or with --passphrase-file FILE "
               "(there is no terminal to ask on)")


def _remember_file(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[_META] = value


passphrase_file_option = click.option(
    "--passphrase-file", type=click.Path(exists=True, dir_okay=False), expose_value=False,
    callback=_remember_file, envvar="OTAKIT_KEY_PASSPHRASE_FILE",
    help="Read the private key's passphrase from the first line of this file "
    f"[default: ${keys.PASSPHRASE_ENV}, else a prompt on a terminal].")


def given_passphrase() -> bytes | None:
    """The passphrase from --passphrase-file, else $OTAKIT_KEY_PASSPHRASE; None if neither."""
    ctx = click.get_current_context(silent=True)
    path = ctx.meta.get(_META) if ctx is not None else None
    if path is None:
        return keys.passphrase_from_env()
    with open(path, "rb") as f:
        line = f.readline(4096).rstrip(b"\r\n")
    if not line:
        raise KeyFileError(f"--passphrase-file {path}: the first line is empty",
                           reason="PASSWORD_REQUIRED")
    return line


def interactive() -> bool:
    """Whether a prompt can be answered (stdin is a terminal)."""
    return sys.stdin is not None and sys.stdin.isatty()


def load_any_key(path: str) -> keys.PublicKey:
    """Load a key file, or a token key by its ``pkcs11:`` URI (`otakit.hsm`); an encrypted
    private key file uses $OTAKIT_KEY_PASSPHRASE or a prompt."""
    if path.startswith("pkcs11:"):
        return _token_key(path)
    return _with_passphrase(path, keys.load_key)


def load_signing_key(path: str) -> keys.PrivateKey:
    """`load_any_key`, refusing a public key (``NOT_PRIVATE``): the key signs. Under
    ``--digest-out`` (`otakit.cli._detached`) any key file will do: the result is a
    `otakit.detached.DetachedKey` standing in for its private half."""
    from otakit.cli._detached import detached_key, digest_out_given  # noqa: PLC0415

    if digest_out_given():
        stand_in = detached_key(path, load_any_key(path))
        assert stand_in is not None
        return stand_in
    if path.startswith("pkcs11:"):
        return _token_key(path)
    return _with_passphrase(path, keys.load_private_key)


def _token_key(uri: str) -> keys.PrivateKey:
    from otakit.hsm import load_pkcs11_key  # noqa: PLC0415

    return load_pkcs11_key(uri)


def _with_passphrase(path: str, load: Callable[[str, bytes | None], K]) -> K:
    given = given_passphrase()
    try:
        return load(path, given)
    except KeyFileError as e:
        if e.reason != "PASSWORD_REQUIRED" or given is not None:
            raise
        if not interactive():
            raise KeyFileError(f"{path} is encrypted: {NO_TERMINAL}",
                               reason="PASSWORD_REQUIRED") from None
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
