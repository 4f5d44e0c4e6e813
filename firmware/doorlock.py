# doorlock.py: an example device app, a smart door lock, wired to the otakit update agent.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Frozen into the firmware with the agent (so its code costs no heap); main.py only starts it.
# 1. ota.boot() first: on a trial boot of a new image it runs the health checks below and
#    confirms the image, or resets so the bootloader rolls back.
# 2. Then, on asyncio: the lock (a button that locks/unlocks by hand, polled every 20 ms, and an
#    LED showing the bolt) and the update loop (ota.updater.Updater) side by side. The agent
#    yields between blocks, so the button is served while an update is checked, downloaded,
#    verified and installed; the restart waits until the bolt is not moving (can_reboot).
# 3. Notices (update available, postponed, downloaded, restart ahead, applied, failed, rolled
#    back, end of support) are printed and shown as a pattern on the status LED.
# 4. The local interface (lockui.py, when ota_config.json sets local_port): a tiny HTTP server on
#    the local network for the owner's phone or browser. It shows the device info (the model on
#    the label, the firmware, the release: EN 303 645 5.3-16) and lets the user turn automatic
#    checks, automatic install and notices off and on (5.3-6); nothing of it goes to the serial
#    console. It has no authentication of its own: a product puts its pairing in front of it.
# Files on the filesystem:
#   ota_config.json    written at provisioning (manufacturer): url, product, board, channel,
#                      model (the label's model designation, e.g. "DL-100"), ca (the file of
#                      the DER CA certificate for an https url), local_port (0 or absent: no
#                      local interface) and the update policy (check_s, first_s, retry_s and
#                      retry_max_s: the first and the longest wait after a network failure,
#                      security_postpone_max_s, notice_s); on a product build the url must be
#                      https:// (ota.buildinfo.url_refusal), http:// only on a development build;
#                      max_checks > 0 ends the app after that many checks (simulated demo);
#                      user_postpone_s > 0 answers every update notice with "later" (simulates a
#                      user, for the demo)
#   ota_settings.json  the user's update settings (ota.settings.Settings)
#   lock_config.json   the lock's own user configuration, versioned (ota.appconfig.ConfigStore)
# All three are user data: read with a size bound, validated field by field; a bad file or field
# is replaced by defaults with one "ota: BAD_SETTINGS|BAD_CONFIG: ..." line and a notice
# (Settings.notice, ConfigStore.notice, config_notice), never an exception.
import asyncio

import machine
import ota

LED_PIN = 2  # the bolt indicator
BUTTON_PIN = 0  # lock/unlock by hand
STATUS_PIN = 4  # the update status LED
BOLT_MS = 300  # how long the bolt takes to move
LOCK_SCHEMA = 1

# Status LED patterns: (on ms, off ms, repeats); repeats 0 = until the next notice.
PATTERNS = {
    "available": (100, 900, 0),  # a short blink every second: an update is waiting
    "postponed": (100, 2900, 0),
    "downloaded": (500, 500, 3),
    "disruption": (100, 100, 0),  # fast blinking: about to restart
    "applied": (2000, 0, 1),
    "failed": (100, 100, 5),
    "rolled_back": (100, 100, 5),
    "end_of_support": (1000, 1000, 0),
}


class Lock:
    def __init__(self):
        self.led = machine.Pin(LED_PIN, machine.Pin.OUT)
        self.button = machine.Pin(BUTTON_PIN, machine.Pin.IN)
        self.locked = True
        self.moving_until = 0
        self.on_toggle = None  # callable(locked): for logging and measurement
        self.led.value(1)

    def toggle(self):
        import time
        self.locked = not self.locked
        self.led.value(1 if self.locked else 0)
        self.moving_until = time.ticks_add(time.ticks_ms(), BOLT_MS)
        if self.on_toggle:
            self.on_toggle(self.locked)

    def can_reboot(self):
        # Not while the bolt moves.
        import time
        return time.ticks_diff(self.moving_until, time.ticks_ms()) <= 0

    def selftest(self):
        # The bolt indicator must follow the bolt state: drive it both ways and read it back.
        for state in (0, 1):
            self.led.value(state)
            if self.led.value() != state:
                return False
        self.led.value(1 if self.locked else 0)
        return True

    async def run(self):
        last = self.button.value()
        while True:
            now = self.button.value()
            if now != last and now == 0:  # pressed (active low)
                self.toggle()
            last = now
            await asyncio.sleep_ms(20)


class StatusLED:
    def __init__(self):
        self.pin = machine.Pin(STATUS_PIN, machine.Pin.OUT, value=0)
        self.pattern = None

    def show(self, kind):
        self.pattern = PATTERNS.get(kind)

    async def run(self):
        while True:
            p = self.pattern
            if not p:
                await asyncio.sleep_ms(100)
                continue
            on, off, n = p
            for _ in range(n or 1):
                self.pin.value(1)
                await asyncio.sleep_ms(on)
                self.pin.value(0)
                await asyncio.sleep_ms(off or 1)
            if n and self.pattern is p:
                self.pattern = None


# ota_config.json's fields: (type, low, high); numbers are a range, strings a length.
_CONFIG = {"url": (str, 8, 256), "product": (str, 1, 64), "board": (str, 1, 64),
           "channel": (str, 1, 64), "support_end": (str, 8, 10), "telemetry": (bool, 0, 1),
           "check_s": (int, 1, 31 * 86400), "interval_s": (int, 1, 31 * 86400),
           "first_s": (int, 0, 86400), "retry_s": (int, 1, 86400),
           "retry_max_s": (int, 1, 7 * 86400), "security_postpone_max_s": (int, 0, 30 * 86400),
           "notice_s": (int, 0, 86400), "max_checks": (int, 0, 1000000),
           "user_postpone_s": (int, 0, 30 * 86400), "model": (str, 1, 32), "ca": (str, 1, 128),
           "local_port": (int, 0, 65535)}
