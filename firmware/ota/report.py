# ota/report.py: best-effort update telemetry: one small JSON POST to the fleet server.
# MIT license; Copyright (c) 2026 otakit contributors
"""Send the agent's queued update events to the fleet server (docs/fleet.md).

The agent queues (event, sequence, reason, ms, version) tuples (at most 8) and passes them to
flush() after a check that offers nothing and after a failed install. A successful install's
events wait in NVS (State.keep_install) for the report after the reboot; they and the trial
boot's outcome, left by ota.boot() (State.report()), are added here and forgotten only once the
server took them.

Invariants:
- Best effort: flush() never raises and never retries; every network wait is bounded by
  _TIMEOUT_MS and the report by _MAX_BODY bytes (oldest events dropped first); the reply is
  read through ota.http's bounded line buffer (status and headers only).
- Privacy: the report names the device only by Config.device_id (by default ota.ident's
  pseudonym), never by its MAC, and carries no other identifier.
Allocates: the report dict and its JSON text (< 1 KB), only while it runs. The modules that
read the state (ota.stateops) are released before it connects: the POST is one of the agent's
peaks of RAM, as the payload's download is.
"""

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython

    def const(x):
        return x


from . import release

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


# Send the queued events (and an unreported trial outcome, State.report()) through an HTTP
# client from new_client() (given back with done_with). Returns whether the server took them;
# never raises.
async def flush(cfg, st, events, new_client, done_with):
    try:
        rpt = st.report()
        if rpt:
            events.insert(0, (rpt[0], rpt[1], rpt[2], 0, None))
        ins = st.install_events()  # the last install's, before its trial's outcome
        if ins:
            events = ins + events
        if not events:
            return False
        if cfg.device_id is None:  # the Agent fills it in when it is made
            from .ident import device_id

            device_id(cfg)
        data = body(cfg, st.installed(), events)
        events = None
        release()  # ota.stateops (State.report, installed) is not in the heap while it posts
        client = new_client()
        try:
            from .httpsmall import post

            await post(client, cfg.report_url or cfg.url + "/.otakit/events", data,
                       min(cfg.timeout_ms, _TIMEOUT_MS))
        finally:
            done_with(client)
        if rpt:
            st.forget_report()
        if ins is not None:  # also a record that was not one
            st.forget_install()
        return True
    except Exception:  # noqa: BLE001 - a report must never break an update
        return False
