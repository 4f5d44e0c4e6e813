# ota/bundle.py: install a signed bundle file from the filesystem (docs/format.md §8).
# MIT license; Copyright (c) 2026 otakit contributors
#
# agent.install_file(path) (ota.agentops) runs install() here: the bundle's header is read and
# its lengths bounded (a keyring or manifest over the agent's 4 KB buffer is TOO_LARGE before a
# byte of it is read; a file shorter than its header announces is SHORT_READ, a longer one
# BAD_BUNDLE; a read that fails is SHORT_READ too), then the check phase of a network install runs unchanged (ota.check: keyring,
# signature, target, channel, expiry, revision, sequence, floor, known bad, rollout) with a
# fetch that reads the bundle's keyring document and manifest instead of the server's, and the
# install phase runs unchanged too (Agent._install: write, read back, set_boot; resumed from
# the progress ota.state kept when the same payload was cut before) with an ota.filebody
# client that serves the bundle's payload instead of an HTTP response. The payload is the one
# representation the header's SHA-256 names among the manifest's (raw or one of §2.2), and
# only that one is offered to the install.
# The keyring: a bundle may carry the product's keyring document; firmware with ROOTS checks
# it as it checks the server's (ota.trusted). Without one, or when the device already holds a
# newer keyring (the bundle's is then KEYRING_ROLLBACK), the keyring the device holds is used.
# Nothing is reported to the fleet server here: the events wait in the agent for the next
# network report. The verdict cache of the network check is dropped (a bundle may move the
# revision and sequence past it).
# Loaded only on this path and released with it; the whole bundle is never read into RAM (the
# keyring document and the manifest go through the agent's buffer one after the other).
import time

from . import release
from .errors import FetchError, ManifestError, OTAError
from .slot import Slot

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

# The header (docs/format.md §8): magic 4, version 1, 0, keyring length 2, manifest length 2,
# 0 0, payload length 4, payload SHA-256 32.
HEADER = const(48)
_MAX_DOC = const(4096)  # the agent's buffer: the keyring document's and the manifest's bound


class _Offer:
    pass


def _bad(detail):
    return ManifestError("BAD_BUNDLE", detail)


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _read(f, at, mv):
    # Bytes at offset `at` of the file into mv; a failing medium (a card pulled out) is a read
    # that ended early, as on the network (the progress in flash is kept).
    try:
        f.seek(at)
        return f.readinto(mv)
    except OSError as e:
        raise FetchError("SHORT_READ", "reading the bundle: %s" % e)


def _open(path, buf):
    # (file, keyring length, manifest length, payload length, payload SHA-256); raises OTAError.
    import os
    try:
        size = os.stat(path)[6]
        f = open(path, "rb")
    except OSError as e:
        raise _bad("cannot open %s: %s" % (path, e))
    try:
        if size < HEADER:
            raise FetchError("SHORT_READ", "the bundle is %d bytes, its header %d"
                             % (size, HEADER))
        _read(f, 0, memoryview(buf)[:HEADER])
        if bytes(buf[:4]) != b"OTAB" or buf[4] != 1 or buf[5] or buf[10] or buf[11]:
            raise _bad("not an otakit bundle of version 1")
        k, n = _u16(buf, 6), _u16(buf, 8)
        p = _u16(buf, 12) | (_u16(buf, 14) << 16)
        if k > _MAX_DOC or n > _MAX_DOC:
            raise ManifestError("TOO_LARGE", "the bundle's keyring (%d) or manifest (%d bytes) "
                                "is over %d bytes" % (k, n, _MAX_DOC))
        end = HEADER + k + n + p
        if size < end:
            raise FetchError("SHORT_READ", "the bundle is %d bytes, its header announces %d"
                             % (size, end))
        if size > end:
            raise _bad("%d bytes after the payload" % (size - end))
        return f, k, n, p, bytes(buf[16:HEADER])
    except BaseException:
        f.close()
        raise


def _now(a):
    # The device clock once set (a bundle comes with no server Date to believe).
    t = a.clock()
    return t if t > 1704067200 else None


async def _check(a, f, k, n):
    # ota.check's verdict on the bundle's manifest (under its keyring document, if any).
    from .check import run
    own = [k > 0]  # the bundle's keyring document is offered (until it is older than the held)

    async def fetch(url, etag):
        if url.endswith("/keyring"):
            if own[0]:
                return 200, None, _read(f, HEADER, memoryview(a.buf)[:k])
            if etag:  # the device holds an accepted keyring: "not modified"
                return 304, etag, 0
            raise ManifestError("KEYRING_REQUIRED", "the bundle carries no keyring document "
                                "and this device holds none")
        return 200, None, _read(f, HEADER + k, memoryview(a.buf)[:n])

    try:
        while True:
            v = (await run(a.cfg, a.state, fetch, a.buf, lambda: _now(a), Slot(a.esp32).size,
                           "bundle", None, None))[0]
            if v[1] != "KEYRING_ROLLBACK" or not own[0]:
                return v
            own[0] = False  # the device holds a newer keyring than the bundle: use that one
    finally:
        run = None
        release()


def _pick(m, p, sha):
    # Offer the install only the representation the bundle holds: (path, encoding).
    if sha == m.sha256 and p == m.size:
        m.payloads = None
        return m.path, "raw"
    for r in m.payloads or ():
        if r[3] == sha and r[2] == p:
            m.payloads = [r]
            return r[1], r[0]
    raise _bad("its payload (%d bytes) is none the manifest signs" % p)


async def install(a, path):
    # Returns True when a reboot is needed to try the installed release; every refusal is in
    # a.status() as for a network install.
    release()  # what status() or the app loaded since the last phase
    t0 = time.ticks_ms()
    a._set("checking")
    a._etag = a._verdict = None
    f = None
    try:
        try:
            f, k, n, p, sha = _open(path, a.buf)
            state, reason, detail, m, err, _ = await _check(a, f, k, n)
            if err is not None:
                raise err
            if state != "offered":
                a._set(state, reason, detail)
                a._note("checked", 0, state, t0)
                return False
            where, enc = _pick(m, p, sha)
        except (OTAError, MemoryError) as e:  # MemoryError: NO_MEMORY (ota.info.fail)
            from .info import fail
            e = fail(a, e, "the bundle's check")
            a._note("failed", 0, e.reason, t0)
            return False
        seq, version = m.sequence, m.version  # pyright: ignore[reportOptionalMemberAccess]
        a._note("offered", seq, None, t0, version)
        offer = _Offer()
        offer.manifest = m
        from .filebody import FileClient
        http, a.http = a.http, FileClient(f, HEADER + k + n, p, where, enc)
        try:
            return await a._install(offer)
        finally:
            a.http = http
    finally:
        if f is not None:
            f.close()
        release()
