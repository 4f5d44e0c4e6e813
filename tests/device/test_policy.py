"""The update policy on the real MicroPython unix port, with a fake clock and a fake agent.

ota.settings, ota.policy, ota.updater and ota.notify decide when to check, whether an offered
update installs, and what the user is told. Here time is moved by a clock whose sleep() only
advances it, so a week passes in milliseconds. Each test runs one MicroPython process in its own
directory (the settings file lands there) and judges by the JSON lines it prints.
"""

from __future__ import annotations

import json
from pathlib import Path

from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR

DAY = 86400
T0 = 1_767_225_600  # 2026-01-01 00:00 UTC

# Fakes shared by every scenario: a clock, an agent that serves a scripted sequence of check
# results, an offer, and a notice recorder.
PRELUDE = f"""
import asyncio, json
from ota.settings import Settings
from ota.policy import Policy, INSTALL, POSTPONED, WINDOW, MANUAL
from ota.updater import Updater
T0 = {T0}
DAY = 86400

class Clock:
    def __init__(self):
        self.t = T0
    def time(self):
        return self.t
    async def sleep(self, s):
        self.t += s
        await asyncio.sleep_ms(0)

class M:
    def __init__(self, security=None, disruption=None):
        self.notes = "a better lock"
        self.security = security
        self.disruption = disruption

class Offer:
    def __init__(self, seq, security=None, disruption=None):
        self.sequence = seq
        self.version = "1.%d.0" % seq
        self.security = security
        self.manifest = M(security, disruption)

class Agent:
    # results: a list of Offer | ("fail", reason, retry_after) (a network failure: transient)
    # | None, served in turn (the last one repeats); install() records the time and succeeds
    def __init__(self, clock, results, support_end=None):
        self.clock = clock
        self.results = results
        self.i = 0
        self.installs = []
        self.checks = []
        self.s = {{"state": "idle", "reason": None, "detail": "", "retry_after": 0,
                  "transient": False, "installed_sequence": 1, "support_end": support_end}}
    def status(self):
        return dict(self.s)
    async def check(self):
        self.checks.append(self.clock.time() - T0)
        r = self.results[min(self.i, len(self.results) - 1)]
        self.i += 1
        if isinstance(r, tuple):
            self.s.update(state="failed", reason=r[1], retry_after=r[2], transient=True)
            return None
        self.s.update(state="offered" if r else "up_to_date", reason=None, retry_after=0,
                      transient=False)
        return r
    async def install(self, offer):
        self.installs.append(self.clock.time() - T0)
        self.results = [None]  # after the restart the device is up to date
        return True

_Updater = Updater
def Updater(*a, **kw):
    up = _Updater(*a, **kw)
    up.tick_s = 600  # a fake clock: look for install_now() every 10 simulated minutes
    return up

notices = []
def on_notice(n):
    notices.append((n.kind, n.text))

def rand():
    return 0.5

def out(**kw):
    print("OUT " + json.dumps(kw))
"""


def run(tmp_path: Path, body: str) -> dict:
    """Run PRELUDE + body on the unix port in tmp_path; the merged OUT lines as a dict."""
    script = tmp_path / "scenario.py"
    script.write_text(PRELUDE + body)
    p = run_micropython([str(script)], path=[FIRMWARE_DIR], cwd=tmp_path, timeout=60)
    text = p.stdout.decode()
    assert p.returncode == 0, text + p.stderr.decode()
    merged: dict = {}
    for line in text.splitlines():
        if line.startswith("OUT "):
            merged.update(json.loads(line[4:]))
    return merged


def test_factory_defaults_auto_on(tmp_path: Path) -> None:
    r = run(tmp_path, """
s = Settings()
out(defaults=s.as_dict())
p = Policy(s, Clock(), rand)
out(decision=p.decide(Offer(2)))
""")
    d = r["defaults"]
    assert d["auto_check"] is True and d["auto_install"] is True and d["notify"] is True
    assert d["window"] is None
    assert r["decision"] == "install"
    assert not (tmp_path / "ota_settings.json").exists()  # defaults need no file


def test_settings_persist_validate_and_write_atomically(tmp_path: Path) -> None:
    r = run(tmp_path, """
s = Settings()
s.set(auto_install=False)
s.set_window("02:00", "04:30", tz_min=60)
try:
    s.set(auto_install="no")
    out(bad="accepted")
except ValueError:
    out(bad="refused")
try:
    s.set(firmware_url="http://evil")
    out(unknown="accepted")
except ValueError:
    out(unknown="refused")
again = Settings()
out(reloaded=again.as_dict())
import os
out(files=sorted(os.listdir(".")))
""")
    assert r["bad"] == "refused" and r["unknown"] == "refused"
    assert r["reloaded"]["auto_install"] is False
    assert r["reloaded"]["window"] == [120, 270] and r["reloaded"]["tz_min"] == 60
    assert "ota_settings.json.tmp" not in r["files"]
    stored = json.loads((tmp_path / "ota_settings.json").read_text())
    assert stored["v"] == 1


