# otakit simulated ESP32: the parts of `machine` that the agent and the example app use.
# MIT license; Copyright (c) 2026 otakit contributors
"""reset, soft_reset, deepsleep, lightsleep, WDT, unique_id, reset_cause, Pin (LED, button).

Invariants:
- reset(), a WDT timeout and deepsleep() end the process uncatchably (SIGKILL after the exit
  record is written); the host runner then starts the next boot: the full bootloader after a
  reset/WDT, the deep-sleep wake path (no otadata processing) after deepsleep.
- soft_reset() raises SystemExit as the real one does; the board then re-runs boot.py/main.py
  without the bootloader, so RUNNING never changes.
- The WDT is a thread polling every 10 ms: it fires even inside a busy loop.
Sim-only names start with `sim_`.
"""

import os
import time
from micropython import const

import _simflash as _fl

PWRON_RESET = const(1)
HARD_RESET = const(2)
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)
PIN_WAKE = const(2)
EXT0_WAKE = const(2)
EXT1_WAKE = const(3)
TIMER_WAKE = const(4)
TOUCHPAD_WAKE = const(5)
ULP_WAKE = const(6)

sim_soft_reset_requested = False


def reset():
    _fl.die("reset")


def soft_reset():
    global sim_soft_reset_requested
    sim_soft_reset_requested = True
    raise SystemExit


def deepsleep(time_ms=0):
    _fl.die("deepsleep", str(time_ms))


def lightsleep(time_ms=0):
    if time_ms:
        time.sleep_ms(time_ms)


def idle():
    time.sleep_ms(1)


def reset_cause():
    return int(os.getenv("OTAKIT_SIM_RESET_CAUSE") or PWRON_RESET)


def wake_reason():
    return TIMER_WAKE if reset_cause() == DEEPSLEEP_RESET else 0


def unique_id():
    import binascii
    import _simota

    return binascii.unhexlify(_simota.board()["uid"])


def freq(hz=None):
    return 160000000 if hz is None else None


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


_wdt_timeout = 0
_wdt_fed = 0


def _wdt_thread():
    # Allocation-free poll; a missed feed resets the board like the task watchdog.
    while True:
        time.sleep_ms(10)
        if time.ticks_diff(time.ticks_ms(), _wdt_fed) > _wdt_timeout:
            _fl.die("wdt")


class WDT:
    def __init__(self, id=0, timeout=5000):
        global _wdt_timeout, _wdt_fed
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        started = _wdt_timeout > 0
        _wdt_timeout = timeout
        _wdt_fed = time.ticks_ms()
        if not started:
            import _thread

            _thread.start_new_thread(_wdt_thread, ())

    def feed(self):
        global _wdt_fed
        _wdt_fed = time.ticks_ms()


class Pin:
    IN = const(1)
    OUT = const(3)
    OPEN_DRAIN = const(7)
    PULL_DOWN = const(1)
    PULL_UP = const(2)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)

    def __init__(self, id, mode=-1, pull=-1, value=None):
        if not isinstance(id, int) or not 0 <= id <= 39 or id in (20, 24, 28, 29, 30, 31):
            raise ValueError("invalid pin")
        self._id = id
        self._v = 0
        self._mode = self.IN
        self._pull = -1
        self._handler = None
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self._v = 1 if value else 0

    def __repr__(self):
        return "Pin(%d)" % self._id

    def value(self, v=None):
        if v is not None:
            self._v = 1 if v else 0
            return None
        if self._mode == self.IN:
            return self._input()
        return self._v

    def __call__(self, v=None):
        return self.value(v)

    def _input(self):
        # A button: <state dir>/pin_<id> ("0"/"1", see sim_set), else the env var
        # OTAKIT_SIM_PIN_<id>, else the pull level.
        try:
            with open("%s/pin_%d" % (_fl.state_dir, self._id)) as f:
                return 1 if f.read().strip() == "1" else 0
        except OSError:
            pass
        v = os.getenv("OTAKIT_SIM_PIN_%d" % self._id)
        if v:
            return 1 if v.strip() == "1" else 0
        return 1 if self._pull == self.PULL_UP else (self._v if self._pull == -1 else 0)

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0

    def irq(self, handler=None, trigger=3, wake=None):
        self._handler = handler

    def sim_set(self, v):
        # Sim only: drive an input pin (a button press) from device code.
        with open("%s/pin_%d" % (_fl.state_dir, self._id), "w") as f:
            f.write("1" if v else "0")
