"""The fleet dashboard's HTML pages (`otakit.fleet` serves them, docs/fleet.md).

Pages: the overview (`overview`: releases per channel, devices per version, the daily success
and failure chart, the update funnel, recent failures), the device search (`devices`), one
device's history (`device`) and the sign-in form (`login`).

Invariants:
- No script anywhere: every page is complete without JavaScript. The overview, search and device
  pages reload themselves (``<meta http-equiv="refresh">``, every `REFRESH` seconds); the chart is
  an inline SVG drawn here, with the same figures in a table beside it.
- Every value that came from telemetry (device ids, versions, reason codes, names) or from the
  request goes through `_e` (HTML-escaped): reports are unauthenticated.
- One layout for every width: a viewport meta tag, and below 640 px each table row becomes a
  card (``td::before`` shows its column name), so a 390 px phone never scrolls sideways.
- Every rate is shown with the distinct-device counts it was computed from.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any
from urllib.parse import quote

PREFIX = "/.otakit"
REFRESH = 60  # seconds between the pages' own reloads

CSS = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:16px 24px;color:#1b1f24;
background:#f6f8fa}
header{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;margin:0 0 8px}
h1{font-size:20px;margin:0} h2{font-size:16px;margin:24px 0 8px;overflow-wrap:anywhere}
h1 a{color:inherit;text-decoration:none}
header form{display:flex;gap:4px;margin:0} header .search{flex:1 1 220px;max-width:420px}
header .search input{flex:1;min-width:0}
input,button{font:inherit;padding:4px 8px}
table{border-collapse:collapse;background:#fff;max-width:100%}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;overflow-wrap:anywhere}
th{background:#eaeef2} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.flagged td{background:#ffebe9} .flag{color:#cf222e;font-weight:600}
.bar{display:inline-block;height:10px;background:#2da44e;vertical-align:middle;margin-right:6px}
.muted{color:#57606a} .id{font-family:ui-monospace,monospace} footer{margin:24px 0 0}
svg.chart{display:block;width:100%;max-width:720px;height:auto;background:#fff;
border:1px solid #d0d7de}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
.ok{background:#2da44e} .bad{background:#cf222e}
@media (max-width:640px){
body{padding:12px}
table,tbody,tr,td{display:block;width:100%} thead{display:none}
tr{border:1px solid #d0d7de;margin:0 0 8px;background:#fff}
td{border:0;border-top:1px solid #eaeef2;display:flex;justify-content:space-between;gap:12px}
td.n{text-align:right}
td::before{content:attr(data-label);font-weight:600;color:#57606a;flex:none;text-align:left}
}
"""


def _e(v: object) -> str:
    return html.escape(str(v))


def when(ts: int) -> str:
    """A Unix time as UTC text."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def day(n: int) -> str:
    """Day ``n`` since 1970-01-01 as a date."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=n)).isoformat()


def rate(part: int, whole: int) -> str:
    """A rate with the distinct-device counts it comes from: ``62% (5 of 8 devices)``."""
    pct = f"{100 * part / whole:.0f}%" if whole else "-"
    return f"{pct} ({part} of {whole} device{'' if whole == 1 else 's'})"


def device_href(device: str) -> str:
    return f"{PREFIX}/devices/{quote(device, safe='')}"


