"""Helpers shared by the tests/sim modules (a unique name: no clash with other conftest.py)."""

from __future__ import annotations

from otakit.sim.runner import RunResult

UID = bytes.fromhex("240ac4123456")


def lines(result: RunResult, prefix: str) -> list[str]:
    """The payloads of the log lines that start with ``prefix``."""
    return [ln[len(prefix):].strip() for ln in result.log.splitlines() if ln.startswith(prefix)]


# Device code that counts boots: `step` is 0 on the first boot of a run, 1 on the next, ...
# (the counter lives in a file on the simulated vfs).
STEP_COUNTER = """
try:
    with open("step") as f:
        step = int(f.read())
except OSError:
    step = 0
with open("step", "w") as f:
    f.write(str(step + 1))
"""


# Device code: FREE and LARGEST, the free heap after a collect and the largest single allocation
# that succeeds in it (a bisection over bytearray sizes).
LARGEST_BLOCK = """
import gc
def fits(n):
    try:
        bytearray(n)
        return True
    except MemoryError:
        return False
gc.collect()
FREE = gc.mem_free()
lo, hi = 0, FREE
while lo < hi:
    mid = (lo + hi + 1) // 2
    gc.collect()
    if fits(mid):
        lo = mid
    else:
        hi = mid - 1
LARGEST = lo
"""
