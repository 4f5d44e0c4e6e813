"""otakit CLI: ``keygen`` (a signing key pair in files, or inside a PKCS#11 token)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit import algs, keys
from otakit.cli._keyfile import NO_TERMINAL, given_passphrase, interactive, passphrase_file_option
from otakit.errors import KeyFileError


def new_passphrase(insecure: bool) -> bytes | None:
    """The passphrase for a new key: --passphrase-file, else $OTAKIT_KEY_PASSPHRASE, else a
    prompt with confirmation on a terminal."""
    if insecure:
        return None
    given = given_passphrase()
    if given:
        return given
    if not interactive():
        raise KeyFileError(f"the new private key needs a passphrase: {NO_TERMINAL}; or pass "
                           "--insecure-no-passphrase (tests only)", reason="PASSWORD_REQUIRED")
    value = click.prompt("Passphrase for the new private key", hide_input=True,
                         confirmation_prompt=True, default="", show_default=False)
    if not value:
        raise KeyFileError("refusing to write an unencrypted private key: give a passphrase "
                           f"(or set {keys.PASSPHRASE_ENV}), or pass --insecure-no-passphrase",
                           reason="PASSWORD_REQUIRED")
    return value.encode()


@click.command()
@click.option("--alg", type=click.Choice(algs.CLI_CHOICES), default=algs.CLI_CHOICES[0],
              show_default=True,
              help="rsa3072-pss: RSA-3072 PSS (the ESP32 Secure Boot v2 scheme); ed25519: small.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for NAME.pem (private, 0600) and NAME.pub.pem (public).")
@click.option("--name", default="release", show_default=True, help="File name stem.")
@click.option("--insecure-no-passphrase", is_flag=True,
              help="Write the private key unencrypted (tests only).")
@click.option("--pkcs11", "pkcs11_uri", metavar="URI",
              help="Generate the key inside a PKCS#11 token instead, e.g. "
              "'pkcs11:token=otakit;object=release' (module from ?module-path= or "
              "$OTAKIT_PKCS11_MODULE, PIN from $OTAKIT_PKCS11_PIN); only NAME.pub.pem is written. "
              "Sign with --key URI.")
@passphrase_file_option
def keygen(alg: str, out_dir: str, name: str, insecure_no_passphrase: bool,
           pkcs11_uri: str | None) -> None:
    """Make a signing key pair and print its key id.

    The private key is PKCS#8 PEM encrypted with the passphrase from $OTAKIT_KEY_PASSPHRASE or
    a prompt, or stays inside a PKCS#11 token (--pkcs11), sensitive and non-extractable.
    Existing files are never overwritten.
    """
    priv, pub = keys.key_paths(out_dir, name)
    if pkcs11_uri:
        _keygen_pkcs11(pkcs11_uri, alg, Path(out_dir), pub)
        return
    for p in (priv, pub):
        if p.exists():
            raise KeyFileError(f"{p} exists; refusing to overwrite a key", reason="EXISTS")
    passphrase = new_passphrase(insecure_no_passphrase)
    key = keys.generate_key(alg)
    priv, pub = keys.write_keypair(key, out_dir, name, passphrase)
    click.echo(f"private key: {priv}{'' if passphrase else ' (UNENCRYPTED)'}")
    click.echo(f"public key:  {pub}")
    click.echo(f"key id:      {key.key_id_hex} ({key.alg})")


def _keygen_pkcs11(uri: str, alg: str, out_dir: Path, pub: Path) -> None:
    from otakit.hsm import generate_in_token  # noqa: PLC0415

    if pub.exists():
        raise KeyFileError(f"{pub} exists; refusing to overwrite a key", reason="EXISTS")
    k = generate_in_token(uri, keys.normalize_alg(alg))
    out_dir.mkdir(parents=True, exist_ok=True)
    pub.write_bytes(k.public_pem())
    click.echo(f"private key: in the token ({uri.split('?')[0]}), non-extractable")
    click.echo(f"public key:  {pub}")
    click.echo(f"key id:      {k.key_id_hex} ({k.alg})")


COMMANDS = [keygen]
