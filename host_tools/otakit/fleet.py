"""The fleet side of `otakit serve`: telemetry ingest and the admin dashboard (docs/fleet.md).

Routes (all under ``/.otakit/``, a path no repository file can have, since dot-segments are
never served):

- ``POST /.otakit/events``: a device's report (`otakit.telemetry.parse_report`); 204, or 400 /
  413 / 415 for a refused one. Its access-log line carries no peer address.
- ``GET|POST /.otakit/login``: the admin token form; sets the session cookie.
- ``POST /.otakit/logout``: sign-out (clears the session cookie); needs the page's ``csrf``
  field (`csrf_value`), so another site cannot post it.
- ``GET /.otakit/dashboard``: the dashboard (HTML, no script, `otakit.dashboard`), admin only.
- ``GET /.otakit/devices?q=PREFIX``: device search by id prefix, admin only.
- ``GET /.otakit/devices/{id}``: one device's reports over time, admin only.
- ``GET /.otakit/api/summary``: the same figures as the dashboard as JSON, admin only.

Admin access is the server's one admin token (`otakit serve --token-file`, `otakit.guard`):
``Authorization: Bearer <token>``, or the session cookie the login form sets for it.

Invariants: on a server without an admin token the admin pages are 404; otherwise a request
without the token or the session is sent to the login form (the API: 401). Without a store the
ingest and the device pages are 404 and the dashboard shows only the repository. The ingest is
bounded (`MAX_REPORT` bytes, checked before parsing) and rate-limited per client with every other
request (`otakit.guard`). The pages (`otakit.dashboard`) carry no script and are sent with a
`Content-Security-Policy` that allows none.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from otakit import dashboard, guard
from otakit.errors import ManifestError, OtakitError
from otakit.manifest import parse_unverified
from otakit.repo import Repository
from otakit.telemetry import MAX_REPORT, TelemetryStore, parse_report
from otakit.withhold import withheld_now

PREFIX = "/.otakit"


@dataclass
class Fleet:
    """Telemetry and dashboard settings for `otakit.server.make_app`.

    A release is **flagged** when all of these hold (reports are unauthenticated, so one client
    must not be able to raise the alarm, docs/fleet.md):

    - at least ``min_devices`` distinct devices reported it offered;
    - at least ``min_failed`` distinct devices reported it failed or rolled back;
    - those failed devices ÷ the devices offered it ≥ ``threshold``;
    - the failure reports came from at least ``min_sources`` distinct source networks (the
      client address's /24 for IPv4, /48 for IPv6), so forged device ids from one client or
      one network count once.

    Attributes:
        store: where reports go (None: no ingest).
        threshold: the share of offered devices that failed or rolled back.
        min_devices: devices offered the release.
        min_failed: devices that failed or rolled back.
        min_sources: source networks the failures came from.
    """

    store: TelemetryStore | None = None
    threshold: float = 0.2
    min_devices: int = 3
    min_failed: int = 3
    min_sources: int = 2
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def source(self, address: str | None) -> str:
        """The pseudonymous tag of ``address``'s network: a keyed hash (the key lives only in
        this process) of its /24 (IPv4) or /48 (IPv6), so equal networks compare equal and the
        address itself is never stored."""
        try:
            ip = ipaddress.ip_address(address or "")
            net = ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False)
        except ValueError:
            net = "unknown"
        return hmac.new(self._key, str(net).encode(), hashlib.sha256).hexdigest()[:16]


def channels(root: Path) -> list[dict[str, Any]]:
    """The current release of every channel in the repository."""
    out = []
    repo = Repository(root)
    for path in repo.manifests():
        try:
            b = parse_unverified(path.read_bytes()).body
        except (ManifestError, OSError):
            continue
        r = b.rollout
        out.append({"product": b.product, "board": b.board, "channel": b.channel,
                    "version": b.version, "seq": b.sequence, "created": b.created,
                    "security": b.security is not None,
                    "rollout": "all" if r is None else r["state"],
                    "percent": 100 if r is None else r["percent"]})
    return out


def summary(root: Path, fleet: Fleet) -> dict[str, Any]:
    """Everything the dashboard shows, as plain data."""
    chans = channels(root)
    store = fleet.store
    versions = {(c["product"], c["board"], c["seq"]): c["version"] for c in chans}
    funnel: list[dict[str, Any]] = []
    per_version: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    if store is not None:
        versions = {**store.versions(), **versions}
        funnel = store.funnel()
        per_version = [{"product": p, "board": b, "seq": s, "devices": n,
                        "version": versions.get((p, b, s), "-" if s == 0 else f"seq {s}")}
                       for p, b, s, n in store.device_versions()]
        failures = store.recent_failures()
    daily = getattr(store, "daily", None)
    flagged = set()
    for f in funnel:
        f["version"] = versions.get((f["product"], f["board"], f["seq"]), f"seq {f['seq']}")
        bad = f.setdefault("failed_devices", f["failed"] + f["rolled_back"])
        f.setdefault("failed_sources", bad)
        f["failure_rate"] = round(bad / f["offered"], 3) if f["offered"] else 0.0
        f["flagged"] = (f["offered"] >= fleet.min_devices and bad >= fleet.min_failed
                        and f["failure_rate"] >= fleet.threshold
                        and f["failed_sources"] >= fleet.min_sources)
        if f["flagged"]:
            flagged.add((f["product"], f["board"], f["channel"], f["seq"]))
    for c in chans:
        c["flagged"] = (c["product"], c["board"], c["channel"], c["seq"]) in flagged
    now = int(time.time())
    return {"generated": now, "threshold": fleet.threshold,
            "min_devices": fleet.min_devices, "min_failed": fleet.min_failed,
            "min_sources": fleet.min_sources, "channels": chans, "versions": per_version,
            "funnel": funnel, "failures": failures,
            "withheld": withheld_now(root),  # otakit.withhold: channels not offered now
            "daily": daily(now) if daily is not None else None}


def version_names(root: Path, store: TelemetryStore | None) -> dict[tuple[str, str, int], str]:
    """(product, board, seq) -> version: the repository's names over the reported ones."""
    names = store.versions() if store is not None else {}
    return {**names, **{(c["product"], c["board"], c["seq"]): c["version"]
                        for c in channels(root)}}


