# ota/stateops.py: the second half of ota.state: the operations the agent does not keep loaded.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Called as methods of an ota.state.State (st.keyring(env) runs keyring(st, env) here, through
# State.__getattr__), loaded on first use and dropped by ota.release() with the phase that used
# it (right after progress() and forget_progress(), which run inside a download). The record
# table and the write-order rules are in ota/state.py's header; each operation below says its
# order. Only ota.state and this module name an NVS key.
import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_MAX_BAD = const(8)
_BLOB_MAX = const(96)
_SECTOR = const(4096)
_MARKED = const(0x800000)  # 128 marks x 64 KB: the largest image with progress records
_LAST = const(127)  # the records' last place
_MARK = const(32)  # bytes per record (ota.records)


# --- the NVS primitives (for these operations; other modules use the named operations) -----
def i32(st, key, default=0):
    try:
        return st.nvs.get_i32(key)
    except OSError:
        return default


def blob(st, key):
    try:
        n = st.nvs.get_blob(key, st._buf)
    except OSError:
        return b""
    return bytes(st._buf[:n])


def erase(st, *keys):
    for k in keys:
        try:
            st.nvs.erase_key(k)
        except OSError:
            pass


def commit(st):
    st.nvs.commit()


def text(st, key):
    return st.blob(key).decode()


# --- the installed release ------------------------------------------------------------------
def installed(st):
    return st.i32("seq")


def floor(st):
    return st.i32("floor")


def bad_sequences(st):
    b = st.blob("bad")
    return [struct.unpack_from("<i", b, i)[0] for i in range(0, len(b) - 3, 4)]


# --- the trial: armed by the agent (ota.agent), ended at boot (ota.trial) ------------------------
def arm_trial(st, seq, sv, slot):
    # switch(slot) makes the verified slot the one that boots next (ota.finish: set_boot).
    # Order: the old marker goes first, the details, the marker t_seq, then set_boot(), then
    # t_armed. A cut after any prefix leaves a state ota.trial.boot() handles: no marker = no
    # trial; a marker without t_armed = an install cut before set_boot returned.
    st.erase("t_seq")
    st.nvs.set_i32("t_armed", 0)
    st.erase("t_fail", "t_faild")
    st.nvs.set_i32("t_sv", sv)
    st.nvs.set_i32("t_addr", slot.address)
    st.nvs.set_i32("t_seq", seq)
    from .finish import switch
    switch(slot)
    st.nvs.set_i32("t_armed", 1)
    st.erase("last", "last_d")  # d_id/d_off stay until the trial ends


def trial(st):
    # (seq, security_version, slot address, armed) of the staged trial; seq 0 when none.
    seq = st.i32("t_seq")
    if not seq:
        return 0, 0, 0, 0
    return seq, st.i32("t_sv"), st.i32("t_addr"), st.i32("t_armed")


def trial_failure(st):
    # (reason, detail) a failed trial recorded before it reset, or (None, "").
    r = text(st, "t_fail")
    return (r, text(st, "t_faild")) if r else (None, "")


def fail_trial(st, reason, detail):
    # The detail first: t_fail (the reason) is the record's marker.
    st.nvs.set_blob("t_faild", detail.encode()[:_BLOB_MAX])
    st.nvs.set_blob("t_fail", reason.encode())


def interrupted(st):
    return st.i32("t_intr")


def confirm_trial(st, seq, sv):
    # The trial booted and passed its checks (mark_app_valid already done): the installed
    # sequence (lower than before after a signed revert, docs/format.md §2.6) and floor first,
    # the pending report next, then the marker t_seq is erased before the rest. A cut before
    # t_seq goes repeats this with the same values.
    st.nvs.set_i32("seq", seq)
    if sv > floor(st):
        st.nvs.set_i32("floor", sv)
    _set_report(st, "confirmed", seq, "")
    st.erase("t_seq", "t_sv", "t_addr", "t_armed", "t_fail", "t_faild", "t_intr",
             "last", "last_d", "rb", "rb_rsn", "rb_det", "d_off", "d_id")


