# ota/trial.py: the first thing at every boot: confirm or reject a trial boot.
# MIT license; Copyright (c) 2026 otakit contributors
#
# After install() the new slot is the bootloader's NEW entry; the next hard reset boots it as
# PENDING_VERIFY (a trial). Here, at every boot:
# - no trial staged: nothing to do;
# - running the staged slot: run the health checks within a deadline; on success mark the app
#   valid (only when Partition(RUNNING) is Partition(BOOT): mark-valid acts on the *active* otadata
#   entry, which after a bootloader fallback is the broken slot), then record the installed
#   sequence and raise the anti-rollback floor; on failure record why and reset without marking,
#   so the bootloader rolls back;
# - running another slot although set_boot() had returned: the bootloader rolled back (the image
#   failed to load, crashed, hung, or failed its checks); remember the sequence as bad so it is
#   never retried, and keep the reason for reporting;
# - running another slot and set_boot() never returned (power cut mid-install): forget the trial;
#   the next check offers the release again.
from .state import State

CONFIRMED = "confirmed"
ROLLED_BACK = "rolled_back"
NORMAL = "normal"


def _run_checks(checks, timeout_ms):
    # Returns None when every check passed, else "REASON detail".
    import asyncio

    async def all_checks():
        for check in checks:
            r = check()
            if hasattr(r, "send"):  # a coroutine
                r = await r
            if not r:
                return "HEALTH_FAILED " + getattr(check, "__name__", "check") + " returned False"
        return None

    try:
        return asyncio.run(asyncio.wait_for_ms(all_checks(), timeout_ms))
    except asyncio.TimeoutError:
        return "HEALTH_FAILED health checks did not finish within %d ms" % timeout_ms
    except Exception as e:  # a crashing check is a failed check, with its message kept
        return "HEALTH_FAILED %s: %s" % (type(e).__name__, e)


def boot(checks=(), timeout_ms=30000, esp32=None, machine=None, log=print):
    # Returns (outcome, detail): outcome is NORMAL, CONFIRMED or ROLLED_BACK. On a failed trial
    # it does not return: it resets the board.
    if esp32 is None:
        import esp32
    if machine is None:
        import machine
    st = State(esp32)
    seq = st.get("t_seq")
    if not seq:
        return NORMAL, ""
    part = esp32.Partition
    running = part(part.RUNNING).info()
    if running[2] == st.get("t_addr"):
        failure = _run_checks(checks, timeout_ms)
        if failure is None and part(part.BOOT).info() != running:
            failure = "HEALTH_FAILED the running slot is not the boot slot; not confirming"
        if failure is not None:
            log("ota: trial of sequence %d failed: %s; resetting to roll back" % (seq, failure))
            st.set_blob("t_fail", failure.encode())
            st.commit()
            machine.reset()
        part.mark_app_valid_cancel_rollback()
        st.set("seq", seq)
        sv = st.get("t_sv")
        if sv > st.get("floor"):
            st.set("floor", sv)
        st.erase("t_seq", "t_sv", "t_addr", "t_armed", "t_fail", "last", "rb")
        st.set_blob("rpt", ("confirmed %d" % seq).encode())  # for the agent's next report
        st.commit()
        log("ota: sequence %d confirmed in %s" % (seq, running[4]))
        return CONFIRMED, running[4]
    if not st.get("t_armed"):
        st.erase("t_seq", "t_sv", "t_addr", "t_armed", "t_fail")
        st.commit()
        return NORMAL, "an interrupted install was discarded"
    reason = st.get_blob("t_fail").decode() or "ROLLED_BACK the new image did not confirm its boot"
    st.add_bad(seq)
    i = reason.find(" ")
    code, detail = (reason, "") if i < 0 else (reason[:i], reason[i + 1:])
    st.set_last(code, "sequence %d: %s" % (seq, detail))
    st.set_blob("rb", ("%d %s" % (seq, reason)).encode()[:96])
    st.set_blob("rpt", ("rolled_back %d %s" % (seq, code)).encode()[:96])
    st.erase("t_seq", "t_sv", "t_addr", "t_armed", "t_fail")
    st.commit()
    log("ota: rolled back from sequence %d (%s); it will not be retried" % (seq, reason))
    return ROLLED_BACK, reason
