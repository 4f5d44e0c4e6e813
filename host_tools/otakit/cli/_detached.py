"""Detached signing options shared by every command that signs a channel's manifest.

Not a command module: `detached_options` adds ``--digest-out FILE`` and ``--signature-in FILE``
to a command whose options include ``--key``, ``--repo``, ``--product``, ``--board`` and
``--channel`` (``release``, ``refresh``, ``rollout start|raise|pause|resume|abort``):

- ``--digest-out FILE``: `otakit.cli._keyfile.load_signing_key` then returns a
  `otakit.detached.DetachedKey` (the key file may be the public key), the command runs as usual
  and the repository keeps the document pending and writes the 32 bytes to sign to FILE;
- ``--signature-in FILE``: the command's own work is skipped; the channel's pending document is
  completed (`otakit.detached.complete_manifest`) with the raw signature in FILE, verified with
  ``--key`` first. Options given explicitly must equal the ones that prepared it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from otakit import detached
from otakit.cli._output import echo_json
from otakit.errors import OtakitError

DIGEST_OUT = "otakit.digest_out"
SIGNATURE_IN = "otakit.signature_in"
DETACHED_KEY = "otakit.detached_key"
# Options that select the pending document or the key, never compared with the prepared ones.
_SELECTORS = {"key_file", "repo", "product", "board", "channel", "as_json"}


def _remember(name: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.meta[name] = value
    return callback


def given_options(ctx: click.Context) -> dict[str, Any]:
    """The command's options given on the command line or in the environment."""
    out = {}
    for name, value in ctx.params.items():
        src = ctx.get_parameter_source(name)
        if name not in _SELECTORS and src in (ParameterSource.COMMANDLINE,
                                              ParameterSource.ENVIRONMENT):
            out[name] = value
    return out


def detached_key(path: str, public: Any) -> detached.DetachedKey | None:
    """In ``--digest-out`` mode, the stand-in for the signing key ``public``; else None."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or DIGEST_OUT not in ctx.meta:
        return None
    key = detached.DetachedKey(public.public_key(), ctx.meta[DIGEST_OUT], ctx.command_path,
                               {k: detached.jsonable(v) for k, v in ctx.params.items()
                                if k not in _SELECTORS})
    ctx.meta[DETACHED_KEY] = key
    return key


def digest_out_given() -> bool:
    """Whether the running command was given ``--digest-out``."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and DIGEST_OUT in ctx.meta


def _complete(ctx: click.Context, signature: str, as_json: bool) -> None:
    from otakit.cli._keyfile import load_any_key  # noqa: PLC0415
    from otakit.repo import Repository  # noqa: PLC0415

    p = ctx.params
    where = (str(p["product"]), str(p["board"]), str(p["channel"]))
    key = load_any_key(str(p["key_file"]))
    body, manifest, mpath = detached.complete_manifest(
        Repository(str(p["repo"])), where, key.public_key(), signature, ctx.command_path,
        given_options(ctx), int(time.time()))
    if as_json:
        echo_json({"product": body.product, "board": body.board, "channel": body.channel,
                   "version": body.version, "sequence": body.sequence,
                   "revision": body.revision, "expires": body.expires,
                   "rollout": body.rollout, "key_id": key.key_id_hex,
                   "manifest": str(mpath), "manifest_size": len(manifest)})
        return
    click.echo(f"published {'/'.join(where)} version {body.version} sequence {body.sequence} "
               f"revision {body.revision}, detached signature by {key.key_id_hex} verified")
    click.echo(f"  manifest: {mpath} ({len(manifest)} bytes)")


def detached_options(f: Callable[..., None]) -> Callable[..., None]:
    """Add ``--digest-out`` / ``--signature-in`` to a signing command (see the module)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        digest_out, signature = ctx.meta.get(DIGEST_OUT), ctx.meta.get(SIGNATURE_IN)
        if digest_out and signature:
            raise OtakitError("--digest-out prepares a document and --signature-in completes "
                              "it: give one", reason="BAD_ARGUMENT")
        if signature:
            _complete(ctx, signature, bool(kwargs.get("as_json")))
            return
        f(*args, **kwargs)
        if not digest_out:
            return
        key = ctx.meta.get(DETACHED_KEY)
        if key is None or key.deferred is None:
            raise OtakitError(f"{ctx.command_path} prepared no document to sign",
                              reason="BAD_ARGUMENT")
        if not kwargs.get("as_json"):
            click.echo(f"pending: revision {key.deferred} is not published; sign the 32 bytes in "
                       f"{digest_out} with key {key.key_id_hex} ({key.alg}), then run the same "
                       "command with --signature-in SIG instead of --digest-out")

    for opt in (
        click.option("--signature-in", type=click.Path(exists=True, dir_okay=False),
                     expose_value=False, callback=_remember(SIGNATURE_IN),
                     help="Complete the pending document --digest-out prepared with this raw "
                     "signature (verified with --key before anything is published)."),
        click.option("--digest-out", type=click.Path(dir_okay=False), expose_value=False,
                     callback=_remember(DIGEST_OUT),
                     help="Sign detached: write the 32 bytes to sign here and keep the document "
                     "pending (--key may be the public key); see docs/release.md."),
    ):
        wrapper = opt(wrapper)
    return wrapper