def test_newer_settings_file_is_read_tolerantly(tmp_path: Path) -> None:
    # A newer firmware wrote v2 with a key this one does not know, then rolled back.
    (tmp_path / "ota_settings.json").write_text(json.dumps(
        {"v": 2, "auto_install": False, "quiet_hours": [1, 2], "notify": "garbage"}))
    r = run(tmp_path, """
s = Settings()
out(s=s.as_dict())
s.set(auto_check=True)
""")
    assert r["s"]["auto_install"] is False and r["s"]["notify"] is True  # bad value: default
    stored = json.loads((tmp_path / "ota_settings.json").read_text())
    assert stored["quiet_hours"] == [1, 2] and stored["v"] == 2  # kept for the newer firmware


def test_disable_auto_install_keeps_checking_and_notifying(tmp_path: Path) -> None:
    r = run(tmp_path, """
c = Clock()
s = Settings()
s.set(auto_install=False)
a = Agent(c, [Offer(2)])
up = Updater(a, Policy(s, c, rand, check_s=3600, first_s=60), on_notice=on_notice, reboot=lambda: None)
asyncio.run(up.run(max_checks=3))
out(checks=a.checks, installs=a.installs, kinds=[k for k, t in notices], texts=[t for k, t in notices])
up.install_now()
asyncio.run(up.run(max_checks=4))
out(after=a.installs)
""")
    assert len(r["checks"]) == 3 and r["installs"] == []
    assert r["kinds"] == ["available", "postponed"]  # each told once, not at every check
    assert "automatic installing is off" in r["texts"][1]
    assert len(r["after"]) == 1  # "install now" is one action


def test_check_after_init_and_periodic_with_jitter(tmp_path: Path) -> None:
    r = run(tmp_path, """
import random
random.seed(7)
c = Clock()
a = Agent(c, [None])
up = Updater(a, Policy(Settings(), c, check_s=DAY, first_s=120), reboot=lambda: None)
asyncio.run(up.run(max_checks=6))
out(checks=a.checks)
""")
    t = r["checks"]
    assert 12 <= t[0] <= 120  # a short random delay after boot
    gaps = [b - a for a, b in zip(t, t[1:], strict=False)]
    assert all(0.9 * DAY <= g <= 1.1 * DAY + 1 for g in gaps), gaps
    assert len({round(g) for g in gaps}) > 1  # jittered, not in step


def test_backoff_on_503_honours_retry_after(tmp_path: Path) -> None:
    r = run(tmp_path, """
import random
random.seed(1)
c = Clock()
fail = ("fail", "HTTP", None)
a = Agent(c, [fail, fail, fail, fail, ("fail", "HTTP", "7200"), None, None])
up = Updater(a, Policy(Settings(), c, check_s=DAY, first_s=10, backoff_s=(60, 3600)), reboot=lambda: None)
asyncio.run(up.run(max_checks=7))
out(checks=a.checks)
""")
    t = r["checks"]
    gaps = [b - a for a, b in zip(t, t[1:], strict=False)]
    assert 30 <= gaps[0] <= 60 and 60 <= gaps[1] <= 120 and 120 <= gaps[2] <= 240
    assert 240 <= gaps[3] <= 480  # doubling, with jitter
    assert gaps[4] >= 7200  # the server's Retry-After is never undercut
    assert gaps[5] >= 0.9 * DAY  # success: back to the normal period


def test_postpone_then_install_after_expiry(tmp_path: Path) -> None:
    r = run(tmp_path, """
c = Clock()
s = Settings()
sec = {"severity": "high", "risk": "someone nearby could unlock the door"}
a = Agent(c, [Offer(2, security=sec)])
p = Policy(s, c, rand, check_s=6 * 3600, first_s=10, security_postpone_max_s=7 * DAY)
asked = []
def later(n):
    on_notice(n)
    if n.kind == "available":  # the user answers "later", twice
        asked.append(up.postpone(3 * DAY) - T0)
        asked.append(up.postpone(30 * DAY) - T0)  # cannot push it past 7 days from the offer
up = Updater(a, p, on_notice=later, reboot=lambda: None, notice_s=0)
asyncio.run(up.run(max_checks=60))
out(first=asked[0], again=asked[1], stored=Settings().postponed(2))
out(installs=a.installs, kinds=[k for k, t in notices], texts=[t for k, t in notices])
""")
    first_check = r["stored"][0] - T0
    assert r["first"] == first_check + 3 * DAY
    assert r["again"] == first_check + 7 * DAY
    assert len(r["installs"]) == 1
    assert 7 * DAY <= r["installs"][0] - first_check <= 7 * DAY + 2
    assert r["kinds"][0] == "available"
    assert "serious security problem" in r["texts"][0] and "unlock the door" in r["texts"][0]
    assert "postponed" in r["kinds"]