config_notice = None  # "BAD_CONFIG: detail" when ota_config.json was (partly) replaced


def _field_ok(v, spec):
    t, lo, hi = spec
    if type(v) is not t:
        return False
    if t is str:
        return lo <= len(v) <= hi
    return t is bool or lo <= v <= hi


def load_config():
    # The validated provisioning config, or None (no updates) when it is missing or unusable;
    # a bad field is dropped, so its default applies (ota.settings.load_json bounds the read).
    global config_notice
    from ota.settings import load_json, notice
    cfg, bad = load_json("ota_config.json")
    if cfg is not None and type(cfg) is not dict:
        cfg, bad = None, "ota_config.json is not a JSON object"
    if cfg is not None:
        for k in list(cfg):
            if k in _CONFIG and not _field_ok(cfg[k], _CONFIG[k]):
                bad = bad or "ota_config.json: bad %s" % k
                del cfg[k]
        if "url" not in cfg:
            cfg, bad = None, bad or "ota_config.json has no url"
    if cfg is not None:  # the url's scheme for this build, the CA file (ota.buildinfo)
        import ota
        from ota.buildinfo import config_refusal
        refused = config_refusal(cfg)
        ota.release()
        if refused:
            cfg, bad = None, refused
    if bad:
        config_notice = notice("BAD_CONFIG", bad)
    return cfg


def lock_store():
    from ota.appconfig import ConfigStore
    # lock_config.json: a field of the wrong type or a string over 256 characters is replaced
    # by its default (ConfigStore.load, BAD_CONFIG); auto_lock_s is clamped to 0..3600 below.
    return ConfigStore("lock_config.json", LOCK_SCHEMA,
                       defaults={"name": "Front door", "auto_lock_s": 30})


def load_lock_config(store):
    cfg = store.load()
    if not 0 <= cfg["auto_lock_s"] <= 3600:
        cfg["auto_lock_s"] = 30
    return cfg


def settings_readable():
    # A health check: the lock's configuration loads (migrated in RAM if it is older).
    return load_config() is not None and "name" in load_lock_config(lock_store())


def report(agent):
    s = agent.status()
    print("app: update status: %s%s" % (s["state"], " (%s: %s)" % (s["reason"], s["detail"])
                                        if s["reason"] else ""))


def progress(done, total):
    if done == total or done % 65536 == 0:
        print("app: progress %d/%d" % (done, total))


def make_updater(agent, cfg, lock, led):
    from ota.policy import Policy
    from ota.settings import Settings
    from ota.updater import Updater
    policy = Policy(Settings(), check_s=cfg.get("check_s", cfg.get("interval_s", 86400)),
                    first_s=cfg.get("first_s", 60),
                    backoff_s=(cfg.get("retry_s", 60), cfg.get("retry_max_s", 21600)),
                    security_postpone_max_s=cfg.get("security_postpone_max_s", 7 * 86400))
    up = None
    later = cfg.get("user_postpone_s", 0)

    def on_notice(n):
        print("app: notice %s: %s" % (n.kind, n.text))
        led.show(n.kind)
        if later and n.kind == "available" and up is not None:
            until = up.postpone(later)
            print("app: the user chose 'later' (%d s): postponed for %d s (the bound)"
                  % (later, until - policy.clock.time()))

    def reboot():
        print("app: restarting into the new firmware")
        machine.reset()

    up = Updater(agent, policy, on_notice=on_notice, can_reboot=lock.can_reboot, reboot=reboot,
                 notice_s=cfg.get("notice_s", 60))
    return up


def main():
    lock = Lock()
    outcome, detail = ota.boot(checks=(lock.selftest, settings_readable), timeout_ms=10000)
    print("app: boot %s %s" % (outcome, detail))
    store = lock_store()
    load_lock_config(store)
    store.commit()  # a schema migration is written only now that this firmware is confirmed
    store = None
    ota.release()
    cfg = load_config()
    if cfg is None:
        print("app: no ota_config.json; running without updates")
        asyncio.run(lock.run())
        return
    agent = ota.Agent(ota.Config(cfg["url"], cfg.get("product", "doorlock"),
                                 cfg.get("board", "esp32"), channel=cfg.get("channel", "stable"),
                                 support_end=cfg.get("support_end"),
                                 telemetry=cfg.get("telemetry", True), ca=cfg.get("ca"),
                                 model=cfg.get("model")))
    agent.on_progress = progress  # pyright: ignore[reportAttributeAccessIssue] - starts as None
    led = StatusLED()
    up = make_updater(agent, cfg, lock, led)
    up.boot_notice(outcome, detail)
    report(agent)

    async def both():
        tasks = [asyncio.create_task(lock.run()), asyncio.create_task(led.run())]
        port = cfg.get("local_port", 0)
        srv = None
        if port:
            from lockui import start_local  # loaded only for a lock with a local interface
            srv = await start_local(agent, up, port)
        await up.run(cfg.get("max_checks", 0))
        report(agent)
        if srv:
            srv.close()
        for t in tasks:
            t.cancel()

    asyncio.run(both())
