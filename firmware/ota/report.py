# ota/report.py: best-effort update telemetry: one small JSON POST to the fleet server.
# MIT license; Copyright (c) 2026 otakit contributors
"""Send the agent's queued update events to the fleet server (docs/fleet.md).

Invariants:
- Best effort: send() never raises and never retries; every network wait is bounded by the
  configuration's timeout_ms and the report by _MAX_BODY bytes (oldest events dropped first).
- Privacy: the report names the device only by Config.device_id (pseudonymous by default), never
  by its MAC; it carries no other identifier.
Allocates: the report dict and its JSON text (< 1 KB); the HTTP client while it runs.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_BODY = const(1024)
_TIMEOUT_MS = const(5000)  # a report waits at most this long per network operation


# events: a list of (event, sequence, reason or None, ms, version or None), oldest first.
def _body(cfg, installed, events):
    import json

    while True:
        evs = []
        for e, seq, reason, ms, ver in events:
            d = {"e": e, "seq": seq, "ms": ms}
            if reason:
                d["reason"] = reason
            if ver:
                d["ver"] = ver
            evs.append(d)
        body = json.dumps({"v": 1, "id": cfg.device_id, "product": cfg.product,
                           "board": cfg.board, "channel": cfg.channel, "seq": installed,
                           "events": evs}).encode()
        if len(body) <= _MAX_BODY or len(events) <= 1:
            return body
        events = events[1:]


# POST the report; returns True when the server took it, False otherwise (never raises).
async def send(cfg, installed, events):
    try:
        from .http import HTTPClient

        body = _body(cfg, installed, events)
        await HTTPClient(min(cfg.timeout_ms, _TIMEOUT_MS), cfg.ca).post(cfg.report_url, body)
        return True
    except Exception:  # noqa: BLE001 - a report must never break an update
        return False