def reject_trial(st, seq, reason, detail):
    # The bootloader rolled back (or the trial failed): the sequence is bad forever, the
    # failure and rollback records and the pending report are written, then the marker
    # t_seq is erased before the rest. A cut before that repeats it (adding a bad sequence
    # twice keeps one).
    bad = bad_sequences(st)
    if seq not in bad:
        bad = (bad + [seq])[-_MAX_BAD:]
        st.nvs.set_blob("bad", struct.pack("<%di" % len(bad), *bad))
    set_last(st, reason, "sequence %d: %s" % (seq, detail))
    st.nvs.set_blob("rb_rsn", reason.encode())
    st.nvs.set_blob("rb_det", detail.encode()[:_BLOB_MAX])
    st.nvs.set_i32("rb", seq)  # the rollback record's marker, after its fields
    _set_report(st, "rolled_back", seq, reason)
    st.erase("t_seq", "t_sv", "t_addr", "t_armed", "t_fail", "t_faild", "t_intr",
             "d_off", "d_id")


def discard_trial(st, power_lost):
    # Forget a trial that said nothing against its image: an install cut before set_boot()
    # returned, or (power_lost) a trial cut by a power loss, counted in t_intr first so
    # that a cut right after still counts it. The marker t_seq goes first.
    if power_lost:
        st.nvs.set_i32("t_intr", interrupted(st) + 1)
    st.erase("t_seq", "t_sv", "t_addr", "t_armed", "t_fail", "t_faild")


def rollback(st):
    # (sequence, reason, detail) of the last rollback, or None.
    seq = st.i32("rb")
    return (seq, text(st, "rb_rsn"), text(st, "rb_det")) if seq else None


# --- the pending report of a trial's outcome (ota.report) --------------------------------------
def _set_report(st, event, seq, reason):
    st.erase("rpt")
    st.nvs.set_blob("rpt_e", event.encode())
    st.nvs.set_blob("rpt_r", reason.encode())
    st.nvs.set_i32("rpt", seq)  # the marker, last


def report(st):
    # (event, sequence, reason or None) not yet reported, or None.
    seq = st.i32("rpt")
    if not seq:
        return None
    return text(st, "rpt_e"), seq, text(st, "rpt_r") or None


def forget_report(st):
    st.erase("rpt", "rpt_e", "rpt_r")
    st.commit()


# --- the events of the last install, reported after the reboot (ota.agent, ota.report) --------
def keep_install(st, events, seq, version, ms):
    # A release was installed (its trial armed) in ms: its "offered" and "downloaded" events
    # leave the agent's list (events) for the record "ins" with the "installed" one, which
    # the next report sends, after the reboot too. Best effort, as a report: never raises.
    t = [-1, -1]
    for e in events[:]:
        if e[1] == seq and e[0] in ("offered", "downloaded"):
            t[1 if e[0] == "downloaded" else 0] = e[3]
            events.remove(e)
    v = version.encode()
    try:
        st.nvs.set_blob("ins", struct.pack("<4i", seq, t[0], t[1], ms)
                        + (v if len(v) <= _BLOB_MAX - 16 else b""))
    except OSError:
        pass


def install_events(st):
    # The events the record "ins" keeps, as ota.report's tuples; None without a record, [] for
    # a record that is not one (a record read from flash is an input: checked, never trusted).
    b = st.blob("ins")
    if not b:
        return None
    if len(b) < 16:
        return []
    seq, t0, t1, ms = struct.unpack_from("<4i", b)
    try:
        v = b[16:].decode() or None
    except UnicodeError:
        v = None
    if seq <= 0 or ms < 0:
        return []
    return [(e, seq, None, t, v) for e, t in (("offered", t0), ("downloaded", t1),
                                                ("installed", ms)) if t >= 0]


def forget_install(st):
    st.erase("ins")


# --- the last failure, kept for status() ---------------------------------------------------------
def set_last(st, reason, detail=""):
    # The detail first; "last" (the reason) is the marker.
    st.nvs.set_blob("last_d", detail.encode()[:_BLOB_MAX])
    st.nvs.set_blob("last", reason.encode())


