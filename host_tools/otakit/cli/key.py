"""otakit CLI: ``key export|id|content`` (the device keyring module; a key's id; a new content
key for encrypted payloads)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit.cli._output import echo_json, json_option

from otakit import contentkey, keys
from otakit.cli._keyfile import load_any_key, passphrase_file_option


@click.group()
def key() -> None:
    """Inspect keys and export the device keyring."""


@key.command("export")
@click.option("--micropython", "micropython", is_flag=True, required=True,
              help="Write the device keyring module (ota_keys.py); the only format so far.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="ota_keys.py",
              show_default=True, help="Where to write the keyring module, frozen as the top-level "
              "module ota_keys ('-' for stdout).")
@click.option("--root", "root_files", multiple=True, type=click.Path(dir_okay=False),
              help="A root key whose signatures on keyring documents the device accepts "
              "(repeatable; docs/format.md §7).")
@click.option("--threshold", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Root signatures a keyring document needs.")
@click.option("--env", type=click.Choice(keys.ENVS), default="production", show_default=True,
              help="The firmware's environment: it accepts only keyrings of the same env.")
@click.argument("key_files", nargs=-1, type=click.Path(dir_okay=False))
@passphrase_file_option
def export(micropython: bool, out: str, root_files: tuple[str, ...], threshold: int, env: str,
           key_files: tuple[str, ...]) -> None:
    """Write the keyring module for KEY_FILES (public or private key PEM files).

    Keys are deduplicated by key id. Without --root the device trusts exactly the keys listed;
    with --root it trusts them until it accepts a keyring document signed by THRESHOLD roots.
    """
    ring = keys.dedupe(load_any_key(f) for f in key_files)
    roots = keys.dedupe(load_any_key(f) for f in root_files)
    text = keys.export_keyring(ring, roots, threshold, env)
    if out == "-":
        click.echo(text, nl=False)
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    extra = f", {len(roots)} root(s), threshold {threshold}, {env}" if roots else ""
    click.echo(f"wrote {out} ({len(ring)} key(s){extra})")


@key.command("content")
@click.argument("out", type=click.Path(dir_okay=False))
@json_option
def content(out: str, as_json: bool) -> None:
    """Write a new content key to OUT (never over an existing file): the AES-256 key of
    encrypted payloads (`otakit release --encrypt-key`), provisioned onto the product's devices
    (`otakit sim flash --content-key`). Keep it as secret as the firmware."""
    k = contentkey.new_key()
    contentkey.write_key_file(out, k)
    if as_json:
        echo_json({"file": out, "key_id": contentkey.key_id(k)})
        return
    click.echo(f"wrote content key {out} (key id {contentkey.key_id(k)})")


@key.command("id")
@click.argument("key_file", type=click.Path(dir_okay=False))
@passphrase_file_option
@json_option
def key_id(key_file: str, as_json: bool) -> None:
    """Print a key's id and algorithm (public key files need no passphrase)."""
    k = load_any_key(key_file)
    if as_json:
        echo_json({"key_id": k.key_id_hex, "alg": k.alg})
        return
    click.echo(f"{k.key_id_hex} {k.alg}")


COMMANDS = [key]