def test_other_updates_postpone_longer_but_bounded(tmp_path: Path) -> None:
    r = run(tmp_path, """
c = Clock()
p = Policy(Settings(), c, rand, security_postpone_max_s=7 * DAY, postpone_max_s=30 * DAY)
out(plain=p.postpone(Offer(3), 90 * DAY) - T0, sec=p.postpone(Offer(4, {"severity": "low", "risk": "x"}), 90 * DAY) - T0)
""")
    assert r["plain"] == 30 * DAY and r["sec"] == 7 * DAY


def test_maintenance_window_in_local_time(tmp_path: Path) -> None:
    # Window 02:00-04:00 local, local = UTC+2: opens at 00:00 UTC; T0 is 00:00 UTC.
    r = run(tmp_path, """
c = Clock()
c.t = T0 + 5 * 3600   # 07:00 local
s = Settings()
s.set_window("02:00", "04:00", tz_min=120)
a = Agent(c, [Offer(2)])
p = Policy(s, c, rand, check_s=DAY, first_s=10)
up = Updater(a, p, on_notice=on_notice, reboot=lambda: None, notice_s=0)
asyncio.run(up.run(max_checks=3))
local = [((t + T0 + 7200) // 60) % 1440 for t in a.installs]
s.set_window("23:00", "01:00", tz_min=0)
out(installs=a.installs, local=local, cross=[p.in_window(T0 + h * 3600) for h in (22, 23, 0, 1)])
""")
    assert len(r["installs"]) == 1
    assert 120 <= r["local"][0] < 240
    assert r["cross"] == [False, True, True, False]  # a window across midnight


def test_security_update_after_bound_waits_for_window(tmp_path: Path) -> None:
    r = run(tmp_path, """
c = Clock()
c.t = T0 + 10 * 3600  # 10:00
s = Settings()
s.set_window("03:00", "04:00")
a = Agent(c, [Offer(2, {"severity": "critical", "risk": "remote unlock"})])
p = Policy(s, c, rand, check_s=3600, first_s=10, security_postpone_max_s=DAY // 2)
def later(n):
    if n.kind == "available":
        up.postpone(30 * DAY)
up = Updater(a, p, on_notice=later, reboot=lambda: None, notice_s=0)
asyncio.run(up.run(max_checks=40))
out(installs=a.installs)
""")
    assert len(r["installs"]) == 1
    t = r["installs"][0]
    assert t >= 22 * 3600  # not before the bound (12 h after the offer at 10:00)
    assert 3 * 3600 <= t % DAY < 4 * 3600  # and then in the next window, 03:00-04:00


def test_restart_waits_for_notice_and_safe_moment(tmp_path: Path) -> None:
    r = run(tmp_path, """
c = Clock()
a = Agent(c, [Offer(2, disruption={"reboot": True, "seconds": 45})])
busy = [3]   # the bolt is moving for the first 3 polls
def can_reboot():
    busy[0] -= 1
    return busy[0] < 0
events = []
def on(n):
    events.append((n.kind, c.t - T0, n.text))
def reboot():
    events.append(("reboot", c.t - T0, ""))
up = Updater(a, Policy(Settings(), c, rand, first_s=0), on_notice=on, can_reboot=can_reboot, reboot=reboot, notice_s=20)
asyncio.run(up.step())
out(events=events)
""")
    ev = r["events"]
    kinds = [e[0] for e in ev]
    assert kinds == ["available", "downloaded", "disruption", "reboot"]
    dis, boot = ev[2], ev[3]
    assert boot[1] - dis[1] >= 20.29  # T seconds of notice, then the bolt had to stop
    assert "45 seconds" in dis[2] and "restarts in 20 seconds" in dis[2]


def test_notify_toggle(tmp_path: Path) -> None:
    r = run(tmp_path, """
c = Clock()
s = Settings()
s.set(notify=False)
a = Agent(c, [Offer(2)])
up = Updater(a, Policy(s, c, rand, first_s=0), on_notice=on_notice, reboot=lambda: None, notice_s=0)
asyncio.run(up.step())
out(quiet=len(notices), installs=len(a.installs))
s.set(notify=True)
a.results = [Offer(3)]
asyncio.run(up.step())
out(loud=[k for k, t in notices])
""")
    assert r["quiet"] == 0 and r["installs"] == 1
    assert r["loud"][0] == "available"


def test_eol_notice_after_end_and_device_keeps_working(tmp_path: Path) -> None:
    r = run(tmp_path, """
c = Clock()
a = Agent(c, [None], support_end="2025-12-31")
up = Updater(a, Policy(Settings(), c, rand, first_s=0, check_s=3600), on_notice=on_notice, reboot=lambda: None)
asyncio.run(up.run(max_checks=3))
b = Agent(c, [None], support_end="2026-01-02")
up2 = Updater(b, Policy(Settings(), c, rand, first_s=0), on_notice=on_notice, reboot=lambda: None)
asyncio.run(up2.step())
out(kinds=[k for k, t in notices], texts=[t for k, t in notices], checks=len(a.checks))
""")
    assert r["kinds"] == ["end_of_support"]  # once, and not for a date still ahead
    assert "2025-12-31" in r["texts"][0] and "keeps working" in r["texts"][0]
    assert r["checks"] == 3  # it keeps checking: an extension may come