def last(st):
    r = text(st, "last")
    return (r, text(st, "last_d")) if r else (None, "")


# --- the resume point of a download (ota.download, ota.encoded; save_progress in ota.state) --
# progress() and forget_progress() run at a download's start and when what the slot holds is not
# to be resumed from: State.__getattr__ drops this module (and ota.records) after each, so that
# neither is in the heap while the payload streams in (from the first mark, ota.records writes
# the records: State.save_progress). The write order is in ota/state.py's header.
def has_progress(st):
    return bool(st.blob("d_id"))


# st._p, the download's progress (set by progress): [Slot, the payload's tag, the 32-byte
# buffer a record is made in, the block of the records' sector or -1 (no room), the marks in
# it (the run from mark 0), the place of the next stop, the image's size] (ota.records).
def progress(st, tag, slot, size, buf):
    # The offset to resume the payload named by tag (size bytes of image) from, 0 if nothing of
    # it is kept: the furthest its records in slot give (read through buf, 4 KB), or d_off. From
    # now on save_progress records this payload's progress in slot (a new payload: in the order
    # of ota/state.py's header).
    n = slot.size // _SECTOR - 1  # the last sector's block, when the image ends before it
    mb = n if size <= n * _SECTOR and size <= _MARKED else -1
    st._p = p = [slot, tag, memoryview(st._buf)[:32], mb, 0, _LAST, size]
    if st.blob("d_id") == tag:
        off = 0
        if mb >= 0:
            off = _scan(p, buf)
            if not off:  # none counts: what the sector holds (a torn erase) is erased
                _erase(p)
        d = st.i32("d_off")
        return d if d > off else off
    if mb >= 0:
        _erase(p)
    st.erase("d_off")
    st.nvs.set_blob("d_id", tag)
    return 0


def _erase(p):
    # The records' sector of the progress p erased (ioctl 6): no mark, the next stop at the last
    # place.
    try:
        r = p[0].part.ioctl(6, p[3])
    except OSError as e:
        r = e
    if r:
        from .errors import FlashError
        raise FlashError("WRITE_FAILED", "erasing the progress records: %s" % r)
    p[4] = 0
    p[5] = _LAST


def forget_progress(st, payload=False):
    # What the slot holds is not to be resumed from: its records and d_off are erased (d_id
    # stays); with payload, or no download in this boot, d_id and d_off (the slot is
    # overwritten by another representation: the records no longer count without d_id).
    p = st._p
    if payload or p is None:
        st.erase("d_id", "d_off")
        st.commit()
        st._p = None
        return
    if p[3] >= 0:
        _erase(p)
    st.erase("d_off")


# --- support end (from the last verified manifest) ---------------------------------------------
def support_end(st):
    return text(st, "eos") or None


def save_support_end(st, end):
    b = end.encode()
    if st.blob("eos") != b:  # no flash write when unchanged
        st.nvs.set_blob("eos", b)


# --- the keyring (ota.trusted) -------------------------------------------------------------------
def keyring(st, env=None):
    # (version, expires, body digest) of the keyring accepted last, (0, 0, b"") if none (or,
    # given env, if it was accepted for another env: development -> production firmware).
    b = st.blob("kr_v")
    if len(b) < 40 or (env is not None and b[40:] != env.encode()):
        return 0, 0, b""
    v, e = struct.unpack_from("<II", b)
    return v, e, b[8:40]


def keyring_keys(st, buf):
    # The packed release keys into buf; returns their length.
    return st.nvs.get_blob("kr_k", buf)


def save_keyring(st, packed, version, expires, digest, env):
    # The keys first: kr_v is the commit point.
    st.nvs.set_blob("kr_k", packed)
    st.nvs.set_blob("kr_v", struct.pack("<II", version, expires) + digest + env.encode())
    st.commit()


