# ota/policy.py: when to check, and whether an offered update may install now.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Pure decisions over the user's Settings and a clock; no network, no flash. The clock is
# injected (Clock() is the real one), so tests move time without sleeping.
# Invariants:
# - a postponement is bounded from the moment the release was FIRST offered, not from now, so
#   postponing again and again cannot push a security update past security_postpone_max_s;
#   once the bound has passed the update installs in the next maintenance window;
# - with auto_install off nothing installs by itself; checking and notices go on;
# - every delay is randomised (jitter) so a fleet never checks in step; a failure backs off
#   exponentially with jitter, and a server's Retry-After is never undercut.
import time

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

INSTALL = "install"
POSTPONED = "postponed"
WINDOW = "window"  # outside the maintenance window
MANUAL = "manual"  # automatic installing is off: the user installs by hand
_DAY = const(86400)


class Clock:
    # time(): epoch seconds (UTC); sleep(s): an awaitable. Replace both in tests.
    def time(self):
        return time.time()

    async def sleep(self, s):
        import asyncio
        await asyncio.sleep_ms(int(s * 1000))


def _random():
    # A float in [0, 1).
    try:
        import random
        return random.getrandbits(24) / 16777216
    except (ImportError, AttributeError):
        import os
        b = os.urandom(3)
        return (b[0] << 16 | b[1] << 8 | b[2]) / 16777216


class Policy:
    # check_s      period between checks (EN 303 645 5.3-5; TS 103 701 notes "daily at a
    #              randomised time"), spread by +-jitter (a fraction)
    # first_s      the first check comes a random 10-100 % of this after boot
    # backoff_s    (first, cap) of the exponential backoff after a failed check
    # security_postpone_max_s   how long a security update may be postponed (7 days)
    # postpone_max_s            the same for other updates (30 days)
    def __init__(self, settings, clock=None, rand=None, check_s=_DAY, jitter=0.1, first_s=60,
                 backoff_s=(60, 21600), security_postpone_max_s=7 * _DAY,
                 postpone_max_s=30 * _DAY):
        self.settings = settings
        self.clock = clock or Clock()
        self.rand = rand or _random
        self.check_s = check_s
        self.jitter = jitter
        self.first_s = first_s
        self.backoff_s = backoff_s
        self.security_postpone_max_s = security_postpone_max_s
        self.postpone_max_s = postpone_max_s
        self.failures = 0

    # --- when to check ---------------------------------------------------------------------
    def first_delay(self):
        return self.first_s * (0.1 + 0.9 * self.rand())

    def after(self, status):
        # Seconds until the next check after an attempt whose outcome is the agent's status():
        # a failure that was the network's (status["transient"]) backs off, honouring the
        # server's Retry-After; anything else (up to date, offered, a refusal) waits check_s.
        failed = status["state"] == "failed" and bool(status.get("transient"))
        return self.next_delay(failed, status.get("retry_after"))

    def next_delay(self, failed=False, retry_after=None):
        # Seconds until the next check (the one backoff of the agent: Agent.run, Updater).
        if not failed:
            self.failures = 0
            return self.check_s * (1 + self.jitter * (2 * self.rand() - 1))
        self.failures += 1
        first, cap = self.backoff_s
        d = min(cap, first * (1 << min(self.failures - 1, 16)))
        d = d / 2 + d / 2 * self.rand()  # "equal jitter": between half and all of it
        ra = parse_retry_after(retry_after)
        if ra is not None:
            d = max(d, min(ra, _DAY))  # honour the server; a day at most
        return d

    # --- may it install now? -----------------------------------------------------------------
    def local_minute(self, now=None):
        now = self.clock.time() if now is None else now
        return int((now + self.settings.tz_min * 60) // 60) % 1440

    def in_window(self, now=None):
        w = self.settings.window
        if not w:
            return True
        m = self.local_minute(now)
        a, b = w
        return a <= m < b if a < b else (m >= a or m < b)

    def seconds_to_window(self, now=None):
        # 0 inside the window, else seconds until it opens.
        if self.in_window(now):
            return 0
        m = self.local_minute(now)
        return ((self.settings.window[0] - m) % 1440) * 60

    def postpone_cap(self, offer):
        return self.security_postpone_max_s if offer.security else self.postpone_max_s

    def postpone(self, offer, seconds, now=None):
        # The user asks to postpone `offer` by `seconds`. Returns the epoch time it waits until,
        # bounded by the cap from when this release was first offered.
        now = self.clock.time() if now is None else now
        rec = self.settings.postponed(offer.sequence)
        first = rec[0] if rec else now
        until = min(now + seconds, first + self.postpone_cap(offer))
        self.settings.set_postponed(offer.sequence, first, until)
        return until

    def postponed_until(self, offer, now=None):
        now = self.clock.time() if now is None else now
        rec = self.settings.postponed(offer.sequence)
        return rec[1] if rec and rec[1] > now else 0

    def decide(self, offer, now=None):
        # INSTALL, MANUAL, POSTPONED or WINDOW.
        now = self.clock.time() if now is None else now
        if not self.settings.auto_install:
            return MANUAL
        if self.postponed_until(offer, now):
            return POSTPONED
        if not self.in_window(now):
            return WINDOW
        return INSTALL


def parse_retry_after(v):
    # Retry-After as delta-seconds (an int or its text); None for anything else (an HTTP-date
    # falls back to the backoff).
    if v is None:
        return None
    if type(v) is int:
        return v if v >= 0 else None
    v = v.strip()
    if v and len(v) <= 9 and all("0" <= c <= "9" for c in v):
        return int(v)
    return None


def date_number(now):
    # Epoch seconds -> YYYYMMDD as an int (UTC), to compare with support_end.
    t = time.gmtime(int(now))
    return t[0] * 10000 + t[1] * 100 + t[2]
