"""Update telemetry: validate the agent's reports and keep them in a small SQL store.

A report (docs/fleet.md) is one JSON object of at most `MAX_REPORT` bytes::

    {"v": 1, "id": "<pseudonymous device id>", "product": "...", "board": "...",
     "channel": "...", "seq": <installed sequence>,
     "events": [{"e": "offered", "seq": 2, "ms": 35, "ver": "1.1.0"},
                {"e": "failed", "seq": 2, "ms": 812, "reason": "HASH_MISMATCH"}, ...]}

Invariants:
- Every field is type- and range-checked (`parse_report`); a report with any bad field is refused
  whole (``BAD_REPORT``). Unknown fields are ignored and never stored.
- Privacy: the store keeps the device's pseudonymous id, what it reported and a pseudonymous
  tag of the source network it came from (`otakit.fleet`: a keyed hash of the /24 or /48,
  only ever compared for equality), never an IP address or a MAC; rows older than the retention limit are deleted (`SQLStore.purge`, run by
  `add` at most once a minute).
- `TelemetryStore` is the interface the server uses; `SQLStore` implements it on any DB-API
  connection: SQLite by default (`open_store("fleet.sqlite3")`), PostgreSQL by a
  ``postgresql://`` URL when psycopg is installed (docs/fleet.md).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from otakit.errors import OtakitError

MAX_REPORT = 4096
MAX_EVENTS = 16
EVENTS = ("checked", "offered", "downloaded", "installed", "confirmed", "rolled_back", "failed")
FAILURES = ("failed", "rolled_back")
INT31 = 2**31 - 1
MAX_MS = 86_400_000
DEFAULT_RETENTION_DAYS = 90
_ID_RE = re.compile(r"[A-Za-z0-9._-]{8,64}")
_NAME_RE = re.compile(r"[a-z0-9._-]{1,32}")
_REASON_RE = re.compile(r"[A-Za-z_]{1,32}")


class ReportError(OtakitError):
    """A telemetry report was refused (reason ``BAD_REPORT``)."""


@dataclass(frozen=True)
class Event:
    """One validated event of a report."""

    event: str
    seq: int
    ms: int
    reason: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Report:
    """A validated report."""

    device: str
    product: str
    board: str
    channel: str
    seq: int
    events: tuple[Event, ...]


def _bad(detail: str) -> ReportError:
    return ReportError(f"bad report: {detail}", reason="BAD_REPORT")


def _int(d: dict[str, Any], name: str, hi: int) -> int:
    v = d.get(name)
    if type(v) is not int or not 0 <= v <= hi:
        raise _bad(f"{name} must be an integer 0..{hi}")
    return v


def _match(d: dict[str, Any], name: str, rx: re.Pattern[str], required: bool = True) -> str | None:
    if not required and name not in d:
        return None
    v = d.get(name)
    if type(v) is not str or not rx.fullmatch(v):
        raise _bad(f"{name} is missing or malformed")
    return v


def _event(d: object) -> Event:
    if type(d) is not dict:
        raise _bad("an event must be an object")
    e = d.get("e")
    if e not in EVENTS:
        raise _bad(f"unknown event {str(e)[:32]!r}")
    ver = d.get("ver")
    if ver is not None and (type(ver) is not str or not 1 <= len(ver) <= 32
                            or not ver.isprintable()):
        raise _bad("ver must be 1-32 printable characters")
    return Event(e, _int(d, "seq", INT31), _int(d, "ms", MAX_MS),
                 _match(d, "reason", _REASON_RE, required=False), ver)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_report(data: bytes) -> Report:
    """Validate a report body.

    Raises:
        ReportError: ``BAD_REPORT`` (too large, not JSON, or any field wrong).
    """
    if len(data) > MAX_REPORT:
        raise _bad(f"{len(data)} bytes, over {MAX_REPORT}")
    try:
        d = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise _bad("not UTF-8 JSON") from e
    if type(d) is not dict or d.get("v") != 1 or type(d.get("v")) is not int:
        raise _bad("not a version 1 report object")
    events = d.get("events")
    if type(events) is not list or len(events) > MAX_EVENTS:
        raise _bad(f"events must be a list of at most {MAX_EVENTS}")
    names = [_match(d, k, _NAME_RE) for k in ("product", "board", "channel")]
    return Report(_match(d, "id", _ID_RE), *names,  # type: ignore[arg-type]
                  seq=_int(d, "seq", INT31), events=tuple(_event(e) for e in events))


class TelemetryStore(Protocol):
    """What the server and the dashboard need from a telemetry store."""

    def add(self, report: Report, now: int, source: str | None = None) -> None:
        """Record a report received at Unix time ``now`` from the pseudonymous source-network
        tag ``source`` (None: the device counts as its own source)."""
        ...

    def purge(self, now: int) -> int:
        """Delete what is older than the retention limit; return the rows deleted."""
        ...

    def device_versions(self) -> list[tuple[str, str, int, int]]:
        """(product, board, installed sequence, devices) for every version seen."""
        ...

    def funnel(self) -> list[dict[str, Any]]:
        """Per release (product, board, channel, seq): distinct devices per event, distinct
        devices that failed or rolled back (``failed_devices``), the distinct sources they
        reported from (``failed_sources``) and the distinct devices that reported any event of
        the release but a check (``reached``, `otakit.withhold`)."""
        ...

    def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest failed / rolled-back events, newest first."""
        ...

    def versions(self) -> dict[tuple[str, str, int], str]:
        """(product, board, seq) -> the human version reported for it."""
        ...


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS devices (id VARCHAR(64) PRIMARY KEY, product VARCHAR(32), "
    "board VARCHAR(32), channel VARCHAR(32), seq INTEGER, last_seen BIGINT)",
    "CREATE TABLE IF NOT EXISTS events (ts BIGINT, device VARCHAR(64), product VARCHAR(32), "
    "board VARCHAR(32), channel VARCHAR(32), seq INTEGER, event VARCHAR(16), "
    "reason VARCHAR(32), ms INTEGER, version VARCHAR(32), source VARCHAR(32))",
    "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)",
    "CREATE INDEX IF NOT EXISTS events_release ON events (product, board, channel, seq)",
)


