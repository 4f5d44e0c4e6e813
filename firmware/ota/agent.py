# ota/agent.py: the update agent: check -> verify -> stream -> read back -> set_boot.
# MIT license; Copyright (c) 2026 otakit contributors
#
# One object owns the flow; trusted state only moves forward. The agent never raises into the
# app for network or data errors: every refusal is a reason code plus a message, kept in
# status(). It owns one 4 KB buffer for its whole life: the manifest is read into it, then every
# payload block passes through it, so memory does not grow with the image.
#
# RAM: each phase imports what it needs and releases it afterwards (fetch: ota.http; verify:
# ota.manifest and ota.crypto; install: ota.http), so the code of the phases is never in the heap
# at once when the agent is loaded as .mpy. Frozen into firmware, its code costs no heap at all.
import hashlib
import sys
import time

from . import release
from .errors import FetchError, FlashError, ManifestError, OTAError
from .slot import Slot, app_header_problem
from .state import State

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_BLOCK = const(4096)
_SAVE_EVERY = const(16)  # persist the download offset every 16 blocks (64 KB)
_CLOCK_VALID = const(1704067200)  # 2024-01-01: before this the clock is not set
_MAX_EVENTS = const(8)  # telemetry events kept for the next report (oldest dropped)


class Offer:
    # A verified manifest the device may install, plus the decisions taken about it.
    def __init__(self, m, security):
        self.manifest = m
        self.version = m.version
        self.sequence = m.sequence
        self.size = m.size
        self.security = security


