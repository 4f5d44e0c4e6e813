"""otakit CLI: ``inspect`` (a manifest's header and body; its signature if keys are given)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from otakit.cli._output import echo_json, json_option

from otakit.cli._keyfile import trusted_keys, passphrase_file_option
from otakit.manifest import parse_unverified, verify_manifest


@click.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@json_option
@click.option("--key", "key_files", multiple=True, type=click.Path(dir_okay=False),
              help="Verify against this public key (repeatable).")
@click.option("--keyring", type=click.Path(dir_okay=False), help="Or against a keyring module.")
@passphrase_file_option
def inspect(manifest: str, as_json: bool, key_files: tuple[str, ...], keyring: str | None) -> None:
    """Print a manifest's header and body; verify its signature if keys are given."""
    data = Path(manifest).read_bytes()
    checked = bool(key_files or keyring)
    m = verify_manifest(data, trusted_keys(key_files, keyring)) if checked else parse_unverified(data)
    env = m.envelope
    header = {"alg": env.alg, "key_id": env.key_id.hex(), "body_length": len(env.body),
              "signature_length": len(env.signature), "size": len(data)}
    signature = "verified" if m.verified else "not checked (give --key or --keyring)"
    if as_json:
        echo_json({"header": header, "body": m.body.to_dict(),
                   "signature": "verified" if m.verified else "unchecked"})
        return
    for k, v in header.items():
        click.echo(f"{k:>18}: {v}")
    click.echo(f"{'signature':>18}: {signature}")
    for k, v in m.body.to_dict().items():
        click.echo(f"{k:>18}: {json.dumps(v, ensure_ascii=False)}")


COMMANDS = [inspect]
