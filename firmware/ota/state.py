# ota/state.py: the only module that persists anything: every saved record, as named operations.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Security state lives in NVS (namespace "otakit"), which survives a filesystem wipe and is not
# touched by an update. Only this module and its second half, ota.stateops, name a key
# (tests/device/test_structure.py). The records (i32 unless marked blob):
#   seq      sequence of the confirmed, running release (0: none installed through otakit)
#   floor    anti-rollback floor: the lowest security_version still accepted
#   t_seq    sequence of the release staged for a trial boot (0: none); the trial's marker
#   t_sv     its security_version
#   t_addr   flash address of the slot it was written to
#   t_armed  1 once set_boot() returned for it
#   t_fail   blob reason code recorded by a failed trial before it reset; t_faild blob its detail
#   t_intr   trials of the staged release cut short by a power loss (retried, at most 3)
#   bad      blob up to 8 sequences that failed their trial boot, 4 bytes each (never retried)
#   d_id     blob first 8 bytes of the SHA-256 of the payload being downloaded (raw, or a
#            resumable representation), written once per payload (kept until its trial ends, so
#            a retry after an interrupted trial only re-verifies)
#   d_off    bytes of it durable in the slot (the resume point) when the slot has no room for
#            its progress records (below): set at every 64 KB, at the end, when a download stops
#   last     blob reason code of the last failure, for status(); last_d blob its detail
#   rb       sequence of the last rollback (kept until a newer confirm); rb_rsn, rb_det blobs
#   eos      blob support_end "YYYY-MM-DD" of the last verified manifest (for status())
#   rpt      sequence of a trial outcome not yet reported; rpt_e blob the event ("confirmed",
#            "rolled_back"), rpt_r blob its reason code (empty when confirmed)
#   ins      blob the last install's telemetry, not yet reported: sequence i32, ms of its offered,
#            downloaded (-1: none) and installed events i32 x 3, version (UTF-8, when it fits)
#   kr_k     blob the release keys of the accepted keyring (ota.keyring.pack)
#   kr_v     blob version u32, expires u32, body digest (32), env (ASCII) of that keyring
#   rev      blob revision i32 + channel (ASCII): the highest manifest revision accepted, and
#            the channel it belongs to (another channel starts at revision 0); written
#            by accept() (ota.stateops), with its write order
# NVS sets are durable one by one (there is no transaction), so the order of the writes in each
# operation is its protocol: a record of several keys has a marker key, erased first and written
# last, and a reader trusts the other keys only under its marker. The otadata boot flags stay
# the single source of truth for which slot boots; nothing here duplicates them.
#
# The resume point of a download (progress, save_progress, forget_progress) is kept outside NVS
# when it can be: progress records in the spare slot's last sector (written through ota.records: a
# mark per 64 KB of the image once those bytes are in the slot and read back, and a stop when a
# download stops between two marks), under the payload d_id names. So an install writes d_id and
# the trial's records to NVS, not one record per 64 KB. d_off is the resume point only of an image
# that leaves no sector for the records (or when the sector has no place left for a stop). Order
# for a new payload: its records' sector is erased, then d_off, then d_id names it, so a cut before
# d_id is written leaves the old payload named with fewer records (a shorter resume point over
# bytes of it still in the slot: nothing of the new one was written yet), and the new payload is
# never named over the old one's records. A sector where nothing counts for the payload d_id names
# (an erase a cut tore) is erased again before a record is written into it.
#
# RAM: the agent's State lives as long as the app, so only what an install needs while the
# payload streams in (the agent's peak of RAM) is here: save_progress. Every other operation
# (the NVS primitives i32, blob, erase and commit, reading and forgetting the resume point,
# arming and ending a trial, the last failure, the installed release and what the checks
# enforce, the rollback, the pending report, support end, the keyring, the accepted revision)
# is in ota.stateops and called the same way, st.keyring(env): State.__getattr__ loads that
# module on first use and ota.release() drops it with the phase that used it; after progress()
# and forget_progress(), which run inside a download, it is dropped at once (ota.release(only)).
try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_BLOB_MAX = const(96)  # bytes of a blob read (ota.stateops)


class State:
    def __init__(self, esp32, namespace="otakit"):
        self.nvs = esp32.NVS(namespace)
        self._buf = bytearray(_BLOB_MAX)
        self._p = None  # the download's progress (below)

    def __getattr__(self, name):
        # An operation of ota.stateops, bound to this State (progress(tag, slot, size, buf) and
        # forget_progress(payload=False) through _dropping, below).
        if name[0] == "_":
            raise AttributeError(name)
        if name in ("progress", "forget_progress"):
            return lambda *a: _dropping(self, name, a)
        from . import stateops
        f = getattr(stateops, name)
        return lambda *a: f(self, *a)

    # --- the resume point of a download (ota.download, ota.encoded) ------------------------
    # progress() and forget_progress() are ota.stateops' (__getattr__); save_progress records
    # from the first mark.
    def save_progress(self, done):
        # Called once the image's bytes [0, done) are in flash and read back: at every 64 KB and
        # the image's end, and when the download stops between two (never ahead of the slot).
        # A progress record (ota.records), or d_off when the slot has no room for it.
        p = self._p
        if p and p[3] >= 0:
            from .records import record
            if record(p, done):
                return
        self.nvs.set_i32("d_off", done)


def _dropping(st, name, args):
    # st.progress() or st.forget_progress() (ota.stateops), then that module dropped again (and
    # ota.records, when a resumed download's scan loaded it: the first mark loads it again),
    # within a download whose other modules are in use: ota.release(only).
    from . import release, stateops
    try:
        return getattr(stateops, name)(st, *args)
    finally:
        stateops = None
        release(("stateops", "records"))
