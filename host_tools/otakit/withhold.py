"""Rollouts that withhold themselves (docs/fleet.md "Withholding a failing release").

A channel's **withhold threshold** (`set_threshold`, kept in ``<repo>/.otakit/policy.json``
beside the staging policy) says when its current release stops being offered: at least
``min_failed`` distinct devices failed or rolled back on it, those devices are at least
``percent`` % of the distinct devices the release reached, and their failure reports came from at
least ``min_sources`` source networks (reports are unauthenticated, as for the dashboard's flag).

"Reached" counts a device that reported any event of the release other than a check: offered,
downloaded, installed, confirmed, failed or rolled back (`otakit.telemetry.SQLStore.funnel`,
``reached``). A device held back by a staged rollout never reports the release (it reports a
``checked`` / ``held`` outcome at sequence 0), so it is not in the denominator.

Withholding needs no signing key. Whoever withholds (`otakit serve` on ingest, `otakit rollout
watch` for a static host) records it in ``<repo>/.otakit/withheld.json``: the channel's
sequence and the manifest ``revision`` withheld. From then on the channel's manifest is served
as the **previous release's signed manifest** (the newest one of an older release in the
channel's history, ``<repo>/.otakit/releases/``, which `otakit.repo.Repository.record` keeps for
every manifest signed for the channel) or, without one, not at all (`otakit serve`: 503; `otakit publish`: the file is removed,
so the static host answers 404).

Invariants:
- A withhold is active only while the channel's manifest is still the one withheld (same
  ``sequence`` and ``revision``). Any re-signing by the operator (`otakit rollout abort`,
  ``lift``, a new release) lifts it; the record stays, so the same sequence is never withheld
  automatically again (the operator decided).
- The previous manifest is served byte for byte: it has a lower ``revision``, so a device that
  accepted the withheld one refuses it (OLD_REVISION) and stays put; its ``sequence`` is lower, so
  it never moves a device backwards (ROLLBACK). A device that never saw the withheld manifest
  never downloads its payload.
- Files are replaced atomically; dot-directories are never served or published.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from otakit.errors import ManifestError, RepoError
from otakit.repo import Repository, read_published, write_atomic

POLICY_FILE = ".otakit/policy.json"
STATE_FILE = ".otakit/withheld.json"
_HISTORY = 16  # withheld sequences remembered per channel (never served as "previous")

Where = tuple[str, str, str]


@dataclass(frozen=True)
class Threshold:
    """When a channel's current release is withheld (all of them at once)."""

    min_failed: int
    percent: float
    min_sources: int = 2

    def exceeded(self, reached: int, failed: int, sources: int) -> bool:
        """Whether ``failed`` of ``reached`` devices (from ``sources`` networks) cross it."""
        return (failed >= self.min_failed and sources >= self.min_sources and reached > 0
                and 100 * failed >= self.percent * reached)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RepoError(f"{path} is malformed", reason="BAD_REPO") from e
    if type(data) is not dict:
        raise RepoError(f"{path} is malformed", reason="BAD_REPO")
    return data


