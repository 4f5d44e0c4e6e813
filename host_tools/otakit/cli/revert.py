"""otakit CLI: ``revert`` (send a channel's devices back to its previous release, signed)."""

from __future__ import annotations

import time

import click

from otakit.cli._keyfile import load_signing_key, passphrase_file_option
from otakit.cli._output import echo_json, json_option
from otakit.repo import Repository, parse_expiry
from otakit.revert import make_revert


@click.command()
@click.option("--key", "key_file", required=True,
              help="Signing key: a PEM file or a pkcs11: URI (the releases' key).")
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository dir.")
@click.option("--product", required=True)
@click.option("--board", required=True)
@click.option("--channel", default="stable", show_default=True)
@click.option("--to-sequence", type=click.IntRange(1, 2**31 - 1), default=None,
              help="Go back to this recorded release [default: the one before the current].")
@click.option("--expires", default=None,
              help="Duration (90d), ISO date or Unix seconds [default: 90 days].")
@passphrase_file_option
@json_option
def revert(key_file: str, repo: str, product: str, board: str, channel: str,
           to_sequence: int | None, expires: str | None, as_json: bool) -> None:
    """Send a channel's devices back to its previous release, still in their other slot.

    Signs the previous release's manifest again with "action": "revert" and the channel's next
    revision (docs/format.md §2.6). A device running the current release checks that its other
    slot reads back to that release's SHA-256 (else REVERT_MISMATCH) and that its security
    version is not below its floor (else SECURITY_FLOOR), then boots it as a trial, confirmed
    by its health checks or rolled back; nothing is downloaded. Devices still on the previous
    release stay up to date; devices behind it download it. The next release needs a sequence
    above the one reverted from.
    """
    now = int(time.time())
    where = (product, board, channel)
    body = make_revert(Repository(repo), where, load_signing_key(key_file),
                       expires=parse_expiry(expires, now) if expires else None,
                       to_sequence=to_sequence, now=now)
    gone = body.extra["reverted_from"]
    if as_json:
        echo_json({"product": product, "board": board, "channel": channel,
                   "version": body.version, "sequence": body.sequence,
                   "reverted_from": gone, "revision": body.revision, "expires": body.expires})
        return
    click.echo(f"reverted {product}/{board}/{channel} from sequence {gone} to version "
               f"{body.version} (sequence {body.sequence}): revision {body.revision}, expires "
               f"{body.expires}; the next release needs a sequence above {gone}")


COMMANDS = [revert]
