"""otakit CLI: ``publish`` (a repository laid out for a static host)."""

from __future__ import annotations

import dataclasses

import click

from otakit.cli._output import echo_json, json_option


@click.command()
@click.option("--repo", required=True, type=click.Path(file_okay=False, exists=True),
              help="The release repository to publish.")
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False),
              help="The directory a static host serves (nginx root, a bucket sync dir).")
@click.option("--prune", is_flag=True, help="Delete manifests at DEST that REPO no longer has.")
@json_option
def publish(repo: str, dest: str, prune: bool, as_json: bool) -> None:
    """Lay a repository out for a static host: blobs (payloads, SBOMs) first, then keyring
    documents, then manifests, then support statements, each file atomically.

    Dot-files (the repository's own state, e.g. .otakit/) are not published. Each manifest and
    keyring document is checked before it is copied; blobs already at DEST are kept.
    """
    from otakit.publish import publish_static  # noqa: PLC0415

    r = publish_static(repo, dest, prune=prune)
    if as_json:
        echo_json({"to": dest, **dataclasses.asdict(r)})
        return
    click.echo(f"published {r.manifests} manifest(s), {r.blobs_copied} new blob(s) "
               f"({r.blobs_kept} kept), {r.keyrings} keyring(s), {r.support_files} support "
               f"file(s) to {dest}")


COMMANDS = [publish]
