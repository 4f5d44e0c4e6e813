# ota/state.py: the only module that persists anything.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Security state lives in NVS (namespace "otakit"), which survives a filesystem wipe and is not
# touched by an update:
#   seq      i32  sequence of the confirmed, running release (0: none installed through otakit)
#   floor    i32  anti-rollback floor: the lowest security_version still accepted
#   t_seq    i32  sequence of the release staged for a trial boot (0: none)
#   t_sv     i32  its security_version
#   t_addr   i32  flash address of the slot it was written to
#   t_armed  i32  1 once set_boot() returned for it
#   t_fail   blob reason recorded by a failed trial before it reset
#   bad      blob up to 8 sequences that failed their trial boot, 4 bytes each (never retried)
#   t_intr   i32  trials of the staged release cut short by a power loss (retried, at most 3)
#   d_id     blob first 8 bytes of the SHA-256 of the payload being downloaded (kept until its
#                 trial ends, so a retry after an interrupted trial only re-verifies)
#   d_off    i32  bytes of it written and durable in the slot (resume point), set after every
#                 4 KB block; erased before d_id names another payload
#   last     blob "REASON detail" of the last failure, for reporting
#   rb       blob "SEQUENCE REASON detail" of the last rollback (kept until a newer confirm)
#   eos      blob support_end "YYYY-MM-DD" of the last verified manifest (for status())
#   rpt      blob "confirmed SEQ" / "rolled_back SEQ REASON": a trial's outcome not yet reported
# The otadata boot flags stay the single source of truth for which slot boots; nothing here
# duplicates them.
import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_MAX_BAD = const(8)
_BLOB_MAX = const(96)


class State:
    def __init__(self, esp32, namespace="otakit"):
        self.nvs = esp32.NVS(namespace)
        self._buf = bytearray(_BLOB_MAX)

    def get(self, key, default=0):
        try:
            return self.nvs.get_i32(key)
        except OSError:
            return default

    def set(self, key, value):
        self.nvs.set_i32(key, value)

    def get_blob(self, key):
        try:
            n = self.nvs.get_blob(key, self._buf)
        except OSError:
            return b""
        return bytes(self._buf[:n])

    def set_blob(self, key, value):
        self.nvs.set_blob(key, value)

    def erase(self, *keys):
        for k in keys:
            try:
                self.nvs.erase_key(k)
            except OSError:
                pass

    def commit(self):
        self.nvs.commit()

    # --- releases that failed their trial boot ---
    def bad_sequences(self):
        b = self.get_blob("bad")
        return [struct.unpack_from("<i", b, i)[0] for i in range(0, len(b) - 3, 4)]

    def add_bad(self, seq):
        bad = self.bad_sequences()
        if seq in bad:
            return
        bad.append(seq)
        bad = bad[-_MAX_BAD:]
        self.set_blob("bad", struct.pack("<%di" % len(bad), *bad))

    # --- the last failure, kept for status() and reporting ---
    def set_last(self, reason, detail=""):
        self.set_blob("last", (reason + " " + detail).encode()[:_BLOB_MAX])

    def last(self):
        text = self.get_blob("last").decode()
        if not text:
            return None, ""
        i = text.find(" ")
        return (text, "") if i < 0 else (text[:i], text[i + 1:])