class Agent:
    def __init__(self, config, esp32=None, http=None, state=None):
        if esp32 is None:
            import esp32
        self.cfg = config
        self.esp32 = esp32
        self.state = state or State(esp32)
        self.http = http  # None: a client is made for each phase and released after it
        self.buf = bytearray(_BLOCK)
        self.on_progress = None  # callable(done_bytes, total_bytes)
        self._etag = None
        self._verdict = None  # (offer, state, reason, detail) of the manifest behind _etag
        self._status = {"state": "idle", "reason": None, "detail": "", "progress": 0}
        self._events = []  # telemetry: (event, sequence, reason, ms, version), see ota.report
        if config.device_id is None:  # now, while the heap is fresh: it lives as long as we do
            from .ident import device_id
            device_id(config)
            release("ident")

    # --- status --------------------------------------------------------------------------
    def status(self):
        st = self.state
        s = dict(self._status)
        s["installed_sequence"] = st.get("seq")
        s["security_floor"] = st.get("floor")
        s["bad_sequences"] = st.bad_sequences()
        s["rollback"] = st.get_blob("rb").decode() or None
        if s["reason"] is None and s["state"] != "held":
            s["reason"], s["detail"] = st.last()
        return s

    def _set(self, state, reason=None, detail=""):
        self._status["state"] = state
        self._status["reason"] = reason
        self._status["detail"] = detail

    def _fail(self, e):
        self._set("failed", e.reason, e.detail)
        if not isinstance(e, FetchError):  # network trouble is retried, not worth a flash write
            self.state.set_last(e.reason, e.detail)
            self.state.commit()

    # --- check -----------------------------------------------------------------------------
    async def check(self):
        # Returns an Offer, or None (up to date, held back by a staged rollout, or refused: see
        # status()). Reports the outcome (ota.report) unless an offer awaits install().
        self._set("checking")
        t0 = time.ticks_ms()
        etag = offer = None
        try:
            status, etag, n = await self._fetch_manifest()
            if status == 304 and self._verdict:
                # Not Modified: the verdict on the manifest verified before stands.
                offer, state, reason, detail = self._verdict
                self._set(state, reason, detail)
            else:
                self._etag = None
                m = self._verify(n)
                offer = self._vet(m)
                if offer is None:
                    self._set("up_to_date")
                elif offer is False:
                    self._set("held", None, m.held)
                    offer = None
                else:
                    self._set("offered", None, "%s (sequence %d)" % (m.version, m.sequence))
                self._remember(etag, offer)
        except ManifestError as e:
            self._fail(e)
            self._remember(etag, None)
        except OTAError as e:
            self._fail(e)
        st = self._status
        if offer:
            self._note("offered", offer.sequence, None, t0, offer.version)
            return offer
        failed = st["state"] == "failed"
        self._note("failed" if failed else "checked", 0, st["reason" if failed else "state"], t0)
        await self._report()
        return None

    def _remember(self, etag, offer):
        self._etag = etag
        s = self._status
        self._verdict = (offer, s["state"], s["reason"], s["detail"]) if etag else None

    def _client(self):
        if self.http is not None:
            return self.http
        import gc
        gc.collect()  # before the phase's code and buffers are allocated
        from .http import HTTPClient
        return HTTPClient(self.cfg.timeout_ms, self.cfg.ca)

    def _done_with(self, client):
        if client is not self.http:
            release("http")

    async def _fetch_manifest(self):
        client = self._client()
        try:
            return await client.get_small(self.cfg.manifest_url(), self.buf, self._etag)
        finally:
            self._done_with(client)

    def _verify(self, n):
        # Signature first, then the body, then what needs no device state (ota.manifest).
        from . import manifest
        cfg = self.cfg
        try:
            keys = cfg.keys
            if keys is None:
                from ota_keys import KEYS as keys
            m = manifest.parse(memoryview(self.buf)[:n], keys)
            manifest.check_target(m, cfg.product, cfg.board, cfg.chip_id, Slot(self.esp32).size)
            m.held = manifest.held(m, cfg.device_id)
            return m
        finally:
            keys = None
            sys.modules.pop("ota_keys", None)
            release("manifest", "crypto", "ed25519", "sha512")

    def _vet(self, m):
        # Policy checks that need device state. Raises ManifestError; None means up to date,
        # False held back by a staged rollout.
        st = self.state
        installed = st.get("seq")
        if m.sequence == installed:
            return None
        if m.sequence < installed:
            raise ManifestError("ROLLBACK", "sequence %d is older than the installed %d"
                                % (m.sequence, installed))
        if m.sequence in st.bad_sequences():
            raise ManifestError("KNOWN_BAD", "sequence %d failed its trial boot before"
                                % m.sequence)
        floor = st.get("floor")
        if m.security_version < floor:
            raise ManifestError("SECURITY_FLOOR", "security version %d is below the floor %d"
                                % (m.security_version, floor))
        now = time.time()
        if m.expires and now > _CLOCK_VALID and now > m.expires:
            raise ManifestError("EXPIRED", "the manifest expired at %d" % m.expires)
        if m.held:
            return False  # held back by a staged rollout (docs/format.md section 2.2)
        return Offer(m, m.security)

    # --- install ---------------------------------------------------------------------------
    async def install(self, offer):
        # Streams, verifies, set_boot()s. Returns True when a reboot is needed to try it.
        # Reports the outcome (ota.report) before returning.
        ok = await self._install(offer)
        await self._report()
        return ok

    async def _install(self, offer):
        m = offer.manifest
        t0 = time.ticks_ms()
        st = self.state
        try:
            slot = Slot(self.esp32)
            if m.size > slot.size:
                raise ManifestError("PAYLOAD_TOO_LARGE", "%d bytes do not fit %s (%d bytes)"
                                    % (m.size, slot.label, slot.size))
            self._set("downloading")
            await self._download(m, slot)
            self._note("downloaded", m.sequence, None, t0, m.version)
            self._set("verifying")
            slot.verify(m.size, m.sha256, self.cfg.chip_id, self.buf)
            st.set("t_seq", m.sequence)
            st.set("t_sv", m.security_version)
            st.set("t_addr", slot.address)
            st.set("t_armed", 0)
            st.erase("t_fail")
            st.commit()
            slot.switch()
            st.set("t_armed", 1)
            st.erase("d_id", "d_off", "last")
            st.commit()
        except OTAError as e:
            self._fail(e)
            self._note("failed", m.sequence, e.reason, t0, m.version)
            return False
        self._note("installed", m.sequence, None, t0, m.version)
        self._set("installed", None, "%s in %s; reboot to try it" % (m.version, slot.label))
        return True

    async def _download(self, m, slot):
        st = self.state
        size = m.size
        tag = m.sha256[:8]
        start = 0
        h = hashlib.sha256()
        if st.get_blob("d_id") == tag:
            start = st.get("d_off")
            if 0 < start < size and start % _BLOCK == 0:
                slot.hash_range(start, self.buf, h)  # hash state can't be saved: re-hash flash
            else:
                start = 0
        else:
            st.set_blob("d_id", tag)
            st.set("d_off", 0)
            st.commit()
        client = self._client()
        try:
            resp = await client.get(self.cfg.payload_url(m.path), size - start, None, start)
        except BaseException:
            self._done_with(client)
            raise
        try:
            if start and resp.status == 200:  # the server ignored Range: start again
                start = 0
                h = hashlib.sha256()
            if resp.length != size - start:
                raise ManifestError("HASH_MISMATCH", "the server sent %d bytes, the manifest "
                                    "signs %d" % (start + resp.length, size))
            await self._stream(resp, slot, start, size, h)
        finally:
            await resp.close()
            self._done_with(client)
        if h.digest() != m.sha256:
            raise FlashError("HASH_MISMATCH", "the downloaded payload's SHA-256 differs from "
                             "the signed one")

    async def _stream(self, resp, slot, done, size, h):
        buf = self.buf
        mv = memoryview(buf)
        st = self.state
        block = done // _BLOCK
        while done < size:
            n = size - done if size - done < _BLOCK else _BLOCK
            got = 0
            while got < n:
                k = await resp.readinto(mv[got:n])
                if not k:
                    raise FetchError("SHORT_READ", "the payload ended at %d of %d bytes"
                                     % (done + got, size))
                got += k
            if block == 0:
                problem = app_header_problem(buf, self.cfg.chip_id)
                if problem:
                    raise FlashError("BAD_IMAGE", problem)
            for i in range(n, _BLOCK):  # only in the last block: keep the slot's tail erased
                buf[i] = 0xFF
            h.update(mv[:n])
            slot.write_block(block, buf)
            done += n
            block += 1
            if block % _SAVE_EVERY == 0:
                st.set("d_off", done)
                st.commit()
            self._status["progress"] = done
            if self.on_progress:
                self.on_progress(done, size)


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
            from . import report
            try:
                await report.flush(self)
            finally:
                release("report", "http", "ident")

    # --- loops and synchronous wrappers -----------------------------------------------------
    async def update(self):
        # check, then install what is offered. Returns True when a reboot is needed.
        offer = await self.check()
        return bool(offer) and await self.install(offer)

    async def run(self, interval_s=3600, reboot=None):
        # A simple periodic loop (policy comes later): check, install, then call reboot()
        # (default: machine.reset()) so the bootloader tries the new image.
        import asyncio
        while True:
            if await self.update():
                if reboot is None:
                    import machine
                    reboot = machine.reset
                reboot()
            await asyncio.sleep(interval_s)

    def check_sync(self):
        import asyncio
        return asyncio.run(self.check())

    def install_sync(self, offer):
        import asyncio
        return asyncio.run(self.install(offer))

    def update_sync(self):
        import asyncio
        return asyncio.run(self.update())
