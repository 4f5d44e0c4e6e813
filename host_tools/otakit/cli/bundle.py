"""otakit CLI: ``bundle`` (a channel's release as one signed file for an offline install)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from otakit.bundle import ENCODINGS, make_bundle
from otakit.cli._output import echo_json, json_option
from otakit.repo import Repository


@click.command()
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository dir.")
@click.option("--product", required=True)
@click.option("--board", required=True)
@click.option("--channel", default="stable", show_default=True)
@click.option("--encoding", default="raw", show_default=True, type=click.Choice(ENCODINGS),
              help="Which of the release's payloads to carry (deflate and delta: smaller, if the "
              "release has one the device can use).")
@click.option("--base", metavar="SHA256", help="For --encoding delta with several bases: the "
              "base image's SHA-256 (a prefix).")
@click.option("--no-keyring", is_flag=True,
              help="Leave out the product's keyring document (the device uses the one it holds).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="The bundle file [default: PRODUCT-BOARD-CHANNEL-VERSION[-ENCODING].otab].")
@json_option
def bundle(repo: str, product: str, board: str, channel: str, encoding: str, base: str | None,
           no_keyring: bool, out: str | None, as_json: bool) -> None:
    """Write a channel's current release (its signed manifest and one payload, as served) into
    one bundle file that a device installs offline: agent.install_file(PATH), or `otakit deploy
    --bundle FILE`.

    Nothing is signed again: the device checks the manifest as it checks a downloaded one
    (signature, board, channel, revision, sequence, floor, expiry, staged rollout).
    """
    info = make_bundle(Repository(repo), product, board, channel, Path(out) if out else None,
                       encoding=encoding, base=base, keyring=not no_keyring)
    b = info.body
    warnings = []
    if b.rollout and (b.rollout.get("state") != "active" or b.rollout.get("percent", 100) < 100):
        warnings.append(f"the manifest has a staged rollout ({b.rollout['state']}, "
                        f"{b.rollout['percent']} %): devices outside it hold the bundle back")
    if b.expires is not None and b.expires < time.time():
        warnings.append(f"the manifest expired at {b.expires}: a device that knows the time "
                        "refuses it (otakit refresh, then bundle again)")
    if as_json:
        echo_json({"bundle": str(info.path), "product": product, "board": board,
                   "channel": channel, "version": b.version, "sequence": b.sequence,
                   "revision": b.revision, "encoding": encoding, "size": info.header.size,
                   "keyring": info.keyring, "expires": b.expires, "warnings": warnings})
        return
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"wrote {info.path}: {product}/{board}/{channel} {b.version} (sequence "
               f"{b.sequence}, revision {b.revision}), {encoding} payload, "
               f"{info.header.size} bytes{', with the keyring document' if info.keyring else ''}")


COMMANDS = [bundle]