class SQLStore:
    """`TelemetryStore` on a DB-API 2 connection (SQLite or PostgreSQL).

    Args:
        connect: makes the connection (called once).
        paramstyle: ``"qmark"`` (sqlite3) or ``"format"`` (psycopg).
        retention_days: rows older than this are deleted.
    """

    def __init__(self, connect: Callable[[], Any], paramstyle: str = "qmark",
                 retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self._db = connect()
        self._format = paramstyle == "format"
        self.retention = retention_days * 86400
        self._lock = threading.Lock()
        self._purged = 0
        for stmt in _SCHEMA:
            self._exec(stmt)
        self._db.commit()
        try:
            self._exec("SELECT source FROM events WHERE 1 = 0")
        except Exception:  # noqa: BLE001 - a store made before sources were recorded
            self._db.rollback()
            self._exec("ALTER TABLE events ADD COLUMN source VARCHAR(32)")
            self._db.commit()

    def _exec(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(sql, args)[0]

    def _run(self, sql: str, args: Iterable[Any] = ()) -> tuple[list[tuple[Any, ...]], int]:
        if self._format:
            sql = sql.replace("?", "%s")
        cur = self._db.cursor()
        cur.execute(sql, tuple(args))
        rows = cur.fetchall() if cur.description else []
        count = cur.rowcount
        cur.close()
        return rows, count

    def add(self, report: Report, now: int, source: str | None = None) -> None:
        """Record ``report`` (from source tag ``source``); purge old rows at most once a
        minute."""
        r = report
        with self._lock:
            self._exec("INSERT INTO devices (id, product, board, channel, seq, last_seen) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                       "product = excluded.product, board = excluded.board, "
                       "channel = excluded.channel, seq = excluded.seq, "
                       "last_seen = excluded.last_seen",
                       (r.device, r.product, r.board, r.channel, r.seq, now))
            for e in r.events:
                self._exec("INSERT INTO events (ts, device, product, board, channel, seq, event, "
                           "reason, ms, version, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (now, r.device, r.product, r.board, r.channel, e.seq, e.event,
                            e.reason, e.ms, e.version, source))
            self._db.commit()
        if now - self._purged >= 60:
            self.purge(now)

    def purge(self, now: int) -> int:
        """Delete events and devices older than the retention limit."""
        cutoff = now - self.retention
        with self._lock:
            n = self._run("DELETE FROM events WHERE ts < ?", (cutoff,))[1]
            n += self._run("DELETE FROM devices WHERE last_seen < ?", (cutoff,))[1]
            self._db.commit()
            self._purged = now
        return n

    def device_versions(self) -> list[tuple[str, str, int, int]]:
        """(product, board, installed sequence, devices)."""
        with self._lock:
            return [tuple(r) for r in self._exec(  # type: ignore[misc]
                "SELECT product, board, seq, COUNT(*) FROM devices GROUP BY product, board, seq "
                "ORDER BY product, board, seq DESC")]

    def funnel(self) -> list[dict[str, Any]]:
        """Distinct devices per event, per release."""
        with self._lock:
            rows = self._exec(
                "SELECT product, board, channel, seq, event, COUNT(DISTINCT device) FROM events "
                "WHERE seq > 0 GROUP BY product, board, channel, seq, event")
            bad = self._exec(
                "SELECT product, board, channel, seq, COUNT(DISTINCT device), "
                "COUNT(DISTINCT COALESCE(source, 'device:' || device)) FROM events "
                "WHERE seq > 0 AND event IN ('failed', 'rolled_back') "
                "GROUP BY product, board, channel, seq")
            reach = self._exec(
                "SELECT product, board, channel, seq, COUNT(DISTINCT device) FROM events "
                "WHERE seq > 0 AND event <> 'checked' GROUP BY product, board, channel, seq")
        reached = {(p, b, c, s): n for p, b, c, s, n in reach}
        failed = {(p, b, c, s): (d, n) for p, b, c, s, d, n in bad}
        out: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        for product, board, channel, seq, event, n in rows:
            key = (product, board, channel, seq)
            f = out.setdefault(key, {"product": product, "board": board, "channel": channel,
                                     "seq": seq, **dict.fromkeys(EVENTS[1:], 0)})
            if event in f:
                f[event] = n
            f["failed_devices"], f["failed_sources"] = failed.get(key, (0, 0))
            f["reached"] = reached.get(key, 0)
        return [out[k] for k in sorted(out, reverse=True)]

    def release_health(self, product: str, board: str, channel: str,
                       seq: int) -> tuple[int, int, int]:
        """One release's (reached, failed, failed sources): the distinct devices that reported
        any event of it but a check, those that failed or rolled back, and the distinct source
        networks of their failure reports (`otakit.withhold`)."""
        where = "product = ? AND board = ? AND channel = ? AND seq = ?"
        args = (product, board, channel, seq)
        with self._lock:
            reached = self._exec("SELECT COUNT(DISTINCT device) FROM events WHERE " + where
                                 + " AND event <> 'checked'", args)[0][0]
            failed, sources = self._exec(
                "SELECT COUNT(DISTINCT device), COUNT(DISTINCT COALESCE(source, 'device:' || "
                "device)) FROM events WHERE " + where
                + " AND event IN ('failed', 'rolled_back')", args)[0]
        return int(reached), int(failed), int(sources)

    def recent_failures(self, limit: int = 20) -> list[dict[str, Any]]:
        """Latest failures, newest first."""
        with self._lock:
            rows = self._exec(
                "SELECT ts, device, product, board, channel, seq, event, reason FROM events "
                "WHERE event IN ('failed', 'rolled_back') ORDER BY ts DESC LIMIT ?", (limit,))
        keys = ("ts", "device", "product", "board", "channel", "seq", "event", "reason")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def versions(self) -> dict[tuple[str, str, int], str]:
        """(product, board, seq) -> version, from the events that carried one."""
        with self._lock:
            rows = self._exec("SELECT DISTINCT product, board, seq, version FROM events "
                              "WHERE version IS NOT NULL")
        return {(p, b, s): v for p, b, s, v in rows}

    # --- release-to-fleet latency (otakit.fleetlatency) -------------------------------------
    def first_reports(self, product: str, board: str, channel: str, seq: int,
                      events: Iterable[str]) -> dict[str, int]:
        """device -> the receipt time of its first ``events`` report of release ``seq``."""
        names = tuple(events)
        marks = ", ".join("?" * len(names))
        with self._lock:
            rows = self._exec(
                "SELECT device, MIN(ts) FROM events WHERE product = ? AND board = ? AND "
                f"channel = ? AND seq = ? AND event IN ({marks}) GROUP BY device",  # noqa: S608 - marks only
                (product, board, channel, seq, *names))
        return {d: int(ts) for d, ts in rows}

    def known_devices(self, product: str, board: str, channel: str) -> int:
        """How many devices the store knows on a product/board/channel."""
        with self._lock:
            rows = self._exec("SELECT COUNT(*) FROM devices WHERE product = ? AND board = ? "
                              "AND channel = ?", (product, board, channel))
        return int(rows[0][0])

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    # -- Read-only queries for the dashboard's device search, device pages and daily chart
    # (`otakit.dashboard`; a store without them shows no device search, no chart).

    def find_devices(self, prefix: str, limit: int = 50) -> list[dict[str, Any]]:
        """Devices whose id starts with ``prefix`` (case-sensitive), most recently seen
        first, at most ``limit``."""
        with self._lock:
            rows = self._exec(
                "SELECT id, product, board, channel, seq, last_seen FROM devices "
                "WHERE SUBSTR(id, 1, ?) = ? ORDER BY last_seen DESC, id LIMIT ?",
                (len(prefix), prefix, limit))
        keys = ("device", "product", "board", "channel", "seq", "last_seen")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def device(self, device: str) -> dict[str, Any] | None:
        """The last report's header of ``device`` (product, board, channel, installed
        sequence, last seen), None if unknown."""
        with self._lock:
            rows = self._exec("SELECT id, product, board, channel, seq, last_seen FROM devices "
                              "WHERE id = ?", (device,))
        keys = ("device", "product", "board", "channel", "seq", "last_seen")
        return dict(zip(keys, rows[0], strict=True)) if rows else None

    def device_history(self, device: str, limit: int = 200) -> list[dict[str, Any]]:
        """The events ``device`` reported, newest first (within one report, the later stage of
        an update first), at most ``limit``."""
        stage = "CASE event " + " ".join(f"WHEN '{e}' THEN {i}" for i, e in enumerate(EVENTS))
        with self._lock:
            rows = self._exec(
                "SELECT ts, product, board, channel, seq, event, reason, ms, version FROM events "
                f"WHERE device = ? ORDER BY ts DESC, {stage} END DESC LIMIT ?", (device, limit))
        keys = ("ts", "product", "board", "channel", "seq", "event", "reason", "ms", "version")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def daily(self, now: int, days: int = 14) -> list[dict[str, Any]]:
        """Per UTC day of the last ``days`` (oldest first, days without events included):
        distinct devices that confirmed an update (``succeeded``), that failed or rolled
        back (``failed``), and that did either (``devices``)."""
        first = now // 86400 - days + 1
        with self._lock:
            rows = self._exec(
                "SELECT ts / 86400, "
                "COUNT(DISTINCT CASE WHEN event = 'confirmed' THEN device END), "
                "COUNT(DISTINCT CASE WHEN event <> 'confirmed' THEN device END), "
                "COUNT(DISTINCT device) FROM events "
                "WHERE ts >= ? AND event IN ('confirmed', 'failed', 'rolled_back') "
                "GROUP BY ts / 86400", (first * 86400,))
        got = {int(d): (ok, bad, n) for d, ok, bad, n in rows}
        return [dict(zip(("day", "succeeded", "failed", "devices"),
                         (d, *got.get(d, (0, 0, 0))), strict=True))
                for d in range(first, first + days)]


def open_store(where: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> SQLStore:
    """A store for a SQLite file path, or a ``postgresql://`` URL (needs psycopg).

    Raises:
        OtakitError: ``BAD_ARGUMENT`` when the database cannot be opened.
    """
    if where.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg  # type: ignore[import-not-found]  # noqa: PLC0415
        except ImportError as e:
            raise OtakitError("a PostgreSQL telemetry store needs psycopg (pip install "
                              "'psycopg[binary]')", reason="BAD_ARGUMENT") from e
        try:
            return SQLStore(lambda: psycopg.connect(where), "format", retention_days)
        except psycopg.Error as e:
            raise OtakitError(f"cannot open the telemetry database {_redact(where)}: "
                              f"{str(e).strip()}", reason="BAD_ARGUMENT") from e
    try:
        return SQLStore(lambda: sqlite3.connect(where, check_same_thread=False,
                                                isolation_level="DEFERRED"),
                        "qmark", retention_days)
    except sqlite3.Error as e:
        raise OtakitError(f"cannot open the telemetry database {where}: {e}",
                          reason="BAD_ARGUMENT") from e


def _redact(url: str) -> str:
    """``url`` without the password of its user part, for messages."""
    scheme, sep, rest = url.partition("://")
    auth, at, host = rest.partition("@")
    if not at or ":" not in auth:
        return url
    return f"{scheme}{sep}{auth.split(':', 1)[0]}:***@{host}"


def now() -> int:
    """Unix seconds."""
    return int(time.time())


__all__ = ["EVENTS", "MAX_REPORT", "Event", "Report", "ReportError", "SQLStore",
           "TelemetryStore", "open_store", "parse_report"]
