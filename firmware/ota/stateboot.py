# ota/stateboot.py: the second half of ota.state: the records' operations that end a trial.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Run once per boot by ota.trial, then released; apart from ota.state only so that the agent's
# resident State does not carry their code. The record table and the write-order rules are in
# ota/state.py's header; each operation below says its order. st is an ota.state.State.
import struct

_MAX_BAD = 8
_BLOB_MAX = 96


def _add_bad(st, seq):
    bad = st.bad_sequences()
    if seq not in bad:
        bad = (bad + [seq])[-_MAX_BAD:]
        st.nvs.set_blob("bad", struct.pack("<%di" % len(bad), *bad))

def trial_failure(st):
    # (reason, detail) a failed trial recorded before it reset, or (None, "").
    r = st.text("t_fail")
    return (r, st.text("t_faild")) if r else (None, "")

def fail_trial(st, reason, detail):
    # The detail first: t_fail (the reason) is the record's marker.
    st.nvs.set_blob("t_faild", detail.encode()[:_BLOB_MAX])
    st.nvs.set_blob("t_fail", reason.encode())

def interrupted(st):
    return st.i32("t_intr")

def confirm_trial(st, seq, sv):
    # The trial booted and passed its checks (mark_app_valid already done): the installed
    # sequence and floor first, the pending report next, then the marker t_seq is erased
    # before the rest. A cut before t_seq goes repeats this with the same values.
    st.nvs.set_i32("seq", seq)
    if sv > st.floor():
        st.nvs.set_i32("floor", sv)
    _set_report(st, "confirmed", seq, "")
    st.erase("t_seq", "t_sv", "t_addr", "t_armed", "t_fail", "t_faild", "t_intr",
                "last", "last_d", "rb", "rb_rsn", "rb_det", "d_off", "d_id")

def reject_trial(st, seq, reason, detail):
    # The bootloader rolled back (or the trial failed): the sequence is bad forever, the
    # failure and rollback records and the pending report are written, then the marker
    # t_seq is erased before the rest. A cut before that repeats it (add_bad is idempotent).
    _add_bad(st, seq)
    st.set_last(reason, "sequence %d: %s" % (seq, detail))
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

def _set_report(st, event, seq, reason):
    st.erase("rpt")
    st.nvs.set_blob("rpt_e", event.encode())
    st.nvs.set_blob("rpt_r", reason.encode())
    st.nvs.set_i32("rpt", seq)  # the marker, last