def render(s: dict[str, Any], csrf: str = "") -> str:
    """The dashboard page for a `summary` (`otakit.dashboard.overview`)."""
    return dashboard.overview(s, csrf)


_FLEET = web.AppKey("fleet", Fleet)
_REPO = web.AppKey("fleet_root", Path)
_TOKEN = web.AppKey("fleet_admin_token", str)


_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}
_DEVICE_RE = re.compile(r"[A-Za-z0-9._-]{0,64}")  # a prefix of a device id (telemetry's)
SEARCH_LIMIT = 50
HISTORY_LIMIT = 200


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, content_type="text/html", status=status, headers=_HEADERS)


def _login_page(error: str = "", status: int = 200) -> web.Response:
    return _html(dashboard.login(error), status)


def csrf_value(token: str) -> str:
    """The sign-out form's ``csrf`` field: an HMAC of the session, so only a page the server
    sent to a signed-in admin has it."""
    return hmac.new(guard.session_value(token).encode(), b"otakit-sign-out-v1",
                    hashlib.sha256).hexdigest()


def _token(request: web.Request) -> str:
    token = request.app.get(_TOKEN)
    if not token:
        raise web.HTTPNotFound()
    return token


def _admin(request: web.Request, page: bool = True) -> tuple[Fleet, str]:
    """The fleet settings and the sign-out form's csrf value for an admin request; otherwise
    the login form (``page``) or 401."""
    fleet = request.app[_FLEET]
    token = _token(request)
    if not guard.is_admin(request, token, cookie=True):
        if page:
            raise web.HTTPSeeOther(PREFIX + "/login")
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
    return fleet, csrf_value(token)


async def _events(request: web.Request) -> web.Response:
    fleet = request.app[_FLEET]
    if fleet.store is None:
        raise web.HTTPNotFound()
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType()
    if (request.content_length or 0) > MAX_REPORT:
        raise web.HTTPRequestEntityTooLarge(MAX_REPORT, request.content_length or 0)
    data = await request.content.read(MAX_REPORT + 1)
    try:
        report = parse_report(data)
    except OtakitError as e:
        raise web.HTTPBadRequest(text=f"{e.reason}: {e}") from e
    fleet.store.add(report, int(time.time()), fleet.source(request.remote))
    return web.Response(status=204)


