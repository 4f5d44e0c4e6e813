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
#   d_id     blob first 8 bytes of the SHA-256 of the raw payload being downloaded (kept until
#            its trial ends, so a retry after an interrupted trial only re-verifies)
#   d_off    bytes of it written and durable in the slot (resume point), set after every block
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
# RAM: the agent's State lives as long as the app, so only what an install needs while the
# payload streams in (the agent's peak of RAM) is here: the NVS primitives and the resume point.
# Every other operation (arming and ending a trial, the last failure, the installed release and
# what the checks enforce, the rollback, the pending report, support end, the keyring, the
# accepted revision) is in ota.stateops and called the same way, st.keyring(env):
# State.__getattr__ loads that module on first use and ota.release() drops it with the phase
# that used it.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_BLOB_MAX = const(96)


class State:
    def __init__(self, esp32, namespace="otakit"):
        self.nvs = esp32.NVS(namespace)
        self._buf = bytearray(_BLOB_MAX)

    def __getattr__(self, name):
        # An operation of ota.stateops, bound to this State.
        if name[0] == "_":
            raise AttributeError(name)
        from . import stateops
        f = getattr(stateops, name)
        return lambda *a: f(self, *a)

    # --- the NVS primitives (for ota.stateops; other modules use the named operations) ----
    def i32(self, key, default=0):
        try:
            return self.nvs.get_i32(key)
        except OSError:
            return default

    def blob(self, key):
        try:
            n = self.nvs.get_blob(key, self._buf)
        except OSError:
            return b""
        return bytes(self._buf[:n])

    def erase(self, *keys):
        for k in keys:
            try:
                self.nvs.erase_key(k)
            except OSError:
                pass

    def commit(self):
        self.nvs.commit()

    # --- the resume point of a raw download (ota.download) ---------------------------------
    def progress(self, tag):
        # Bytes of the payload named by tag already durable in the slot, 0 if another payload.
        return self.i32("d_off") if self.blob("d_id") == tag else 0

    def start_progress(self, tag):
        # A new payload: its offset is forgotten before d_id names it, so a cut between the
        # two writes never pairs this payload with another one's progress.
        if self.blob("d_id") != tag:
            self.erase("d_off")
            self.nvs.set_blob("d_id", tag)

    def save_progress(self, offset):
        # Called once the block is in flash: the offset never runs ahead of the slot.
        self.nvs.set_i32("d_off", offset)

    def forget_progress(self, payload=False):
        # The offset (and with payload, the name of the payload too: the slot is overwritten
        # by another representation).
        if payload:
            self.erase("d_id", "d_off")
            self.commit()
        else:
            self.erase("d_off")
