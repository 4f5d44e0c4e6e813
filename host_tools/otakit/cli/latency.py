"""otakit CLI: ``latency`` (release-to-fleet latency from the telemetry store:
`otakit.fleetlatency`)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit import fleetlatency
from otakit.cli._output import echo_json, json_option
from otakit.errors import OtakitError
from otakit.repo import Repository
from otakit.telemetry import open_store


@click.command("latency")
@click.option("--telemetry", "telemetry_db", required=True, metavar="DB",
              help="The telemetry store `otakit serve --telemetry` keeps (a SQLite file or a "
                   "postgresql:// URL).")
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository dir.")
@click.option("--product", required=True)
@click.option("--board", required=True)
@click.option("--channel", default="stable", show_default=True)
@click.option("--sequence", type=click.IntRange(1, 0x7FFFFFFF),
              help="An earlier release [default: the channel's current one]; needs --published.")
@click.option("--published", type=click.IntRange(0, 2**40),
              help="When that release was published (Unix seconds).")
@json_option
def latency(telemetry_db: str, repo: str, product: str, board: str, channel: str,  # noqa: PLR0913
            sequence: int | None, published: int | None, as_json: bool) -> None:
    """How fast a release reached the fleet (ETSI EN 303 645 5.3-8 evidence).

    For the channel's current release: how many devices reported it installed, of the devices
    the store knows, and the p50/p90/p99 of the time from its publication (the manifest's
    `created`) to each device's first report of it installed (the server's receipt time).
    Devices that opted out of telemetry are not counted.
    """
    if "://" not in telemetry_db and not Path(telemetry_db).is_file():
        raise OtakitError(f"no telemetry store {telemetry_db} (`otakit serve --telemetry DB` "
                          "keeps one)", reason="NOT_FOUND")
    store = open_store(telemetry_db)
    try:
        lat = fleetlatency.release_latency(store, Repository(Path(repo)), product, board,
                                           channel, sequence, published)
    finally:
        store.close()
    if as_json:
        echo_json(lat.to_dict())
    else:
        click.echo(fleetlatency.describe(lat))


COMMANDS = [latency]
