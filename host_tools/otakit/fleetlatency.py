"""Release-to-fleet latency from the telemetry store: evidence for ETSI EN 303 645 5.3-8 (security
updates are timely) and CRA Annex I(2)(c).

For one release (product, board, channel, sequence), each device's latency is the time from the
release's publication (its manifest's ``created``: when `otakit release` signed it) to the first
report from that device, received by the fleet server, that the release is installed (an
``installed`` or ``confirmed`` event, docs/fleet.md). `release_latency` gives the count of
devices that reported it, the devices the store knows on the channel, and the p50/p90/p99 of the
latencies (nearest rank: the smallest latency at or below which that share of the reporting
devices lies).

Invariants:
- Only what the store holds counts: a device that opted out of telemetry, or whose report has
  not arrived yet, is not in the figures; the report says how many devices the store knows.
- The times are the server's receipt times (a device reports at its next check after the
  install), so a latency is an upper bound on the device's own.
- A report received before the publication (a clock step, a re-used sequence) is counted as 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from otakit.errors import OtakitError
from otakit.repo import Repository
from otakit.telemetry import SQLStore

PERCENTILES = (50, 90, 99)
INSTALLED_EVENTS = ("installed", "confirmed")


@dataclass(frozen=True)
class Latency:
    """A release's latency to the fleet (seconds; None when no device reported it)."""

    product: str
    board: str
    channel: str
    sequence: int
    version: str
    published: int
    devices: int  # devices that reported the release installed
    known: int  # devices the store knows on this product/board/channel
    p50: int | None
    p90: int | None
    p99: int | None
    max: int | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def percentile(values: list[int], p: int) -> int:
    """The nearest-rank ``p``-th percentile of non-empty ``values``."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def latencies(store: SQLStore, product: str, board: str, channel: str, sequence: int,
              published: int) -> dict[str, int]:
    """device -> seconds from ``published`` to its first report of ``sequence`` installed."""
    first = store.first_reports(product, board, channel, sequence, INSTALLED_EVENTS)
    return {device: max(0, ts - published) for device, ts in first.items()}


def release_latency(store: SQLStore, repo: Repository, product: str, board: str,
                    channel: str = "stable", sequence: int | None = None,
                    published: int | None = None) -> Latency:
    """The latency of the channel's current release (or ``sequence``, with its ``published``
    time when it is no longer the current one) to the devices in ``store``.

    Raises:
        OtakitError: ``NOT_FOUND`` when the channel has no release (or ``sequence`` is not the
            current one and no ``published`` time is given).
    """
    pub = repo.published(product, board, channel)
    where = f"{product}/{board}/{channel}"
    version = ""
    if pub is not None and sequence in (None, pub.body.sequence):
        sequence, version = pub.body.sequence, pub.body.version
        published = pub.body.created if published is None else published
    if sequence is None or published is None:
        raise OtakitError(f"{where} has no release" + (f" with sequence {sequence} (give its "
                          "publication time)" if sequence is not None else ""),
                          reason="NOT_FOUND")
    version = version or store.versions().get((product, board, sequence), "")
    lat = sorted(latencies(store, product, board, channel, sequence, published).values())
    known = store.known_devices(product, board, channel)
    pct = {f"p{p}": (percentile(lat, p) if lat else None) for p in PERCENTILES}
    return Latency(product, board, channel, sequence, version, published, len(lat), known,
                   max=lat[-1] if lat else None, **pct)


def _span(s: int | None) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def describe(lat: Latency) -> str:
    """Lines a person reads."""
    head = (f"{lat.product}/{lat.board}/{lat.channel} sequence {lat.sequence}"
            + (f" (version {lat.version})" if lat.version else ""))
    if not lat.devices:
        return (f"{head}: no device has reported it installed yet ({lat.known} device(s) "
                "known on the channel)")
    return (f"{head}: installed on {lat.devices} of {lat.known} known device(s); from "
            f"publication to the device's report: p50 {_span(lat.p50)}, p90 {_span(lat.p90)}, "
            f"p99 {_span(lat.p99)}, max {_span(lat.max)}")