def _table(tid: str, head: list[str], rows: list[tuple[str, list[str]]]) -> str:
    out = [f'<table id="{tid}"><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for attrs, cells in rows:
        # each cell carries its column name, shown above it when the table is a card
        out.append(f"<tr{attrs}>" + "".join(
            c.replace("<td", f'<td data-label="{_e(h)}"', 1) for h, c in zip(head, cells,
                                                                              strict=True))
            + "</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{len(head)}" class="muted">none yet</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _td(v: object, num: bool = False) -> str:
    return f'<td class="n">{_e(v)}</td>' if num else f"<td>{_e(v)}</td>"


def _health(d: dict[str, Any]) -> str:
    return '<td class="flag">FLAGGED</td>' if d.get("flagged") else "<td>ok</td>"


def _release_attrs(d: dict[str, Any]) -> str:
    key = f"{d['product']}/{d['board']}/{d['channel']}/{d['seq']}"
    return f' data-release="{_e(key)}"' + (' class="flagged"' if d.get("flagged") else "")


def page(title: str, body: str, csrf: str | None = None, refresh: bool = True,
         query: str = "") -> str:
    """A whole page: ``body`` under the header (search form and sign-out button when ``csrf``
    is given: the page is for a signed-in admin)."""
    head = f'<h1><a href="{PREFIX}/dashboard">otakit fleet</a></h1>'
    if csrf is not None:
        head += (f'<form class="search" method="get" action="{PREFIX}/devices" role="search">'
                 f'<input id="q" name="q" value="{_e(query)}" placeholder="device id prefix" '
                 'aria-label="device id prefix" autocomplete="off" spellcheck="false">'
                 '<button id="search" type="submit">Search</button></form>'
                 f'<form method="post" action="{PREFIX}/logout">'
                 f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
                 '<button id="signout" type="submit">Sign out</button></form>')
    meta = f'<meta http-equiv="refresh" content="{REFRESH}">' if refresh else ""
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">' + meta +
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f"<header>{head}</header>{body}<footer class=\"muted\">otakit fleet dashboard"
            + (f' · <a href="{PREFIX}/api/summary">as JSON</a>' if csrf is not None else "")
            + "</footer></body></html>")


def chart(daily: list[dict[str, Any]]) -> str:
    """Per day, the devices that succeeded (green, from the base line) and failed (red, on
    top) as an inline SVG bar chart."""
    w, h, base, n = 720, 200, 170, max(len(daily), 1)
    top = max([d["succeeded"] + d["failed"] for d in daily] + [1])
    step = w / n
    out = [f'<svg class="chart" id="chart" viewBox="0 0 {w} {h}" role="img" '
           'xmlns="http://www.w3.org/2000/svg" aria-labelledby="chart-title">'
           '<title id="chart-title">devices that succeeded and failed per day</title>'
           f'<line x1="0" y1="{base}" x2="{w}" y2="{base}" stroke="#8c959f"/>'
           f'<text x="4" y="16" font-size="13" fill="#57606a">{top} devices</text>']
    for i, d in enumerate(daily):
        x, bw = i * step + step * 0.15, step * 0.7
        ok = (base - 24) * d["succeeded"] / top
        bad = (base - 24) * d["failed"] / top
        label = f'{day(d["day"])}: {d["succeeded"]} succeeded, {d["failed"]} failed'
        out.append(f'<g class="day" data-day="{_e(day(d["day"]))}"><title>{_e(label)}</title>')
        if ok:
            out.append(f'<rect class="ok" x="{x:.1f}" y="{base - ok:.1f}" width="{bw:.1f}" '
                       f'height="{ok:.1f}" fill="#2da44e"/>')
        if bad:
            out.append(f'<rect class="bad" x="{x:.1f}" y="{base - ok - bad:.1f}" '
                       f'width="{bw:.1f}" height="{bad:.1f}" fill="#cf222e"/>')
        if i % 2 == (n - 1) % 2:  # every other day, always the last one
            out.append(f'<text x="{x + bw / 2:.1f}" y="{base + 20}" font-size="13" '
                       f'text-anchor="middle" fill="#57606a">{_e(day(d["day"])[5:])}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def overview(s: dict[str, Any], csrf: str) -> str:
    """The dashboard page for an `otakit.fleet.summary`."""
    offered = {(f["product"], f["board"], f["channel"], f["seq"]): f["offered"]
               for f in s["funnel"]}
    withheld = s.get("withheld") or {}  # otakit.withhold: channels not offered now

    def health(c: dict[str, Any]) -> str:
        w = withheld.get(f"{c['product']}/{c['board']}/{c['channel']}")
        if w is None:
            return _health(c)
        return f'<td class="flag">WITHHELD (serving {_e(w.get("serve", "none"))})</td>'

    chans = [(_release_attrs(c), [
        _td(f"{c['product']}/{c['board']}"), _td(c["channel"]), _td(c["version"]),
        _td(c["seq"], True), _td(c["rollout"]), _td(f"{c['percent']}%", True),
        _td("security" if c["security"] else ""), health(c),
        _td(offered.get((c["product"], c["board"], c["channel"], c["seq"]), 0), True)])
        for c in s["channels"]]
    total = sum(v["devices"] for v in s["versions"])
    vers = [(f' data-version="{_e(v["version"])}"', [
        _td(f"{v['product']}/{v['board']}"), _td(v["version"]), _td(v["seq"], True),
        _td(v["devices"], True),
        f'<td><span class="bar" style="width:{160 * v["devices"] // (total or 1)}px"></span>'
        f'{_e(rate(v["devices"], total))}</td>'])
        for v in s["versions"]]
    fun = [(_release_attrs(f), [
        _td(f"{f['product']}/{f['board']}/{f['channel']}"), _td(f["version"]),
        *(_td(f[k], True) for k in ("offered", "downloaded", "installed", "confirmed",
                                    "rolled_back", "failed")),
        _td(f"{100 * f['failure_rate']:.0f}% ({f['failed_devices']} of {f['offered']} devices, "
            f"{f['failed_sources']} networks)", True), _health(f)]) for f in s["funnel"]]
    fails = [("", [_td(when(f["ts"])),
                   f'<td class="id"><a href="{_e(device_href(f["device"]))}">'
                   f'{_e(f["device"][:12])}</a></td>',
                   _td(f"{f['product']}/{f['board']}/{f['channel']}"), _td(f["seq"], True),
                   _td(f["event"]), _td(f["reason"] or "")]) for f in s["failures"]]
    daily = s.get("daily")
    if daily is None:
        days = '<p class="muted">this telemetry store keeps no daily figures</p>'
    else:
        rows = [(f' data-day="{_e(day(d["day"]))}"', [
            _td(day(d["day"])), _td(d["succeeded"], True), _td(d["failed"], True),
            _td(rate(d["succeeded"], d["devices"]), True),
            _td(rate(d["failed"], d["devices"]), True)])
            for d in reversed(daily) if d["devices"]]
        days = (chart(daily) + '<p class="legend muted"><span class="ok"></span>succeeded '
                '(confirmed)<span class="bad"></span>failed or rolled back</p>' +
                _table("daily", ["day (UTC)", "succeeded", "failed", "success rate",
                                 "failure rate"], rows))
    body = (
        f'<p class="muted" id="generated">generated {_e(when(s["generated"]))}, reloads every '
        f'{REFRESH} s; a release is flagged when {100 * s["threshold"]:.0f}% or more of the '
        f'devices offered it (at least {s["min_devices"]}) failed or rolled back, at least '
        f'{s["min_failed"]} devices from at least {s["min_sources"]} networks</p>'
        "<h2>Releases per channel</h2>" + _table("channels", [
            "product/board", "channel", "version", "sequence", "rollout", "percent", "type",
            "health", "devices offered"], chans) +
        "<h2>Devices per version</h2>" + _table("versions", [
            "product/board", "version", "sequence", "devices", "share"], vers) +
        "<h2>Updates per day</h2>" + days +
        "<h2>Update funnel per release</h2>" + _table("funnel", [
            "release", "version", "offered", "downloaded", "installed", "confirmed",
            "rolled back", "failed", "failure rate", "health"], fun) +
        "<h2>Recent failures</h2>" + _table("failures", [
            "time (UTC)", "device", "channel", "sequence", "event", "reason"], fails))
    return page("otakit fleet", body, csrf)


def _device_rows(found: list[dict[str, Any]], names: dict[tuple[str, str, int], str]
                 ) -> list[tuple[str, list[str]]]:
    return [(f' data-device="{_e(d["device"])}"', [
        f'<td class="id"><a id="device-{_e(d["device"])}" href="{_e(device_href(d["device"]))}">'
        f'{_e(d["device"])}</a></td>',
        _td(f"{d['product']}/{d['board']}"), _td(d["channel"]),
        _td(names.get((d["product"], d["board"], d["seq"]), f"seq {d['seq']}")),
        _td(when(d["last_seen"]))]) for d in found]


def devices(query: str, found: list[dict[str, Any]] | None,
            names: dict[tuple[str, str, int], str], csrf: str, limit: int,
            error: str = "") -> str:
    """The device search page: the devices whose id starts with ``query`` (all when empty),
    ``found`` None: the store cannot search."""
    if error:
        body = f'<p class="flag" id="error">{_e(error)}</p>'
    elif found is None:
        body = '<p class="muted" id="error">this telemetry store has no device search</p>'
    else:
        what = f"devices whose id starts with <q>{_e(query)}</q>" if query else \
            "devices, most recently seen first"
        more = f" (the first {limit})" if len(found) >= limit else ""
        body = (f'<h2>{len(found)} {what}{more}</h2>' +
                _table("devices", ["device", "product/board", "channel", "installed",
                                   "last seen (UTC)"], _device_rows(found, names)))
    return page("otakit devices", body, csrf, query=query)


def device(dev: str, info: dict[str, Any] | None, history: list[dict[str, Any]],
           names: dict[tuple[str, str, int], str], csrf: str) -> str:
    """One device's page: its last report and its events over time, newest first."""
    parts = [f'<h2>Device <span class="id" id="device">{_e(dev)}</span></h2>']
    if info is not None:
        parts.append(_table("device-info", ["product/board", "channel", "installed",
                                            "last seen (UTC)"],
                            [(r[0], r[1][1:]) for r in _device_rows([info], names)]))
    rows = [(' class="flagged"' if h["event"] in ("failed", "rolled_back") else "", [
        _td(when(h["ts"])), _td(f"{h['product']}/{h['board']}/{h['channel']}"),
        _td(h["seq"], True), _td(h["version"] or names.get(
            (h["product"], h["board"], h["seq"]), "")),
        _td(h["event"]), _td(h["reason"] or ""), _td(h["ms"], True)]) for h in history]
    parts.append("<h2>History</h2>" + _table("history", [
        "time (UTC)", "release", "sequence", "version", "event", "reason", "ms"], rows))
    return page(f"otakit device {dev}", "".join(parts), csrf)


def login(error: str = "") -> str:
    """The sign-in form (the admin token)."""
    err = f'<p class="flag" id="error">{_e(error)}</p>' if error else ""
    return page("otakit login", err + (
        f'<form method="post" action="{PREFIX}/login"><label>Admin token '
        '<input id="token" name="token" type="password" autocomplete="off" required></label> '
        '<button id="login" type="submit">Sign in</button></form>'), refresh=False)


__all__ = ["CSS", "REFRESH", "chart", "device", "devices", "login", "overview", "page", "rate"]
