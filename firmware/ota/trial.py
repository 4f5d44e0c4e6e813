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
# - running another slot after set_boot() returned, but this boot follows a power-on (or an
#   external hard reset) and the trial recorded no failure: the power was lost during the trial
#   (or while the bootloader or mark-valid rewrote otadata), which says nothing against the image:
#   forget the trial, so the next check installs it again, up to _MAX_INTERRUPTED times;
# - running another slot and set_boot() never returned (power cut mid-install): forget the trial;
#   the next check offers the release again.
# The NVS writes of each outcome, and their power-safe order, are ota.state's operations
# (State.arm_trial; confirm_trial, reject_trial, discard_trial in ota.stateops).
from .state import State

_MAX_INTERRUPTED = 3

CONFIRMED = "confirmed"
ROLLED_BACK = "rolled_back"
NORMAL = "normal"


def _run_checks(checks, timeout_ms):
    # Returns None when every check passed, else (reason, detail). The deadline is an alarm task
    # (ota.errors.alarm, as ota.http's timeouts), not asyncio.wait_for_ms: that would load
    # asyncio.funcs, which no ota.release() drops, for the app's whole life.
    import asyncio

    from .errors import alarm

    async def all_checks():
        a = asyncio.create_task(alarm(asyncio.current_task(), timeout_ms))
        try:
            for check in checks:
                r = check()
                if hasattr(r, "send"):  # a coroutine
                    r = await r
                if not r:
                    return "HEALTH_FAILED", getattr(check, "__name__", "check") + " returned False"
            return None
        except asyncio.CancelledError:
            if not a.done():  # the app cancelled it, not the alarm
                raise
            return "HEALTH_FAILED", "health checks did not finish within %d ms" % timeout_ms
        finally:
            if not a.done():
                a.cancel()
                await asyncio.sleep_ms(0)  # the alarm ends now: it holds this task (and code)

    try:
        return asyncio.run(all_checks())
    except Exception as e:  # a crashing check is a failed check, with its message kept
        return "HEALTH_FAILED", "%s: %s" % (type(e).__name__, e)


def _power_lost(machine):
    # This boot follows a power-on or brown-out (or the reset pin), not a crash, a watchdog or
    # a software reset: whatever ran before was stopped from outside.
    cause = machine.reset_cause()
    return cause in (machine.PWRON_RESET, machine.HARD_RESET,
                     getattr(machine, "BROWNOUT_RESET", -1))


def boot(checks=(), timeout_ms=30000, esp32=None, machine=None, log=print):
    # Returns (outcome, detail): outcome is NORMAL, CONFIRMED or ROLLED_BACK (its detail then
    # "REASON detail", for display; the fields are in status() and State.rollback()). On a
    # failed trial it does not return: it resets the board.
    if esp32 is None:
        import esp32
    if machine is None:
        import machine
    st = State(esp32)
    seq, sv, addr, armed = st.trial()
    if not seq:
        return NORMAL, ""
    part = esp32.Partition
    # The stubs type Partition(id) as a label only; BOOT/RUNNING are the documented int ids.
    running = part(part.RUNNING).info()  # pyright: ignore[reportArgumentType]
    if running[2] == addr:
        failure = _run_checks(checks, timeout_ms)
        if failure is None and part(part.BOOT).info() != running:  # pyright: ignore
            failure = "HEALTH_FAILED", "the running slot is not the boot slot; not confirming"
        if failure is not None:
            log("ota: trial of sequence %d failed: %s %s; resetting to roll back"
                % (seq, failure[0], failure[1]))
            st.fail_trial(failure[0], failure[1])
            machine.reset()
        part.mark_app_valid_cancel_rollback()
        st.confirm_trial(seq, sv)
        log("ota: sequence %d confirmed in %s" % (seq, running[4]))
        return CONFIRMED, running[4]
    if not armed:
        st.discard_trial(False)
        return NORMAL, "an interrupted install was discarded"
    code, detail = st.trial_failure()
    if code is None and _power_lost(machine) and st.interrupted() + 1 < _MAX_INTERRUPTED:
        st.discard_trial(True)
        log("ota: the trial of sequence %d was cut short by a power loss; it will be retried"
            % seq)
        return NORMAL, "an interrupted trial was discarded"
    if code is None:
        code, detail = "ROLLED_BACK", "the new image did not confirm its boot"
    st.reject_trial(seq, code, detail)
    text = code + " " + detail
    log("ota: rolled back from sequence %d (%s); it will not be retried" % (seq, text))
    return ROLLED_BACK, text


def pending(esp32=None):
    # True while the running image is a trial that ota.boot() has not confirmed yet (settings
    # and config migrations wait until it has).
    if esp32 is None:
        import esp32
    seq, _, addr, _ = State(esp32).trial()
    if not seq:
        return False
    part = esp32.Partition
    running = part(part.RUNNING).info()  # pyright: ignore[reportArgumentType] - an int id
    return running[2] == addr
