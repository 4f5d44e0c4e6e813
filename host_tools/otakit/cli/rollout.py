"""otakit CLI: ``rollout start|raise|pause|resume|abort|status|policy``."""

from __future__ import annotations


import click

from otakit.cli._output import echo_json, json_option

from otakit import rollout
from otakit.cli._detached import detached_options
from otakit.cli._keyfile import load_signing_key, passphrase_file_option
from otakit.errors import KeyFileError
from otakit.manifest_body import ManifestBody
from otakit.repo import Repository


def _where(f):  # type: ignore[no-untyped-def]
    for opt in reversed([
        click.option("--repo", required=True, type=click.Path(file_okay=False),
                     help="Repository dir."),
        click.option("--product", required=True), click.option("--board", required=True),
        click.option("--channel", default="stable", show_default=True),
    ]):
        f = opt(f)
    return f


_KEY_OPTION = click.option("--key", "key_file", required=True,
                           help="Signing key: a PEM file or a pkcs11: URI (the release's key).")


def _KEY(f):  # type: ignore[no-untyped-def]  # noqa: N802
    return _KEY_OPTION(passphrase_file_option(json_option(detached_options(f))))


def _show(b: ManifestBody, as_json: bool = False) -> None:
    r = b.rollout
    if as_json:
        echo_json({"product": b.product, "board": b.board, "channel": b.channel,
                   "version": b.version, "sequence": b.sequence, "revision": b.revision,
                   "rollout": r})
        return
    state = "offered to every device" if r is None else f"{r['state']} at {r['percent']}%"
    click.echo(f"{b.product}/{b.board}/{b.channel} version {b.version} sequence {b.sequence}: "
               f"{state}" + (f" (salt {r['salt']})" if r else "") + f", revision {b.revision}")


@click.group("rollout")
def rollout_group() -> None:
    """Stage a channel's current release: re-sign its manifest with a rollout percentage.

    Devices compute a stable bucket 0-99 from their pseudonymous id and the rollout's salt and
    take the release when bucket < percent, so raising the percentage only adds devices.
    """


@rollout_group.command("start")
@_where
@_KEY
@click.option("--percent", required=True, type=click.IntRange(0, 100))
def start(repo: str, product: str, board: str, channel: str, key_file: str,
          percent: int, as_json: bool) -> None:
    """Stage the current release at PERCENT with a fresh salt."""
    _show(rollout.start(Repository(repo), (product, board, channel), load_signing_key(key_file),
                        percent), as_json)


@rollout_group.command("raise")
@_where
@_KEY
@click.option("--percent", required=True, type=click.IntRange(0, 100))
def raise_(repo: str, product: str, board: str, channel: str, key_file: str,
           percent: int, as_json: bool) -> None:
    """Raise the rollout to PERCENT (never lower; the salt is kept)."""
    _show(rollout.raise_to(Repository(repo), (product, board, channel), load_signing_key(key_file),
                           percent), as_json)


def _state_command(name: str, state: str, doc: str) -> click.Command:
    @click.command(name, help=doc)
    @_where
    @_KEY
    def cmd(repo: str, product: str, board: str, channel: str, key_file: str,
            as_json: bool) -> None:
        _show(rollout.set_state(Repository(repo), (product, board, channel),
                                load_signing_key(key_file), state), as_json)
    return cmd


for _name, _state, _doc in (
        ("pause", "paused", "Stop offering the release to devices that do not have it yet."),
        ("resume", "active", "Offer a paused rollout again, at its percentage."),
        ("abort", "aborted", "Stop offering the release for good (updated devices stay).")):
    rollout_group.add_command(_state_command(_name, _state, _doc))


@rollout_group.command("status")
@_where
@json_option
def status(repo: str, product: str, board: str, channel: str, as_json: bool) -> None:
    """Show the channel's current release and its rollout (signature not checked)."""
    b = Repository(repo).current(product, board, channel)
    if b is None:
        raise KeyFileError(f"{product}/{board}/{channel} has no release", reason="NO_REPO")
    if as_json:
        echo_json({"version": b.version, "sequence": b.sequence, "revision": b.revision,
                   "rollout": b.rollout})
        return
    _show(b)


@rollout_group.command("policy")
@_where
@click.option("--start-percent", type=click.IntRange(0, 100),
              help="Stage every new release of the channel at this percentage.")
@click.option("--off", is_flag=True, help="New releases are offered to every device at once.")
def policy(repo: str, product: str, board: str, channel: str, start_percent: int | None,
           off: bool) -> None:
    """Make a channel staged (security releases may still skip staging with --skip-staging)."""
    if off == (start_percent is not None):
        raise click.UsageError("give --start-percent N or --off")
    rollout.set_policy(Repository(repo).root, (product, board, channel), start_percent)
    click.echo(f"{product}/{board}/{channel}: " + (
        "not staged" if off else f"new releases start at {start_percent}%"))


COMMANDS = [rollout_group]
