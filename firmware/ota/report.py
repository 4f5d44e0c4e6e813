# ota/report.py: best-effort update telemetry: one small JSON POST to the fleet server.
# MIT license; Copyright (c) 2026 otakit contributors
"""Send the agent's queued update events to the fleet server (docs/fleet.md).

The agent queues (event, sequence, reason, ms, version) tuples in Agent._events (at most 8) and
calls flush() after a check that offers nothing and after every install. A trial boot's outcome,
left in NVS ("rpt") by ota.boot(), is added here and forgotten only once the server took it.

Invariants:
- Best effort: flush() never raises and never retries; every network wait is bounded by
  _TIMEOUT_MS and the report by _MAX_BODY bytes (oldest events dropped first).
- Privacy: the report names the device only by Config.device_id (by default ota.ident's
  pseudonym), never by its MAC, and carries no other identifier.
Allocates: the report dict and its JSON text (< 1 KB) and an HTTP client, only while it runs.
"""

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython

    def const(x):
        return x


_MAX_BODY = const(1024)
_TIMEOUT_MS = const(5000)  # a report waits at most this long per network operation


# The report's JSON bytes; drops the oldest events until it fits _MAX_BODY.
def body(cfg, installed, events):
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
        b = json.dumps({"v": 1, "id": cfg.device_id, "product": cfg.product,
                        "board": cfg.board, "channel": cfg.channel, "seq": installed,
                        "events": evs}).encode()
        if len(b) <= _MAX_BODY or len(events) <= 1:
            return b
        events = events[1:]


# POST data to url (plain http; https with the configured CA); returns the 2xx status, raises
# FetchError or OSError otherwise. Reads only the status line; no redirect is followed.
async def post(url, data, timeout_ms, ca):
    import asyncio

    from .errors import FetchError
    from .http import HTTPClient, parse_url

    tls, host, port, path = parse_url(url)
    ctx = HTTPClient(timeout_ms, ca)._tls_context() if tls else None

    async def go():
        r, w = await asyncio.open_connection(host, port, ssl=ctx)
        try:
            w.write(("POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: otakit\r\nConnection: close"
                     "\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     % (path, host, len(data))).encode())
            w.write(data)
            await w.drain()
            line = await r.readline()
        finally:
            w.close()
            await w.wait_closed()
        return int(line[9:12]) if line[:7] == b"HTTP/1." and line[9:12].isdigit() else 0

    status = await asyncio.wait_for_ms(go(), timeout_ms)
    if not 200 <= status < 300:
        raise FetchError("HTTP", "server answered %d" % status, status)
    return status


# Send the agent's queued events (and an unreported trial outcome). Never raises.
async def flush(agent):
    st = agent.state
    events, agent._events = agent._events, []
    try:
        rpt = st.get_blob("rpt")
        if rpt:
            p = rpt.decode().split(" ")
            events.insert(0, (p[0], int(p[1]), p[2] if len(p) > 2 else None, 0, None))
        if not events:
            return False
        cfg = agent.cfg
        from .ident import device_id

        device_id(cfg)
        await post(cfg.report_url or cfg.url + "/.otakit/events", body(cfg, st.get("seq"), events),
                   min(cfg.timeout_ms, _TIMEOUT_MS), cfg.ca)
        if rpt:
            st.erase("rpt")
            st.commit()
        return True
    except Exception:  # noqa: BLE001 - a report must never break an update
        return False