async def _login(request: web.Request) -> web.Response:
    token = _token(request)
    if request.method == "GET":
        return _login_page()
    form = await request.post()
    given = str(form.get("token", ""))[:256]
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _login_page("wrong admin token", 403)
    resp = web.HTTPSeeOther(PREFIX + "/dashboard")
    resp.set_cookie(guard.SESSION_COOKIE, guard.session_value(token), path=PREFIX + "/",
                    httponly=True, samesite="Strict", secure=request.secure)
    raise resp


async def _logout(request: web.Request) -> web.Response:
    token = _token(request)
    resp = web.HTTPSeeOther(PREFIX + "/login")
    if guard.is_admin(request, token, cookie=True):
        form = await request.post()
        given = str(form.get("csrf", ""))[:128]
        if not hmac.compare_digest(given.encode(), csrf_value(token).encode()):
            return _html(dashboard.page("otakit sign-out", '<p class="flag" id="error">sign-out '
                                        "refused: the form is not this server's</p>",
                                        refresh=False), 403)
    resp.del_cookie(guard.SESSION_COOKIE, path=PREFIX + "/")
    raise resp


async def _dashboard(request: web.Request) -> web.Response:
    fleet, csrf = _admin(request)
    return _html(render(summary(request.app[_REPO], fleet), csrf))


async def _devices(request: web.Request) -> web.Response:
    fleet, csrf = _admin(request)
    query = request.query.get("q", "").strip()
    find = getattr(fleet.store, "find_devices", None)
    if not _DEVICE_RE.fullmatch(query):
        return _html(dashboard.devices(query[:80], None, {}, csrf, SEARCH_LIMIT,
                                       "not a device id prefix: up to 64 of A-Z a-z 0-9 . _ -"),
                     400)
    found = None if find is None else find(query, SEARCH_LIMIT)
    names = version_names(request.app[_REPO], fleet.store)
    return _html(dashboard.devices(query, found, names, csrf, SEARCH_LIMIT))


async def _device(request: web.Request) -> web.Response:
    fleet, csrf = _admin(request)
    dev = request.match_info["device"]
    store = fleet.store
    if store is None or not hasattr(store, "device_history") or not _DEVICE_RE.fullmatch(dev):
        raise web.HTTPNotFound()
    info = store.device(dev)  # type: ignore[attr-defined]
    history = store.device_history(dev, HISTORY_LIMIT)  # type: ignore[attr-defined]
    if info is None and not history:
        return _html(dashboard.page("otakit device", '<p class="flag" id="error">no reports '
                                    "from this device</p>", csrf), 404)
    return _html(dashboard.device(dev, info, history,
                                  version_names(request.app[_REPO], store), csrf))


async def _api(request: web.Request) -> web.Response:
    fleet, _ = _admin(request, page=False)
    return web.json_response(summary(request.app[_REPO], fleet),
                             headers={"Cache-Control": "no-store"})


# writes that need no bearer token (guard): device reports, the login form, and sign-out (which
# checks the session and its csrf field itself)
OPEN_POSTS = (PREFIX + "/events", PREFIX + "/login", PREFIX + "/logout")


def add_routes(app: web.Application, root: Path, fleet: Fleet,
               admin_token: str | None = None) -> None:
    """Register the fleet routes (before the repository's catch-all route); the admin pages
    need ``admin_token`` (None: they are 404)."""
    app[_FLEET] = fleet
    app[_REPO] = root
    if admin_token:
        app[_TOKEN] = admin_token
    app.router.add_post(PREFIX + "/events", _events)
    app.router.add_get(PREFIX + "/login", _login)
    app.router.add_post(PREFIX + "/login", _login)
    app.router.add_post(PREFIX + "/logout", _logout)
    app.router.add_get(PREFIX + "/dashboard", _dashboard)
    app.router.add_get(PREFIX + "/devices", _devices)
    app.router.add_get(PREFIX + "/devices/{device}", _device)
    app.router.add_get(PREFIX + "/api/summary", _api)


__all__ = ["OPEN_POSTS", "PREFIX", "Fleet", "add_routes", "channels", "csrf_value", "render",
           "summary", "version_names"]
