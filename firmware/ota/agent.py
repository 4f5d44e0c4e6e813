# ota/agent.py: the update agent: check -> verify -> stream -> read back -> set_boot.
# MIT license; Copyright (c) 2026 otakit contributors
#
# One object owns the flow; trusted state (floor, revision, keyring) only moves forward, and so
# does the installed sequence except through a signed revert (ota.revert). The agent never
# raises into the app for network or data errors: every refusal is a reason code plus a
# message, kept in status(). It owns one 4 KB buffer for its whole life: the manifest is read
# into it, then every payload block passes through it, so memory does not grow with the image.
#
# RAM: each phase imports what it needs and releases it afterwards (check: ota.check, which
# loads ota.trusted, ota.httpsmall, ota.manifest and ota.crypto in turn; install: ota.download
# and ota.http, or ota.revert for a signed revert, then ota.finish to check the slot and switch
# boot to it), so the code of the phases is never in the heap at once when the agent is loaded
# as .mpy. Frozen into firmware, its bytecode costs no heap (its function and class objects
# do). This module stays loaded (ota.RESIDENT), so it holds only what runs while a payload
# streams in (the peak): install() and what it calls. The Agent's other methods are found
# through Agent.__getattr__ and released with the phase that used them: check(), now(),
# install_file() (a bundle file, ota.bundle), run() (the update loop, ota.updater) in
# ota.agentops, status(), device_info() and the failure path in ota.info; the synchronous
# wrappers (check_sync(), install_sync(offer), update_sync(), install_file_sync(path)) are made
# there too. The constructor's body is ota.make's, loaded only while an Agent is made.
import time

from . import release
from .errors import FlashError, ManifestError, OTAError
from .slot import Slot
from .state import State

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_MAX_EVENTS = const(8)  # telemetry events kept for the next report (oldest dropped)
_UPDATE = const(2)  # Agent._install's report for update(): check, then install (and report)


