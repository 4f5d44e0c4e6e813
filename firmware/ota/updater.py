# ota/updater.py: the automatic update loop: check, tell the user, install when allowed, and
# restart at a safe moment with notice first.
# MIT license; Copyright (c) 2026 otakit contributors
#
#   up = Updater(agent, policy, on_notice=show, can_reboot=lock.idle)
#   up.boot_notice(outcome, detail)     after ota.boot(): APPLIED or ROLLED_BACK
#   await up.run()                      forever (max_checks > 0: stop after that many)
#   await run(agent, policy, **kw)      the same, what Agent.run() calls
#   up.postpone(seconds)                the user says "later" to the offered update (bounded)
#   up.install_now()                    the user says "now" (also with auto_install off)
# Invariants: the restart is announced (DISRUPTION) at least notice_s seconds before it happens,
# and happens only when can_reboot() says so; the loop only awaits, so the app's tasks run
# between its steps; notices are skipped when the user turned them off (settings.notify).
from .policy import INSTALL, MANUAL, POSTPONED, date_number

_CLOCK_VALID = 1704067200  # 2024-01-01: before this the clock is not set


class Updater:
    def __init__(self, agent, policy, on_notice=None, can_reboot=None, reboot=None,
                 notice_s=60, downtime_s=30):
        self.agent = agent
        self.policy = policy
        self.clock = policy.clock
        self.on_notice = on_notice
        self.can_reboot = can_reboot
        self._reboot = reboot
        self.notice_s = notice_s
        self.downtime_s = downtime_s  # assumed when a release announces none
        self.offer = None
        self.checks = 0
        self.tick_s = 1  # how often a sleep looks for install_now()
        self._told = None  # (sequence, decision) last announced
        self._eos_told = False
        self._now = False

    def notice(self, kind, **info):
        # The wording (ota.notify) is loaded only while a notice is made.
        if self.on_notice and self.policy.settings.notify:
            from .notify import Notice
            n = Notice(kind, **info)
            from . import release
            release()
            self.on_notice(n)

    def boot_notice(self, outcome, detail=""):
        s = self.agent.status()
        if outcome == "confirmed":
            self.notice("applied", sequence=s["installed_sequence"],
                        version="sequence %d" % s["installed_sequence"])
        elif outcome == "rolled_back":
            rb = self.agent.state.rollback()  # (sequence, reason, detail), kept by ota.boot()
            if rb:
                self.notice("rolled_back", reason=rb[1], detail=rb[2])

    # --- the user's controls ---------------------------------------------------------------
    def postpone(self, seconds):
        # Returns the epoch time the offered update waits until (bounded), or 0 if none.
        if self.offer is None:
            return 0
        until = self.policy.postpone(self.offer, seconds)
        self._told = None
        return until

    def install_now(self):
        self._now = True

    # --- the loop --------------------------------------------------------------------------
    async def run(self, max_checks=0):
        await self._sleep(self.policy.first_delay())
        while True:
            try:
                delay = await self.step()
            except MemoryError:  # a notice or status() the heap had no room for: the loop
                delay = self.policy.next_delay(True)  # goes on, backing off as for the network
            self.checks += 1
            if max_checks and self.checks >= max_checks:
                return
            await self._sleep(delay)

    async def _sleep(self, s):
        end = self.clock.time() + s
        while not self._now:
            left = end - self.clock.time()
            if left <= 0:
                return
            await self.clock.sleep(min(left, self.tick_s))

    def _support_notice(self, now):
        se = self.agent.status().get("support_end")
        if se and not self._eos_told and now > _CLOCK_VALID and \
                date_number(now) > int(se.replace("-", "")):
            self._eos_told = True
            self.notice("end_of_support", support_end=se)

    async def step(self):
        # One check, decision and maybe install. Returns seconds until the next step.
        p = self.policy
        now = self.clock.time()
        self._support_notice(now)
        if not (p.settings.auto_check or self._now):
            return p.next_delay()
        offer = await self.agent.check()
        s = self.agent.status()
        if offer is None:
            self.offer = None
            return p.after(s)
        self.offer = offer
        m = offer.manifest
        if self._told is None or self._told[0] != offer.sequence:
            sec = offer.security or {}
            self.notice("available", version=offer.version, sequence=offer.sequence,
                        notes=m.notes, severity=sec.get("severity"), risk=sec.get("risk"))
            self._told = (offer.sequence, None)
        d = INSTALL if self._now else p.decide(offer, now)
        if d != INSTALL:
            return self._wait(offer, d, now)
        self._now = False
        if not await self.agent.install(offer):
            s = self.agent.status()
            self.notice("failed", version=offer.version, reason=s["reason"], detail=s["detail"])
            return p.after(s)
        self.notice("downloaded", version=offer.version, sequence=offer.sequence)
        await self.restart(offer)
        return p.next_delay()

    def _wait(self, offer, d, now):
        p = self.policy
        delay = p.next_delay()
        if d == POSTPONED:
            until = p.postponed_until(offer, now)
            delay = min(delay, until - now + 1)
            t = _local(until, p.settings.tz_min)
            why = "postponed until %s (local time)" % t
        elif d == MANUAL:
            why = "automatic installing is off; install it from the app"
        else:
            delay = min(delay, p.seconds_to_window(now) + 60 * p.rand())
            w = p.settings.window
            why = "it installs in the maintenance window %02d:%02d-%02d:%02d" % (
                w[0] // 60, w[0] % 60, w[1] // 60, w[1] % 60)
        if self._told != (offer.sequence, d):
            self._told = (offer.sequence, d)
            self.notice("postponed", version=offer.version, sequence=offer.sequence,
                        detail=why, until=p.postponed_until(offer, now) or None)
        return delay

    async def restart(self, offer):
        # Announce, wait notice_s, wait for a safe moment, then reset into the new image.
        dis = offer.manifest.disruption or {}
        self.notice("disruption", version=offer.version, reboot=True,
                    downtime=dis.get("seconds", self.downtime_s), seconds_ahead=self.notice_s)
        await self.clock.sleep(self.notice_s)
        while self.can_reboot is not None and not self.can_reboot():
            await self.clock.sleep(0.1)
        reboot = self._reboot
        if reboot is None:
            import machine
            reboot = machine.reset
        reboot()


async def run(agent, policy=None, interval_s=None, retry_s=None, max_checks=0, **kw):
    # Agent.run(): the loop with `policy`, else one over the stored Settings whose period is
    # interval_s and whose backoff starts at retry_s (then capped at interval_s). kw: on_notice,
    # can_reboot, reboot, notice_s, downtime_s. Returns the Updater when max_checks ends.
    if policy is None:
        from .policy import Policy
        from .settings import Settings
        policy = Policy(Settings())
        if interval_s:
            policy.check_s = interval_s
        if retry_s:
            policy.backoff_s = (retry_s, interval_s or policy.backoff_s[1])
    up = Updater(agent, policy, **kw)
    await up.run(max_checks)
    return up


def _local(t, tz_min):
    import time
    y, mo, d, h, mi = time.gmtime(int(t + tz_min * 60))[:5]
    return "%04d-%02d-%02d %02d:%02d" % (y, mo, d, h, mi)
