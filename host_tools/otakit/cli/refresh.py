"""otakit CLI: ``refresh`` (re-sign a channel's current manifest with a new expiry; detached
with ``--digest-out`` / ``--signature-in``, `otakit.cli._detached`)."""

from __future__ import annotations

import time

import click

from otakit.cli._output import echo_json, json_option

from otakit.cli._detached import detached_options, digest_out_given
from otakit.cli._keyfile import load_signing_key, passphrase_file_option
from otakit.repo import Repository, parse_expiry


@click.command()
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
              help="Private release key (PEM); with --digest-out/--signature-in the public "
              "key will do.")
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository dir.")
@click.option("--product", required=True)
@click.option("--board", required=True)
@click.option("--channel", default="stable", show_default=True)
@click.option("--expires", help="Duration (30d), ISO date or Unix seconds.  [required]")
@passphrase_file_option
@json_option
@detached_options
def refresh(key_file: str, repo: str, product: str, board: str, channel: str,
            expires: str | None, as_json: bool) -> None:
    """Re-sign a channel's current manifest with a new expiry and the next revision (same
    sequence, same release)."""
    if expires is None:
        raise click.UsageError("Missing option '--expires'.")
    now = int(time.time())
    res = Repository(repo).refresh(product, board, channel, parse_expiry(expires, now),
                                   load_signing_key(key_file), now)
    if as_json:
        echo_json({"product": product, "board": board, "channel": channel,
                   "sequence": res.body.sequence, "revision": res.body.revision,
                   "expires": res.body.expires, "manifest": str(res.manifest_path)})
        return
    what = "prepared a refresh of" if digest_out_given() else "refreshed"
    click.echo(f"{what} {product}/{board}/{channel} sequence {res.body.sequence}: revision "
               f"{res.body.revision}, expires {res.body.expires}")


COMMANDS = [refresh]
