"""otakit CLI: ``verify`` (every manifest and payload of a repository)."""

from __future__ import annotations

import click

from otakit.cli._keyfile import trusted_keys, passphrase_file_option
from otakit.errors import RepoError
from otakit.repo import Repository


@click.command()
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository dir.")
@click.option("--key", "key_files", multiple=True, type=click.Path(dir_okay=False),
              help="A trusted public key (repeatable).")
@click.option("--keyring", type=click.Path(dir_okay=False),
              help="A keyring module such as ota_keys.py.")
@passphrase_file_option
def verify(repo: str, key_files: tuple[str, ...], keyring: str | None) -> None:
    """Check every manifest's signature and body and every payload's size and SHA-256."""
    report = Repository(repo).verify(trusted_keys(key_files, keyring))
    for line in report.problems:
        click.echo(f"problem: {line}", err=True)
    summary = f"{report.manifests} manifest(s), {report.payloads} payload(s)"
    if not report.ok:
        raise RepoError(f"{len(report.problems)} problem(s) in {repo} ({summary})",
                        reason="VERIFY_FAILED")
    if report.manifests == 0:
        raise RepoError(f"no manifests found in {repo}", reason="NO_REPO")
    click.echo(f"ok: {summary} verified")


COMMANDS = [verify]
