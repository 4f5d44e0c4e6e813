"""The fleet side of `otakit serve`: telemetry ingest and the admin dashboard (docs/fleet.md).

Routes (all under ``/.otakit/``, a path no repository file can have, since dot-segments are
never served):

- ``POST /.otakit/events``: a device's report (`otakit.telemetry.parse_report`); 204, or 400 /
  413 / 415 for a refused one. Its access-log line carries no peer address.
- ``GET|POST /.otakit/login``: the admin token form; sets the session cookie.
- ``GET /.otakit/dashboard``: the dashboard (HTML, no script), admin only.
- ``GET /.otakit/api/summary``: the same figures as JSON, admin only.

Admin access is the server's one admin token (`otakit serve --token-file`, `otakit.guard`):
``Authorization: Bearer <token>``, or the session cookie the login form sets for it.

Invariants: without an admin token the admin pages are 404; without a store the ingest is 404
and the dashboard shows only the repository. The ingest is bounded (`MAX_REPORT` bytes, checked
before parsing) and rate-limited per client with every other request (`otakit.guard`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from otakit import guard
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
    return {"generated": int(time.time()), "threshold": fleet.threshold,
            "min_devices": fleet.min_devices, "min_failed": fleet.min_failed,
            "min_sources": fleet.min_sources, "channels": chans, "versions": per_version,
            "funnel": funnel, "failures": failures,
            "withheld": withheld_now(root)}  # otakit.withhold: channels not offered now


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#f6f8fa}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse;background:#fff;min-width:640px}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left}
th{background:#eaeef2} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.flagged td{background:#ffebe9} .flag{color:#cf222e;font-weight:600}
.bar{display:inline-block;height:10px;background:#2da44e;vertical-align:middle}
.bar.bad{background:#cf222e} .muted{color:#57606a}
"""


def _e(v: object) -> str:
    return html.escape(str(v))


def _time(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(tid: str, head: list[str], rows: list[tuple[str, list[str]]]) -> str:
    out = [f'<table id="{tid}"><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for attrs, cells in rows:
        out.append(f"<tr{attrs}>" + "".join(cells) + "</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{len(head)}" class="muted">none yet</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _td(v: object, num: bool = False) -> str:
    return f'<td class="n">{_e(v)}</td>' if num else f"<td>{_e(v)}</td>"


def _release_attrs(d: dict[str, Any]) -> str:
    key = f"{d['product']}/{d['board']}/{d['channel']}/{d['seq']}"
    return f' data-release="{_e(key)}"' + (' class="flagged"' if d.get("flagged") else "")


def render(s: dict[str, Any]) -> str:
    """The dashboard page for a `summary`."""
    chans = [(_release_attrs(c), [
        _td(f"{c['product']}/{c['board']}"), _td(c["channel"]), _td(c["version"]),
        _td(c["seq"], True), _td(c["rollout"]), _td(f"{c['percent']}%", True),
        _td("security" if c["security"] else ""),
        '<td class="flag">FLAGGED</td>' if c["flagged"] else "<td>ok</td>"])
        for c in s["channels"]]
    total = sum(v["devices"] for v in s["versions"]) or 1
    vers = [(f' data-version="{_e(v["version"])}"', [
        _td(f"{v['product']}/{v['board']}"), _td(v["version"]), _td(v["seq"], True),
        _td(v["devices"], True),
        f'<td><span class="bar" style="width:{200 * v["devices"] // total}px"></span></td>'])
        for v in s["versions"]]
    fun = [(_release_attrs(f), [
        _td(f"{f['product']}/{f['board']}/{f['channel']}"), _td(f["version"]),
        *(_td(f[k], True) for k in ("offered", "downloaded", "installed", "confirmed",
                                    "rolled_back", "failed")),
        _td(f"{100 * f['failure_rate']:.0f}% ({f['failed_devices']} of {f['offered']} devices, "
            f"{f['failed_sources']} networks)", True),
        '<td class="flag">FLAGGED</td>' if f["flagged"] else "<td>ok</td>"]) for f in s["funnel"]]
    fails = [("", [_td(_time(f["ts"])), _td(f["device"][:12]),
                   _td(f"{f['product']}/{f['board']}/{f['channel']}"), _td(f["seq"], True),
                   _td(f["event"]), _td(f["reason"] or "")]) for f in s["failures"]]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>otakit fleet</title><style>" + _CSS + "</style></head><body>"
        "<h1>otakit fleet</h1>"
        f'<p class="muted">generated {_e(_time(s["generated"]))}; a release is flagged when '
        f'{100 * s["threshold"]:.0f}% or more of the devices offered it (at least '
        f'{s["min_devices"]}) failed or rolled back, at least {s["min_failed"]} devices from at '
        f'least {s["min_sources"]} networks</p>'
        "<h2>Releases per channel</h2>" + _table("channels", [
            "product/board", "channel", "version", "sequence", "rollout", "percent", "type",
            "health"], chans) +
        "<h2>Devices per version</h2>" + _table("versions", [
            "product/board", "version", "sequence", "devices", ""], vers) +
        "<h2>Update funnel per release</h2>" + _table("funnel", [
            "release", "version", "offered", "downloaded", "installed", "confirmed",
            "rolled back", "failed", "failure rate", "health"], fun) +
        "<h2>Recent failures</h2>" + _table("failures", [
            "time (UTC)", "device", "channel", "sequence", "event", "reason"], fails) +
        "</body></html>")


_LOGIN = """<!doctype html><html lang=en><head><meta charset=utf-8><title>otakit login</title>
<style>{css}</style></head><body><h1>otakit fleet</h1>{error}
<form method="post" action="{prefix}/login"><label>Admin token
<input id="token" name="token" type="password" autocomplete="off" required></label>
<button id="login" type="submit">Sign in</button></form></body></html>"""

_FLEET = web.AppKey("fleet", Fleet)
_REPO = web.AppKey("fleet_root", Path)
_TOKEN = web.AppKey("fleet_admin_token", str)


def _login_page(error: str = "", status: int = 200) -> web.Response:
    err = f'<p class="flag" id="error">{_e(error)}</p>' if error else ""
    return web.Response(text=_LOGIN.format(css=_CSS, error=err, prefix=PREFIX),
                        content_type="text/html", status=status)


def _token(request: web.Request) -> str:
    token = request.app.get(_TOKEN)
    if not token:
        raise web.HTTPNotFound()
    return token


def _admin(request: web.Request) -> Fleet:
    fleet = request.app[_FLEET]
    if not guard.is_admin(request, _token(request), cookie=True):
        if request.path.endswith("/dashboard"):
            raise web.HTTPSeeOther(PREFIX + "/login")
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
    return fleet


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


async def _dashboard(request: web.Request) -> web.Response:
    fleet = _admin(request)
    return web.Response(text=render(summary(request.app[_REPO], fleet)),
                        content_type="text/html",
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": "default-src 'none'; "
                                 "style-src 'unsafe-inline'; form-action 'self'"})


async def _api(request: web.Request) -> web.Response:
    fleet = _admin(request)
    return web.json_response(summary(request.app[_REPO], fleet),
                             headers={"Cache-Control": "no-store"})


OPEN_POSTS = (PREFIX + "/events", PREFIX + "/login")  # writes that need no token (guard)


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
    app.router.add_get(PREFIX + "/dashboard", _dashboard)
    app.router.add_get(PREFIX + "/api/summary", _api)


__all__ = ["OPEN_POSTS", "PREFIX", "Fleet", "add_routes", "channels", "render", "summary"]
