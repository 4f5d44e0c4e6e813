"""otakit CLI: ``keyring sign|show`` (docs/format.md §7); ``sign --digest-out`` /
``--signature-in`` sign detached (`otakit.detached`)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from otakit.cli._output import echo_json, json_option

from otakit import detached, keys
from otakit.cli._keyfile import load_any_key, load_signing_key, passphrase_file_option
from otakit.errors import OtakitError
from otakit.keyring import (
    KeyringBody, add_signatures, body_digest, new_body, parse_body, parse_unverified, sign_keyring,
    verify_keyring,
)
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
@click.option("--digest-out", type=click.Path(dir_okay=False),
              help="Sign detached: write the 32 bytes each root signs here and keep the body "
              "pending (--root may be public keys); see docs/release.md.")
@click.option("--signature-in", "signature_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Complete the pending (or --add-to) document with this raw signature by the "
              "--root of the same position (repeatable; each verified first).")
@passphrase_file_option
def sign(root_files: tuple[str, ...], key_files: tuple[str, ...], product: str | None,
         version: int | None, expires: str, env: str, add_to: str | None, out: str | None,
         repo: str | None, digest_out: str | None, signature_files: tuple[str, ...]) -> None:
    """Sign a keyring document with root keys (or add signatures to one)."""
    if not out and not repo and not (digest_out and add_to):
        raise OtakitError("give --out FILE and/or --repo DIR", reason="BAD_ARGUMENT")
    if digest_out and signature_files:
        raise OtakitError("--digest-out prepares a document and --signature-in completes it: "
                          "give one", reason="BAD_ARGUMENT")
    published = Repository(repo).keyring_path(product) if repo and product else None
    if digest_out:
        _prepare(root_files, key_files, product, version, expires, env, add_to, out, repo,
                 digest_out, published)
        return
    pending_dir = None
    if signature_files:
        if len(signature_files) != len(root_files):
            raise OtakitError(f"{len(signature_files)} --signature-in for {len(root_files)} "
                              "--root: give one signature per root, in the same order",
                              reason="BAD_ARGUMENT")
        roots: list[keys.PublicKey] = [load_any_key(f).public_key() for f in root_files]
        sigs = [(r, detached.read_signature(f, r.alg)) for r, f in zip(roots, signature_files)]
        if add_to:
            old = parse_unverified(Path(add_to).read_bytes())
            raw, existing = old.body_bytes, old.signatures
        else:
            pending_dir = detached.keyring_pending_dir(repo, product, out)
            raw, existing = detached.load_keyring_pending(pending_dir, published), ()
        doc = add_signatures(raw, sigs, existing)
        body = parse_body(raw)
    else:
        signers = [load_signing_key(f) for f in root_files]
        roots = list(signers)
        if add_to:
            old = parse_unverified(Path(add_to).read_bytes())
            doc = sign_keyring(old.body_bytes, signers, old.signatures)
            body = old.body
        else:
            body = _new_body(key_files, product, version, expires, env)
            doc = sign_keyring(body, signers)
    if out:
        Path(out).write_bytes(doc)
        click.echo(f"wrote {out}")
    if repo:
        click.echo(f"published {Repository(repo).publish_keyring(doc)}")
    if pending_dir is not None:
        detached.clear_keyring_pending(pending_dir)
    click.echo(f"keyring {body.product} version {body.version} ({body.env}), {len(body.keys)} "
               f"key(s), {len(doc)} bytes, signed by {', '.join(r.key_id_hex for r in roots)}")


def _new_body(key_files: tuple[str, ...], product: str | None, version: int | None,
              expires: str, env: str) -> KeyringBody:
    if not (key_files and product and version):
        raise OtakitError("a new keyring needs --product, --version and --key...",
                          reason="BAD_ARGUMENT")
    now = int(time.time())
    return new_body(product, keys.dedupe(load_any_key(f) for f in key_files), version, now,
                    parse_expiry(expires, now), env)


def _prepare(root_files: tuple[str, ...], key_files: tuple[str, ...], product: str | None,
             version: int | None, expires: str, env: str, add_to: str | None, out: str | None,
             repo: str | None, digest_out: str, published: Path | None) -> None:
    """``--digest-out``: write the body's D; a new body waits in its pending directory."""
    roots = [load_any_key(f).public_key() for f in root_files]
    if add_to:  # the document itself holds the body: nothing to keep
        raw = parse_unverified(Path(add_to).read_bytes()).body_bytes
        Path(digest_out).write_bytes(body_digest(raw))
        then = f"--add-to {add_to}"
    else:
        raw = _new_body(key_files, product, version, expires, env).to_json()
        detached.defer_keyring(detached.keyring_pending_dir(repo, product, out), raw, published,
                               digest_out, body_digest(raw))
        then = "the same --out/--repo/--product"
    body = parse_body(raw)
    click.echo(f"prepared keyring {body.product} version {body.version} ({body.env}), "
               f"{len(body.keys)} key(s), to be signed by "
               f"{', '.join(r.key_id_hex for r in roots)}")
    click.echo(f"pending: sign the 32 bytes in {digest_out} with each root key, then run "
               f"`otakit keyring sign --root PUB --signature-in SIG` (per root) with {then}")


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
