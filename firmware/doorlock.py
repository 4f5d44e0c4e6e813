# doorlock.py: an example device app, a smart door lock, wired to the otakit update agent.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Frozen into the firmware with the agent (so its code costs no heap); main.py only starts it.
# 1. ota.boot() first: on a trial boot of a new image it runs the health checks below and
#    confirms the image, or resets so the bootloader rolls back.
# 2. Then the lock's own work (a button that locks/unlocks by hand, an LED showing the bolt) runs
#    beside the update agent's periodic check, so the essential function stays alive while an
#    update downloads.
# Device settings come from ota_config.json on the filesystem (written at provisioning):
#   {"url": "http://updates.example.com/repo", "product": "doorlock", "board": "esp32",
#    "channel": "stable", "interval_s": 3600, "max_checks": 0}
# max_checks > 0 stops the app after that many update checks (used by the simulated demo).
import asyncio
import json

import machine
import ota

LED_PIN = 2  # the bolt indicator
BUTTON_PIN = 0  # lock/unlock by hand


class Lock:
    def __init__(self):
        self.led = machine.Pin(LED_PIN, machine.Pin.OUT)
        self.button = machine.Pin(BUTTON_PIN, machine.Pin.IN)
        self.locked = True
        self.led.value(1)

    def toggle(self):
        self.locked = not self.locked
        self.led.value(1 if self.locked else 0)

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


def load_config():
    try:
        with open("ota_config.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def settings_readable():
    return load_config() is not None


def report(agent):
    s = agent.status()
    print("app: update status: %s%s" % (s["state"], " (%s: %s)" % (s["reason"], s["detail"])
                                        if s["reason"] else ""))


async def updates(agent, interval_s, max_checks):
    checks = 0
    while True:
        agent.on_progress = progress
        if await agent.update():
            print("app: update installed; restarting to try it")
            await asyncio.sleep_ms(100)
            machine.reset()
        report(agent)
        checks += 1
        if max_checks and checks >= max_checks:
            return
        await asyncio.sleep(interval_s)


def progress(done, total):
    if done == total or done % 65536 == 0:
        print("app: progress %d/%d" % (done, total))


def main():
    lock = Lock()
    outcome, detail = ota.boot(checks=(lock.selftest, settings_readable), timeout_ms=10000)
    print("app: boot %s %s" % (outcome, detail))
    cfg = load_config()
    if cfg is None:
        print("app: no ota_config.json; running without updates")
        asyncio.run(lock.run())
        return
    agent = ota.Agent(ota.Config(cfg["url"], cfg.get("product", "doorlock"),
                                 cfg.get("board", "esp32"), channel=cfg.get("channel", "stable"),
                                 telemetry=cfg.get("telemetry", True)))
    report(agent)

    async def both():
        lock_task = asyncio.create_task(lock.run())
        await updates(agent, cfg.get("interval_s", 3600), cfg.get("max_checks", 0))
        lock_task.cancel()

    asyncio.run(both())

