"""otakit CLI: ``rollout start|raise|pause|resume|abort|status|policy`` and the withhold
commands ``rollout threshold|watch|withheld|lift`` (`otakit.withhold`) and the targeting
commands ``rollout cohort add|remove|clear``, ``rollout pin|unpin`` (docs/format.md §2.7)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import click

from otakit.cli._output import echo_json, json_option
from otakit import rollout, withhold
from otakit.cli._detached import detached_options
from otakit.errors import OtakitError
from otakit.publish import publish_static
from otakit.telemetry import open_store
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


@rollout_group.command("lift")
@_where
@_KEY
def lift(repo: str, product: str, board: str, channel: str, key_file: str,
         as_json: bool) -> None:
    """Offer a withheld release again: re-sign its manifest unchanged (next revision)."""
    _show(rollout.lift(Repository(repo), (product, board, channel), load_signing_key(key_file)),
          as_json)


@rollout_group.command("threshold")
@_where
@click.option("--failed", "min_failed", type=click.IntRange(1),
              help="Withhold once at least this many distinct devices failed or rolled back...")
@click.option("--percent", type=click.FloatRange(0, 100, min_open=True),
              help="...and they are at least this % of the devices the release reached...")
@click.option("--sources", "min_sources", default=2, show_default=True,
              type=click.IntRange(1), help="...reporting from at least this many networks.")
@click.option("--off", is_flag=True, help="The channel's releases are never withheld.")
def threshold(repo: str, product: str, board: str, channel: str, min_failed: int | None,
              percent: float | None, min_sources: int, off: bool) -> None:
    """Withhold the channel's release when too many devices fail it (no key needed).

    `otakit serve --telemetry` checks it after every device report and then serves the
    previous release's manifest (or 503); `otakit rollout watch` does the same for a static
    host. Lift it with `otakit rollout lift` or `abort` (with the key).
    """
    if off == (min_failed is not None and percent is not None) or (
            not off and (min_failed is None) != (percent is None)):
        raise click.UsageError("give --failed N --percent X, or --off")
    t = None if off or min_failed is None or percent is None else withhold.Threshold(
        min_failed, percent, min_sources)
    withhold.set_threshold(Repository(repo).root, (product, board, channel), t)
    click.echo(f"{product}/{board}/{channel}: " + (
        "never withheld" if t is None else
        f"withheld once {t.min_failed} devices ({t.percent:g}% of those reached, from "
        f"{t.min_sources} networks) failed or rolled back"))


@rollout_group.command("withheld")
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository dir.")
@json_option
def withheld(repo: str, as_json: bool) -> None:
    """List the channels whose release is withheld now."""
    withhold.records(Repository(repo).root)  # a malformed state file is an error here
    now = withhold.withheld_now(Repository(repo).root)
    if as_json:
        echo_json(now)
        return
    for name, r in sorted(now.items()):
        click.echo(f"{name} sequence {r['seq']} revision {r['revision']}: withheld, "
                   f"{r['failed']} of {r['reached']} devices failed; serving "
                   + ("the previous release" if r["serve"] == "previous" else "nothing"))
    if not now:
        click.echo("no channel is withheld")


@rollout_group.command("watch")
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository dir.")
@click.option("--to", "dest", type=click.Path(file_okay=False),
              help="The static site to re-publish (`otakit publish --to`) when a release is "
              "withheld.")
@click.option("--server", help="An `otakit serve --telemetry` instance to read the figures "
              "from (its admin API, /.otakit/api/summary).")
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True),
              help="The admin token of --server.")
@click.option("--telemetry", "telemetry_db", metavar="DB",
              help="Read the figures from this telemetry store instead (SQLite file or "
              "postgresql:// URL).")
@click.option("--interval", default=60.0, show_default=True, type=click.FloatRange(1),
              help="Seconds between checks.")
@click.option("--once", is_flag=True, help="Check once and exit.")
def watch(repo: str, dest: str | None, server: str | None, token_file: str | None,
          telemetry_db: str | None, interval: float, once: bool) -> None:
    """Withhold failing releases on a static host: poll the telemetry, and when a channel
    crosses its threshold (`otakit rollout threshold`) record it and re-publish DEST with the
    previous release's manifest (or without the channel's manifest). Needs no signing key."""
    if (server is None) == (telemetry_db is None):
        raise click.UsageError("give --server URL --token-file FILE, or --telemetry DB")
    root = Repository(repo).root
    if not root.is_dir():
        raise KeyFileError(f"no release repository at {repo}", reason="NO_REPO")
    if server is not None and token_file is None:
        raise click.UsageError("--server needs --token-file")
    with contextlib.ExitStack() as stack:
        rows: list[dict] = []
        refresh: Callable[[], None] | None = None
        if telemetry_db:
            store = open_store(telemetry_db)
            stack.callback(store.close)
            health = withhold.store_health(store)
        else:
            token = Path(str(token_file)).read_text().strip()

            def fetch() -> None:
                rows[:] = _summary(str(server), token).get("funnel", [])

            def health(where: tuple[str, str, str], seq: int) -> tuple[int, int, int]:
                return withhold.funnel_health(rows, where, seq)
            refresh = fetch
        watcher = withhold.Withholder(root, health)
        if dest:  # the site starts in step with the repository's withholds
            publish_static(root, dest)
        while True:
            if refresh is not None:
                refresh()
            new = watcher.evaluate()
            for name, rec in new:
                click.echo(f"withheld {name} sequence {rec['seq']}: {rec['failed']} of "
                           f"{rec['reached']} devices failed ({rec['sources']} networks)")
            if new and dest:
                r = publish_static(root, dest)
                click.echo(f"re-published {dest}: {r.withheld} channel(s) withheld")
            sys.stdout.flush()
            if once:
                return
            time.sleep(interval)


def _summary(server: str, token: str) -> dict:
    url = server.rstrip("/") + "/.otakit/api/summary"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the operator's URL
            data = json.loads(resp.read(1 << 24))
    except (OSError, ValueError) as e:
        raise OtakitError(f"cannot read {url}: {e}", reason="NETWORK") from e
    if type(data) is not dict:
        raise OtakitError(f"{url} did not answer a summary object", reason="NETWORK")
    return data


def _show_targets(b: ManifestBody, as_json: bool) -> None:
    c, pins = b.extra.get("cohort"), b.extra.get("pins", [])
    if as_json:
        echo_json({"version": b.version, "sequence": b.sequence, "revision": b.revision,
                   "cohort": c, "pins": pins})
        return
    click.echo(f"{b.product}/{b.board}/{b.channel} version {b.version} sequence {b.sequence}, "
               f"revision {b.revision}: " + (
                   f"cohort {c['name']} ({len(c['members'])} devices)" if c else "no cohort")
               + f", {len(pins)} pinned device(s)")


@rollout_group.group("cohort")
def cohort_group() -> None:
    """Target the current release at a named cohort of at most 64 devices (by their
    pseudonymous ids, as the dashboard shows them); other devices hold (NOT_IN_COHORT)."""


def _cohort_command(name: str, doc: str, op: str) -> click.Command:
    @click.command(name, help=doc)
    @_where
    @_KEY
    @click.option("--name", "cohort_name", required=op != "clear", help="The cohort's name.")
    @click.argument("devices", nargs=-1, required=op != "clear")
    def cmd(repo: str, product: str, board: str, channel: str, key_file: str,
            as_json: bool, cohort_name: str | None, devices: tuple[str, ...]) -> None:
        k = load_signing_key(key_file)
        w = (product, board, channel)
        listed = list(devices)
        b = (rollout.cohort(Repository(repo), w, k, None) if op == "clear" else
             rollout.cohort(Repository(repo), w, k, cohort_name,
                            add=listed if op == "add" else [],
                            remove=listed if op == "remove" else []))
        _show_targets(b, as_json)
    return cmd


for _name, _doc, _op in (
        ("add", "Add DEVICES to the cohort (re-signs the manifest).", "add"),
        ("remove", "Remove DEVICES from the cohort (the last one clears it).", "remove"),
        ("clear", "Offer the release to every device again.", "clear")):
    cohort_group.add_command(_cohort_command(_name, _doc, _op))


@rollout_group.command("pin")
@_where
@_KEY
@click.argument("device")
@click.argument("sequence", type=click.IntRange(1, 2**31 - 1))
def pin(repo: str, product: str, board: str, channel: str, key_file: str, as_json: bool,
        device: str, sequence: int) -> None:
    """Pin DEVICE to release SEQUENCE: it takes no release above it (PINNED), also from later
    releases of the channel, until unpinned."""
    _show_targets(rollout.pin(Repository(repo), (product, board, channel),
                              load_signing_key(key_file), device, sequence), as_json)


@rollout_group.command("unpin")
@_where
@_KEY
@click.argument("device")
def unpin(repo: str, product: str, board: str, channel: str, key_file: str, as_json: bool,
          device: str) -> None:
    """Let DEVICE take the channel's releases again."""
    _show_targets(rollout.pin(Repository(repo), (product, board, channel),
                              load_signing_key(key_file), device, None), as_json)


COMMANDS = [rollout_group]
