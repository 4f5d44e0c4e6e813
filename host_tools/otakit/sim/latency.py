"""Button-to-bolt latency of the example door lock, with and without an update running.

A host thread presses the simulated lock's button (a file the device's button reads) about every
50 ms and times each press until the device toggles the bolt (the device appends the toggle time
to another file; both sides read the same realtime clock). First with the lock alone (the
baseline), then while the real app (``doorlock.main()``) checks, downloads, verifies and installs
an update, until the update is installed (then the presses stop so the bolt can rest and the
app restarts: the restart waits for ``can_reboot()``). Both
`tests/device/test_doorlock.py` and ``bench.latency`` use this, so there is one measurement.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from otakit.sim.lab import Lab

# Runs on the device: the lock's button reads BUTTON_FILE (written by the host's presser), and
# every toggle appends its time (time.time_ns(), the same clock as the host's) to TOGGLE_FILE.
# BASE toggles with the lock alone, then doorlock.main(); "PHASE name" lines mark the parts.
SCRIPT = """\
import asyncio, os, time, machine, doorlock
BASE = %(base)d
BUTTON = os.getenv("OTAKIT_LAT_BUTTON")
TOGGLES = os.getenv("OTAKIT_LAT_TOGGLES")

class HostButton:
    def value(self):
        try:
            with open(BUTTON) as f:
                return 0 if f.read(1) == "0" else 1
        except OSError:
            return 1

count = [0]
orig_init = doorlock.Lock.__init__
orig_toggle = doorlock.Lock.toggle

def init(self):
    orig_init(self)
    self.button = HostButton()

def toggle(self):
    t = time.time_ns()
    orig_toggle(self)
    with open(TOGGLES, "a") as f:
        f.write("%%d\\n" %% t)
    count[0] += 1

doorlock.Lock.__init__ = init
doorlock.Lock.toggle = toggle
orig_show = doorlock.StatusLED.show

def show(self, kind):
    orig_show(self, kind)
    if kind == "downloaded":  # installed: the presser stops, so the bolt can rest
        with open(TOGGLES, "a") as f:
            f.write("end\\n")

doorlock.StatusLED.show = show

async def baseline():
    task = asyncio.create_task(doorlock.Lock().run())
    while count[0] < BASE:
        await asyncio.sleep_ms(50)
    task.cancel()

asyncio.run(baseline())
print("PHASE update")
orig_reset = machine.reset

def reset():
    print("PHASE restart")
    orig_reset()

machine.reset = reset
doorlock.main()
"""


# The presser, in its own process so it takes no time from the server thread of this one.
# argv: button file, toggles file, output file, stop file.
PRESSER = """\
import sys, time
from pathlib import Path
button, toggles, out, stop = map(Path, sys.argv[1:5])
pairs = []

def seen():
    try:
        return toggles.read_text().split()
    except OSError:
        return []

button.write_text("1")
while not stop.exists():
    now = seen()
    if "end" in now:  # the update is installed: stop pressing
        break
    n = len(now)
    pressed = time.time_ns()
    button.write_text("0")
    deadline = time.monotonic() + 2  # a press the app missed (it was starting): retry
    got = None
    while not stop.exists() and time.monotonic() < deadline:
        s = seen()
        if len(s) > n:
            got = s[n]
            break
        time.sleep(0.001)
    button.write_text("1")
    if got == "end":
        break
    if got:
        pairs.append("%d %s" % (pressed, got))
    time.sleep(0.05)
out.write_text("\\n".join(pairs))
"""


@dataclass
class Latency:
    """Press-to-toggle latencies in milliseconds."""

    baseline: list[float]
    update: list[float]

    @staticmethod
    def pct(xs: list[float], p: float) -> float:
        """The p-th percentile (nearest rank)."""
        s = sorted(xs)
        return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]

    def summary(self) -> dict[str, float]:
        """p50/p99/max of both runs and the p99 ratio (update ÷ baseline)."""
        b, u = self.baseline, self.update
        if not b or not u:
            raise RuntimeError(f"too few presses served: {len(b)} baseline, {len(u)} update")
        return {"presses_baseline": len(b), "presses_update": len(u),
                "p50_baseline_ms": self.pct(b, 50), "p99_baseline_ms": self.pct(b, 99),
                "p50_update_ms": self.pct(u, 50), "p99_update_ms": self.pct(u, 99),
                "max_update_ms": max(u), "p99_ratio": self.pct(u, 99) / self.pct(b, 99)}


def measure(lab: Lab, *, heapsize: str = "120K", base: int = 40) -> tuple[Latency, str]:
    """Run the scenario on ``lab``'s board (an update must be published); return the figures
    and the device log. The heap is the app's (`otakit sim run`'s 112K) plus 8 KB for this
    scenario's button and timing hooks (since 2026-12-07 the app with them no longer fits
    112K: the local interface and encrypted-payload fields grew the app and the agent)."""
    work = Path(lab.work)
    script = work / "latency.py"
    script.write_text(SCRIPT % {"base": base})
    button, toggles, out, stop = (work / n for n in ("button", "toggles", "pairs", "stop"))
    toggles.write_text("")
    stop.unlink(missing_ok=True)
    presser = subprocess.Popen([sys.executable, "-c", PRESSER, str(button), str(toggles),
                                str(out), str(stop)])
    try:
        result = lab.boot(script=script, heapsize=heapsize, max_boots=1, timeout=300,
                          env={"OTAKIT_LAT_BUTTON": str(button),
                               "OTAKIT_LAT_TOGGLES": str(toggles)})
    finally:
        stop.write_text("")
        presser.wait(timeout=30)
    if "PHASE restart" not in result.log:
        raise RuntimeError("the update did not reach its restart:\n" + result.log[-3000:])
    pairs = [line.split() for line in out.read_text().splitlines() if line]
    ms = [(int(t) - int(p)) / 1e6 for p, t in pairs]
    return Latency(ms[:base], ms[base:]), result.log
