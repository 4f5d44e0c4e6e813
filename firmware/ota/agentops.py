# ota/agentops.py: the second half of ota.agent: what the Agent does outside an install.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Called as methods of an ota.agent.Agent (agent.check() runs check(agent) here, through
# Agent.__getattr__), loaded on first use and dropped by ota.release(), so that none of this
# code is in the heap while a payload streams in (the agent's peak of RAM). Like ota.agent, and
# unlike the phases (ota.check, ota.download, ota.report), these functions write the agent's
# status and caches: they are the Agent's own methods, kept apart only for RAM.
import time

from . import release
from .errors import OTAError
from .slot import Slot


class Offer:
    # A verified manifest the device may install, plus the decisions taken about it:
    #   manifest, version, sequence, size, security (None or {"severity", "risk"})
    # It has no methods on purpose (as ota.manifest.Manifest): an offer lives through the
    # install, and then keeps only this small class alive, not this module's code.
    pass


# --- check (ota.check) ------------------------------------------------------------------------
async def check(a):
    # Returns an Offer, or None (up to date, held back by a staged rollout, or refused: see
    # status()). Reports the outcome (ota.report) unless an offer awaits install().
    # The phase's code (ota.check and what it loads) is in the heap only while it runs.
    from .check import run
    t0 = time.ticks_ms()
    a._set("checking")
    a._date = None
    offer = None

    async def fetch(url, etag):
        return await _fetch(a, url, etag)

    try:
        v, etag, a._kr_etag = await run(
            a.cfg, a.state, fetch, a.buf, lambda: now(a), Slot(a.esp32).size,
            a._kr_etag, a._etag, a._verdict)
        a._etag = etag
        # a 304 repeats it (not its error) once ota.check has re-checked its expires
        a._verdict = v[:4] + (None, v[5]) if etag else None
        state, reason, detail, m, err, _ = v
        if err is not None:
            a._fail(err)
        else:
            a._set(state, reason, detail)
            if state == "offered":
                offer = Offer()
                offer.manifest = m
                offer.version = m.version  # pyright: ignore[reportOptionalMemberAccess]
                offer.sequence = m.sequence  # pyright: ignore[reportOptionalMemberAccess]
                offer.size = m.size  # pyright: ignore[reportOptionalMemberAccess]
                offer.security = m.security  # pyright: ignore[reportOptionalMemberAccess]
    except OTAError as e:  # not the manifest's fault: the cached verdict stands
        a._fail(e)
    finally:
        run = fetch = None
        release()
    if offer:
        a._note("offered", offer.sequence, None, t0, offer.version)
        return offer
    st = a._status
    failed = st["state"] == "failed"
    a._note("failed" if failed else "checked", 0, st["reason" if failed else "state"], t0)
    await a._report()
    return None


async def _fetch(a, url, etag):
    # A small document (manifest, keyring) into the agent's buffer: (status, etag, length).
    from .httpsmall import get_small
    client = a._client()
    try:
        r = await get_small(client, url, a.buf, etag)
        if url.startswith("https://"):  # only a TLS-verified server's Date is believed
            from .httpdate import http_time
            a._date = http_time(getattr(client, "date", None))
        return r
    finally:
        a._done_with(client)


# --- time ---------------------------------------------------------------------------------------
def now(a):
    # Unix seconds if the device knows the time, else None: its clock (RTC, NTP) once set, or
    # the Date of the last response of a TLS-verified server in this check.
    t = a.clock()
    if t > 1704067200:  # 2024-01-01: before this the clock is not set
        return t
    t = a._date
    return t if t is not None and t > 1704067200 else None


# --- status ---------------------------------------------------------------------------------------
def status(a):
    s = dict(a._status)
    a.state.status_fields(s, a.cfg.support_end, a.cfg.channel)  # what the saved records say
    if s["state"] not in ("checking", "downloading", "verifying"):
        release()  # not inside a phase (e.g. on_progress): drop this and ota.stateops again
    return s


def device_info(a):
    # What this device is, as plain text for a local interface (ota.info).
    from .info import device_info
    try:
        return device_info(a.esp32, a.cfg, status(a))
    finally:
        release()
