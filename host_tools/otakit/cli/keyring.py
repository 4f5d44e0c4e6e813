"""otakit CLI: ``keyring sign|show`` (docs/format.md §7)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from otakit.cli._output import echo_json, json_option

from otakit import keys
from otakit.cli._keyfile import load_any_key, load_signing_key, passphrase_file_option
from otakit.errors import OtakitError
from otakit.keyring import new_body, parse_unverified, sign_keyring, verify_keyring
from otakit.repo import Repository, parse_expiry


@click.group()
def keyring() -> None:
    """Sign and show keyring documents: root keys delegating to release keys."""


@keyring.command("sign")
@click.option("--root", "root_files", multiple=True, required=True,
              type=click.Path(dir_okay=False),
              help="A private root key that signs (repeatable; offline keys).")
@click.option("--key", "key_files", multiple=True, type=click.Path(dir_okay=False),
              help="A release key the keyring trusts (repeatable; leave one out to revoke it).")
@click.option("--product", help="Product name.")
@click.option("--version", "version", type=click.IntRange(1, 2**31 - 1),
              help="Keyring version; must exceed the published one.")
@click.option("--expires", default="365d", show_default=True,
              help="Duration (365d), ISO date or Unix seconds.")
@click.option("--env", type=click.Choice(keys.ENVS), default="production", show_default=True)
@click.option("--add-to", type=click.Path(exists=True, dir_okay=False),
              help="Add the roots' signatures to this existing document (body unchanged).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the document here.")
@click.option("--repo", type=click.Path(file_okay=False),
              help="Publish it as <repo>/<product>/keyring.")
@passphrase_file_option
def sign(root_files: tuple[str, ...], key_files: tuple[str, ...], product: str | None,
         version: int | None, expires: str, env: str, add_to: str | None, out: str | None,
         repo: str | None) -> None:
    """Sign a keyring document with root keys (or add signatures to one)."""
    roots = [load_signing_key(f) for f in root_files]
    if add_to:
        old = parse_unverified(Path(add_to).read_bytes())
        doc = sign_keyring(old.body_bytes, roots, old.signatures)
        body = old.body
    else:
        if not (key_files and product and version):
            raise OtakitError("a new keyring needs --product, --version and --key...",
                              reason="BAD_ARGUMENT")
        now = int(time.time())
        body = new_body(product, keys.dedupe(load_any_key(f) for f in key_files), version, now,
                        parse_expiry(expires, now), env)
        doc = sign_keyring(body, roots)
    if not out and not repo:
        raise OtakitError("give --out FILE and/or --repo DIR", reason="BAD_ARGUMENT")
    if out:
        Path(out).write_bytes(doc)
        click.echo(f"wrote {out}")
    if repo:
        click.echo(f"published {Repository(repo).publish_keyring(doc)}")
    click.echo(f"keyring {body.product} version {body.version} ({body.env}), {len(body.keys)} "
               f"key(s), {len(doc)} bytes, signed by {', '.join(r.key_id_hex for r in roots)}")


@keyring.command("show")
@click.argument("document", type=click.Path(exists=True, dir_okay=False))
@click.option("--keyring", "module", type=click.Path(dir_okay=False),
              help="Verify as firmware with this ota_keys.py would (ROOTS, THRESHOLD, ENV).")
@json_option
def show(document: str, module: str | None, as_json: bool) -> None:
    """Print a keyring document; verify it against a firmware keyring module if given."""
    data = Path(document).read_bytes()
    if module:
        _, roots, threshold, env = keys.load_trust_module(module)
        k = verify_keyring(data, roots, threshold, env=env)
        status = f"verified: {len(k.signers)} of threshold {threshold} roots ({env})"
    else:
        k = parse_unverified(data)
        status = "not checked (give --keyring ota_keys.py)"
    b = k.body
    if as_json:
        echo_json({"product": b.product, "env": b.env, "version": b.version,
                   "created": b.created, "expires": b.expires,
                   "keys": [{"key_id": key.key_id_hex, "alg": key.alg} for key in b.keys],
                   "signatures": [{"key_id": s.key_id.hex(), "alg": s.alg}
                                  for s in k.signatures],
                   "verified": bool(module), "status": status})
        return
    click.echo(f"{'product':>10}: {b.product}\n{'env':>10}: {b.env}\n{'version':>10}: "
               f"{b.version}\n{'created':>10}: {b.created}\n{'expires':>10}: {b.expires} "
               f"({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(b.expires))} UTC)")
    for key in b.keys:
        click.echo(f"{'key':>10}: {key.key_id_hex} {key.alg}")
    for s in k.signatures:
        click.echo(f"{'signature':>10}: {s.key_id.hex()} {s.alg or 'unknown algorithm'}")
    click.echo(f"{'status':>10}: {status}")


COMMANDS = [keyring]