def thresholds(root: Path) -> dict[str, Threshold]:
    """``product/board/channel`` -> its withhold threshold, for the channels that have one.

    Raises:
        RepoError: ``BAD_REPO`` when the policy file is malformed.
    """
    path = Path(root) / POLICY_FILE
    data = _read_json(path).get("withhold", {})
    try:
        return {str(k): Threshold(int(v["min_failed"]), float(v["percent"]),
                                  int(v.get("min_sources", 2))) for k, v in data.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RepoError(f"{path} is malformed", reason="BAD_REPO") from e


def set_threshold(root: Path, where: Where, threshold: Threshold | None) -> None:
    """Give a channel a withhold threshold (None: it has none); the staging policy is kept.

    Raises:
        RepoError: ``BAD_ARGUMENT`` for a threshold out of range.
    """
    if threshold is not None and not (threshold.min_failed >= 1 and 0 < threshold.percent <= 100
                                      and threshold.min_sources >= 1):
        raise RepoError("a withhold threshold needs --failed >= 1, 0 < --percent <= 100 and "
                        "--sources >= 1", reason="BAD_ARGUMENT")
    path = Path(root) / POLICY_FILE
    data = _read_json(path)
    table = dict(data.get("withhold", {}))
    name = "/".join(where)
    if threshold is None:
        table.pop(name, None)
    else:
        table[name] = asdict(threshold)
    data["withhold"] = table
    write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def records(root: Path) -> dict[str, dict[str, Any]]:
    """Every withhold recorded in the repository, by ``product/board/channel``.

    Raises:
        RepoError: ``BAD_REPO`` when the state file is malformed.
    """
    return {str(k): dict(v) for k, v in _read_json(Path(root) / STATE_FILE).items()
            if type(v) is dict}


def _current(root: Path, where: Where) -> tuple[int, int] | None:
    """(sequence, revision) of the channel's manifest, None when absent or unreadable."""
    try:
        pub = Repository(root).published(*where)
    except RepoError:
        return None
    return None if pub is None else (pub.body.sequence, pub.revision)


def active(root: Path, where: Where, recs: dict[str, dict[str, Any]] | None = None
           ) -> dict[str, Any] | None:
    """The channel's withhold record when it is in force (the manifest is the one withheld)."""
    rec = (records(root) if recs is None else recs).get("/".join(where))
    if rec is None:
        return None
    cur = _current(root, where)
    return rec if cur is not None and cur == (rec.get("seq"), rec.get("revision")) else None


def withheld_now(root: Path) -> dict[str, dict[str, Any]]:
    """The withholds in force, by ``product/board/channel`` (each record with ``serve``:
    ``previous`` or ``none``, what is served instead); {} when the state file is malformed."""
    try:
        recs = records(root)
    except RepoError:
        return {}
    out = {}
    for name, rec in recs.items():
        where = where_of(name)
        if active(root, where, recs) is not None:
            out[name] = {**rec, "serve": "previous" if previous_manifest(root, where) else "none"}
    return out


def previous_manifest(root: Path, where: Where) -> Path | None:
    """The previous release's manifest to serve while the channel is withheld: the newest
    recorded one with a lower sequence and revision than the current one that was never
    withheld itself; None when the history holds none."""
    cur = _current(root, where)
    if cur is None:
        return None
    withheld = records(root).get("/".join(where), {}).get("withheld_seqs", [])
    for path in Repository(root).history(*where):
        try:
            prev = read_published(path.read_bytes())
        except (ManifestError, OSError):
            continue
        if prev.body.sequence < cur[0] and prev.revision < cur[1] \
                and prev.body.sequence not in withheld:  # never an earlier withheld release
            return path
    return None


def offering(root: Path, where: Where) -> bool:
    """Whether the channel's manifest offers its release to some device (unstaged, or an
    active rollout): only then is there anything to withhold."""
    try:
        body = Repository(root).current(*where)
    except RepoError:
        return False
    return body is not None and (body.rollout is None or body.rollout["state"] == "active")


def consider(root: Path, where: Where, threshold: Threshold, reached: int, failed: int,
             sources: int, now: int | None = None) -> dict[str, Any] | None:
    """Withhold the channel's current release if its figures cross ``threshold`` and it was
    never withheld before; return the new record, or None.

    The figures are those of the channel's current sequence. The record is written to
    ``<repo>/.otakit/withheld.json`` (atomically).
    """
    cur = _current(root, where)
    if cur is None or not threshold.exceeded(reached, failed, sources):
        return None
    recs = records(root)
    name = "/".join(where)
    if recs.get(name, {}).get("seq") == cur[0] or not offering(root, where):
        return None  # withheld once already (the operator decided since), or nothing offered
    seqs = [*recs.get(name, {}).get("withheld_seqs", []), cur[0]][-_HISTORY:]
    recs[name] = {"seq": cur[0], "revision": cur[1], "withheld_seqs": seqs}
    rec = {**recs[name], "at": int(time.time()) if now is None else now,
           "failed": failed, "reached": reached, "sources": sources}
    recs[name] = rec
    _write(root, recs)  # first: previous_manifest reads the withheld sequences
    rec["serve"] = "previous" if previous_manifest(root, where) else "none"
    _write(root, recs)
    return rec


def _write(root: Path, recs: dict[str, dict[str, Any]]) -> None:
    write_atomic(Path(root) / STATE_FILE,
                 (json.dumps(recs, indent=1, sort_keys=True) + "\n").encode())


def where_of(name: str) -> Where:
    """``product/board/channel`` -> the tuple."""
    p, b, c = name.split("/")
    return (p, b, c)




class Withholder:
    """The threshold check and the manifest substitution `otakit serve` and `otakit rollout
    watch` share.

    Args:
        root: the release repository.
        health: ``(where, seq) -> (reached, failed, failed sources)`` of one release, from a
            telemetry store (`otakit.telemetry.SQLStore.release_health`) or an admin API.
    """

    def __init__(self, root: Path, health: Any) -> None:
        self.root = Path(root)
        self.health = health
        self._stamp: tuple[int, int] | None = None
        self._recs: dict[str, dict[str, Any]] = {}
        self._decided: dict[str, tuple[object, str | None]] = {}

    def evaluate(self, now: int | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Check every channel that has a threshold; withhold those that cross it. Returns the
        new withholds as (``product/board/channel``, record)."""
        out = []
        for name, threshold in thresholds(self.root).items():
            where = where_of(name)
            cur = _current(self.root, where)
            if cur is None:
                continue
            reached, failed, sources = self.health(where, cur[0])
            rec = consider(self.root, where, threshold, reached, failed, sources, now)
            if rec is not None:
                out.append((name, rec))
        return out

    def _records(self) -> dict[str, dict[str, Any]]:
        try:
            st = (Path(self.root) / STATE_FILE).stat()
        except OSError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                self._recs = records(self.root)
            except RepoError:  # malformed: nothing is withheld (the writer replaces it whole)
                self._recs = {}
            self._stamp = stamp
        return self._recs

    def substitute(self, path: str) -> str | None:
        """What to serve for the repository file ``path``: itself, the previous release's
        manifest while its channel is withheld, or None (nothing: 503)."""
        try:
            rel = Path(path).relative_to(self.root).parts
        except ValueError:
            return path
        if len(rel) != 4 or rel[3] != "manifest":
            return path
        recs = self._records()
        where = (rel[0], rel[1], rel[2])
        if "/".join(where) not in recs:
            return path
        try:  # the decision holds while neither the state file nor the manifest changes
            st = Path(path).stat()
        except OSError:
            return path
        key = (self._stamp, st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._decided.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        out: str | None = path
        if active(self.root, where, recs) is not None:
            prev = previous_manifest(self.root, where)
            out = None if prev is None else str(prev)
        self._decided[path] = (key, out)
        return out


def store_health(store: Any) -> Any:
    """A ``health`` function for `Withholder` from a telemetry store: its ``release_health``,
    or the figures of its ``funnel`` rows (a store that implements only the interface)."""
    fn = getattr(store, "release_health", None)
    if fn is not None:
        return lambda where, seq: fn(*where, seq)

    def from_funnel(where: Where, seq: int) -> tuple[int, int, int]:
        return funnel_health(store.funnel(), where, seq)
    return from_funnel


def funnel_health(rows: list[dict[str, Any]], where: Where, seq: int) -> tuple[int, int, int]:
    """(reached, failed, failed sources) of one release from funnel rows (a store's, or the
    admin API's ``funnel``); a row without ``reached`` counts the devices offered it or
    failed, whichever is more."""
    for f in rows:
        if (f.get("product"), f.get("board"), f.get("channel"), f.get("seq")) == (*where, seq):
            failed = int(f.get("failed_devices", f.get("failed", 0) + f.get("rolled_back", 0)))
            reached = int(f.get("reached", max(int(f.get("offered", 0)), failed)))
            return reached, failed, int(f.get("failed_sources", failed))
    return 0, 0, 0


__all__ = ["POLICY_FILE", "STATE_FILE", "Threshold", "Withholder", "active",
           "consider", "funnel_health", "offering", "previous_manifest",
           "records", "set_threshold", "store_health", "thresholds", "where_of", "withheld_now"]