class Agent:
    # Its attributes are set by ota.make.agent (annotations for the type checker only: they
    # compile to nothing).
    _status: dict
    clock = time.time  # the device clock (RTC, set by NTP); an app or a test may set its own

    def __init__(self, *args, **kw):
        # (config, esp32=None, http=None, state=None): ota.make.agent, docs/agent.md
        from .make import agent
        agent(self, *args, **kw)
        release()

    def __getattr__(self, name):
        # check(), now(), install_file(), run() (ota.agentops), status(), device_info()
        # (ota.info): a function of that module, bound to self; NAME_sync() (check_sync(),
        # install_sync(offer), update_sync(), install_file_sync(path)): asyncio.run() of the
        # coroutine NAME() makes.
        if name[0] == "_":
            raise AttributeError(name)
        if name[-5:] == "_sync":
            import asyncio
            g = getattr(self, name[:-5])
            return lambda *a: asyncio.run(g(*a))
        if name in ("status", "device_info"):
            from . import info as m
        else:
            from . import agentops as m
        f = getattr(m, name)
        return lambda *a, **kw: f(self, *a, **kw)

    def _set(self, state, reason=None, detail=""):
        self._status["state"] = state
        self._status["reason"] = reason
        self._status["detail"] = detail

    def _client(self):
        if self.http is not None:
            return self.http
        import gc
        gc.collect()  # before the phase's code and buffers are allocated
        from .http import HTTPClient
        return HTTPClient(self.cfg.timeout_ms, self.cfg.ca)

    def _done_with(self, client):
        if client is not self.http:
            release()

    # --- install ---------------------------------------------------------------------------
    def install(self, offer):
        # A coroutine: `await agent.install(offer)` streams, verifies, set_boot()s; True when a
        # reboot is needed to try it. A failure is reported (ota.report) before it returns. A
        # success is not: its events wait in NVS (State.keep_install) for the first report after
        # the reboot, with the trial's outcome, so an update costs one connection less and its
        # events outlive the reboot that follows it. (Returned, not awaited here: one coroutine
        # frame less while the payload streams in.)
        return self._install(offer, 1)

    async def _install(self, offer, report=0):
        # install() (report 1: a failure is reported), update() (report _UPDATE: check first,
        # then as install()), or with report 0 the install of a bundle file (ota.bundle), whose
        # failure is not reported over the network.
        try:
            if report == _UPDATE:
                offer = await self.check()
                if not offer:
                    return False
            release()  # what status() or the app loaded since the last phase
            m = offer.manifest
            t0 = time.ticks_ms()
            st = self.state
            try:
                slot = Slot(self.esp32)
                if m.size > slot.size:
                    raise ManifestError("PAYLOAD_TOO_LARGE", "%d bytes do not fit %s (%d bytes)"
                                        % (m.size, slot.label, slot.size))
                try:
                    if m.revert:  # a signed revert: the image is in the slot already (ota.revert)
                        from .revert import read_back as f
                        self._set("verifying")
                        try:
                            await f(m, slot, self.buf)
                        finally:
                            f = None  # its code goes with the phase, not with this frame
                            release()
                    else:
                        # A smaller representation than the raw payload when this device can use
                        # one (ota.encoded, docs/format.md §2.2), else the raw payload, resumed
                        # where an interrupted download stopped (ota.download). Each one's code
                        # is released when it returns.
                        self._set("downloading")
                        done = False
                        if m.payloads:
                            from .encoded import download as f
                            try:
                                done = await f(self.cfg, st, m, slot, self.buf, self.esp32,
                                               self._client, self._done_with, self._progress)
                            finally:
                                f = None
                                release()
                        if not done:
                            from .download import raw as f
                            try:
                                self._status["resumed_from"] = await f(
                                    self.cfg, st, m, slot, self.buf, self._client,
                                    self._done_with, self._progress)
                            finally:
                                f = None
                                release()
                        self._note("downloaded", m.sequence, None, t0, m.version)
                    self._set("verifying")
                    from .finish import verify as f  # released once the trial is armed
                    await f(slot, m.size, m.sha256, self.cfg.chip_id, self.buf)  # yields
                except (ManifestError, FlashError):
                    st.forget_progress()  # what is in the slot is not the signed image: start over
                    raise
                # The power-safe order of the trial's records is State.arm_trial's (ota.stateops).
                st.arm_trial(m.sequence, m.security_version, slot)
            except (OTAError, MemoryError) as e:  # MemoryError: NO_MEMORY, the app goes on
                from .info import fail
                e = fail(self, e, "the install")
                self._note("failed", m.sequence, e.reason, t0, m.version)
                if report:
                    await self._report()
                return False
        except MemoryError:
            # The last net for a MemoryError that escaped a phase's own handling (ota.info.fail,
            # which loads code to record it): NO_MEMORY in status(), as ota.info.fail says it,
            # with nothing allocated; the app goes on, with nothing to reboot into.
            self._set("failed", "NO_MEMORY", "the heap ran out")
            return False
        try:  # the trial is armed: the install stands, whatever runs out of heap here
            if self.cfg.telemetry:
                st.keep_install(self._events, m.sequence, m.version,
                                time.ticks_diff(time.ticks_ms(), t0))
            self._set("installed", None, "%s in %s; reboot to try it" % (m.version, slot.label))
        except MemoryError:
            self._set("installed")
        try:
            release()  # ota.finish and ota.stateops: the app runs on until the reboot
        except MemoryError:
            pass
        return True

    def _progress(self, done, size):
        # After every block written (the raw download persists its offset itself).
        self._status["progress"] = done
        if self.on_progress:
            self.on_progress(done, size)

    # --- the check's end (Agent.check() is ota.agentops.check) --------------------------------
    async def _checked(self, check):
        # Awaits check, ota.agentops' coroutine, then reports the outcome (ota.report) unless an
        # offer awaits install(): by then that module's code and frames are no longer in the heap
        # (its phase released it), so the report's connection does not carry them.
        try:
            offer = await check
            check = None  # the finished coroutine holds its module's code
            if not offer:
                await self._report()
            return offer
        except MemoryError:  # where even the failure path ran out: the last net, as _install's
            self._set("failed", "NO_MEMORY", "the heap ran out")
            return None

    # --- telemetry (docs/fleet.md) ------------------------------------------------------------
    def _note(self, event, seq, reason, t0, version=None):
        if self.cfg.telemetry:
            ev = self._events
            ev.append((event, seq, reason, time.ticks_diff(time.ticks_ms(), t0), version))
            if len(ev) > _MAX_EVENTS:
                ev.pop(0)

    async def _report(self):
        # Best effort and bounded (ota.report); never raises, never holds an update up for long.
        if self.cfg.telemetry:
            try:
                from .report import flush
            except MemoryError:  # no room for its code now: the events wait for the next one
                release()
                return
            events, self._events = self._events, []
            try:
                await flush(self.cfg, self.state, events, self._client, self._done_with)
            except MemoryError:  # they wait for the next report, as above
                self._events = (events + self._events)[-_MAX_EVENTS:]
            finally:
                release()

    # --- loops (the synchronous wrappers: __getattr__) -------------------------------------------
    def update(self):
        # A coroutine: `await agent.update()` checks, then installs what is offered; True when a
        # reboot is needed. (The install's own coroutine does both: one frame less.)
        return self._install(None, _UPDATE)
