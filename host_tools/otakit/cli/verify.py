"""otakit CLI: ``verify`` (every manifest and payload of a repository)."""

from __future__ import annotations

import json

import click

from otakit.cli._output import echo_json, json_option, reset as reset_json

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
@json_option
def verify(repo: str, key_files: tuple[str, ...], keyring: str | None, as_json: bool) -> None:
    """Check every manifest's signature and body and every payload's size and SHA-256.

    Each problem is a line ``problem: PATH: REASON: detail`` on stderr (in --json: "problems").
    """
    report = Repository(repo).verify(trusted_keys(key_files, keyring))
    if as_json and report.problems:
        click.echo(json.dumps({"ok": False, "reason": "VERIFY_FAILED",
                               "manifests": report.manifests, "payloads": report.payloads,
                               "problems": report.problems}, indent=2))
        reset_json()  # this was the failure's JSON object
    for line in report.problems:
        click.echo(f"problem: {line}", err=True)
    summary = f"{report.manifests} manifest(s), {report.payloads} payload(s)"
    if not report.ok:
        raise RepoError(f"{len(report.problems)} problem(s) in {repo} ({summary})",
                        reason="VERIFY_FAILED")
    if report.manifests == 0:
        raise RepoError(f"no manifests found in {repo}", reason="NO_REPO")
    if as_json:
        echo_json({"manifests": report.manifests, "payloads": report.payloads, "problems": []})
        return
    click.echo(f"ok: {summary} verified")


COMMANDS = [verify]
