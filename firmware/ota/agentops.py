# ota/agentops.py: the second half of ota.agent: what the Agent does outside an install.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Called as methods of an ota.agent.Agent (agent.check() runs check(agent) here, through
# Agent.__getattr__), loaded on first use and dropped by ota.release(), so that none of this
# code is in the heap while a payload streams in (the agent's peak of RAM); status() and
# device_info() and the failure path are in ota.info, so that this module is small while a
# signature is checked.
# Like ota.agent, and unlike the phases (ota.check, ota.download, ota.report), these functions
# write the agent's status and caches: they are the Agent's own methods, kept apart for RAM.
import time

from . import release
from .errors import FetchError, OTAError
from .slot import Slot


class Offer:
    # A verified manifest the device may install, plus the decisions taken about it:
    #   manifest, version, sequence, size, security (None or {"severity", "risk"})
    # It has no methods on purpose (as ota.manifest.Manifest): an offer lives through the
    # install, and then keeps only this small class alive, not this module's code.
    pass


# --- check (ota.check) ------------------------------------------------------------------------
def check(a):
    # A coroutine: `await agent.check()` returns an Offer, or None (up to date, held back by a
    # staged rollout, or refused: see status()), and reports the outcome (ota.report) unless an
    # offer awaits install(). Agent._checked awaits _check and reports, so that neither this
    # module's code nor its frames are in the heap while the report is sent.
    return a._checked(_check(a))


async def _check(a):
    # The phase's code (ota.check and what it loads) is in the heap only while it runs.
    from .check import run
    t0 = time.ticks_ms()
    a._set("checking")
    a._date = None
    offer = None
    try:
        v, etag, a._kr_etag = await run(
            a.cfg, a.state, lambda url, etag: _fetch(a, url, etag), a.buf, lambda: now(a), Slot(a.esp32).size,
            a._kr_etag, a._etag, a._verdict)
        a._etag = etag
        # a 304 repeats it (not its error) once ota.check has re-checked its expires
        a._verdict = v[:4] + (None, v[5]) if etag else None
        state, reason, detail, m, err, _ = v
        if err is not None:
            from .info import fail
            fail(a, err)
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
        from .info import fail
        fail(a, e)
    except MemoryError as e:  # the heap ran out: NO_MEMORY, the app goes on (ota.info.fail)
        run = None
        release()
        from .info import fail
        fail(a, e, "the check")
    finally:
        run = None  # ota.check's code goes with the phase, not with this frame
        release()
    if offer:
        a._note("offered", offer.sequence, None, t0, offer.version)
        return offer
    st = a._status
    failed = st["state"] == "failed"
    a._note("failed" if failed else "checked", 0, st["reason" if failed else "state"], t0)
    return None


async def _fetch(a, url, etag):
    # A small document (manifest, keyring) into the agent's buffer: (status, etag, length), with
    # etag given only while a verified copy of the document is cached. A 304 to a request
    # without If-None-Match is never fresh: the document is asked for once more, and a second
    # 304 is BAD_RESPONSE. A 304 to a request with one is returned for the caller to re-check
    # what it cached (its expiry). The one rule for a 304, for the keyring and the manifest.
    for _ in range(2):
        try:
            r = await _get(a, url, etag)
        except FetchError as e:
            if etag or e.status != 304:
                raise
            r = (304, None, 0)  # the HTTP client refuses an unasked-for 304
        if etag or r[0] != 304:
            return r
    raise FetchError("BAD_RESPONSE", "304 Not Modified for a document this device does not "
                     "have", 304)


async def _get(a, url, etag):
    client = a._client()  # first, right after its collection: its line buffer goes low
    try:
        from .httpsmall import get_small
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


# --- install from a file (ota.bundle) -----------------------------------------------------------
def install_file(a, path):
    # A coroutine: `await agent.install_file(path)` checks and installs the signed bundle file at
    # path as a network release is checked and installed (docs/agent.md); True: reboot to try it.
    # Returned, not awaited here, so that this module is not on the stack while it runs.
    from .bundle import install
    return install(a, path)


# --- the update loop (ota.updater) --------------------------------------------------------------
def run(a, policy=None, **kw):
    # A coroutine: `await agent.run(policy, ...)` is the automatic update loop under the user's
    # policy (ota.updater.run, docs/agent.md): checks with jitter, the one backoff for network
    # failures (Policy.after), installs when the settings allow, restarts at a safe moment with
    # notice. Returned, not awaited here, so that this module is not on the stack while it runs.
    from .updater import run as loop
    return loop(a, policy, **kw)