# --- Agent.status(): the saved records as its fields (docs/agent.md) ---------------------------
def status_fields(st, s, own_end, channel):
    # Fills s, the agent's status dict: the installed sequence and floor as the checks enforce
    # them (enforced()), the revision accepted for channel. own_end is the firmware's support
    # end, reported until a signed manifest told one; the last failure fills reason and detail
    # when the agent has none of its own (and is not held back by a rollout).
    s["installed_sequence"], s["security_floor"] = enforced(st)
    s["keyring_version"] = keyring(st)[0]
    s["revision"] = revision(st, channel)  # of the last manifest accepted
    s["bad_sequences"] = bad_sequences(st)
    rb = rollback(st)
    s["rollback"] = "%d %s %s" % rb if rb else None  # for display: "SEQ REASON detail"
    s["support_end"] = support_end(st) or own_end
    if s["reason"] is None and s["state"] != "held":
        s["reason"], s["detail"] = last(st)


# --- the accepted signed state of the channel (ota.check; docs/format.md §2) -----------------
def revision(st, channel):
    # The highest manifest revision accepted for channel (0: none, or another channel's).
    b = st.blob("rev")
    return struct.unpack_from("<i", b)[0] if b[4:] == channel.encode() else 0


def accept(st, channel, rev, end):
    # A manifest passed every check: its revision (one atomic record with its channel) first,
    # then its support end, only if later than the stored one (never shortened). Nothing is
    # written when nothing moves. A cut between the two leaves the revision accepted; the same
    # document (equal revision) stores the support end next time.
    if rev > revision(st, channel):
        st.nvs.set_blob("rev", struct.pack("<i", rev) + channel.encode())
    if end > (support_end(st) or ""):
        save_support_end(st, end)
    st.commit()


# --- what the checks enforce: the saved records raised to the firmware's own release --------
def enforced(st):
    # (installed sequence, security floor) that ota.check enforces and status() reports: seq
    # and floor, each raised to the firmware's own release, so that a board with empty NVS
    # refuses anything older. That release is (SEQUENCE, SECURITY_VERSION) of the frozen
    # module ota_origin, which the build writes (otakit build --sequence --security-version);
    # without it (a development board) (0, 0). Reads only: NVS keeps what was confirmed.
    seq, sv = 0, 0
    try:
        import ota_origin
        seq = getattr(ota_origin, "SEQUENCE", 0)
        sv = getattr(ota_origin, "SECURITY_VERSION", 0)
    except ImportError:
        pass
    finally:
        import sys
        sys.modules.pop("ota_origin", None)
    n, f = installed(st), floor(st)
    return (n if n > seq else seq), (f if f > sv else sv)


def _scan(p, buf):
    # The resume point the progress records (ota.records) of the progress p give (0: none), read
    # through buf (4 KB): the run of its marks from mark 0, or its furthest stop, whichever is
    # further; sets p's marks (that run) and next stop place (two below the lowest valid stop,
    # since the place below it may hold a stop a cut tore).
    from .records import MAGIC_MARK, MAGIC_STOP, fill  # dropped with this module (ota.state)
    p[0].part.readblocks(p[3], buf)
    tag, rec, end = p[1], p[2], p[6]
    nm = (end + 0xFFFF) >> 16
    n = 0
    while n < nm:
        fill(rec, tag, n, 255 - n, MAGIC_MARK)
        if not _same(buf, n, rec):
            break
        n += 1
    p[4] = n
    off = n << 16
    off = off if off < end else end
    low = i = _LAST + 1
    while i > nm:
        i -= 1
        o = i * _MARK
        if buf[o + 15] == 0x70:  # "p", the last byte of "otstop": it may be a stop
            fill(rec, tag, buf[o + 8], buf[o + 9], MAGIC_STOP)
            k = (buf[o + 8] | (buf[o + 9] << 8)) * _SECTOR
            if _same(buf, i, rec) and k <= end:
                low = i
                off = k if k > off else off
    p[5] = low - 2
    return off


def _same(buf, place, rec):
    # Whether the record at place of the sector in buf is rec, all 32 bytes.
    o = place * _MARK
    for j in range(_MARK):
        if buf[o + j] != rec[j]:
            return False
    return True
