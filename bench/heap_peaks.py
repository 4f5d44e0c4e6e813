"""Census of the agent's heap at the peaks of one whole update, in both code settings.

`bench.agent` finds the smallest heap an update fits in, in 1 KB steps that jitter by 1-2 KB
with unrelated changes of the code image. This probe says what is live at the moments that set
that figure, in bytes: one whole update (check, RSA signature, install of a 1,000,000 B image,
telemetry report) on the simulated esp32 board with a roomy heap, hooked at

- every connection (``ota.response.Response.begin``, hooked as the module is imported: the
  manifest GET, the payload GET, the report POST), before it connects, and as it sends the
  request (``Response._send``: the socket made, the request in hand);
- the RSA signature check (the builtin ``pow``, called once, by ``ota.rsapss``);
- the first and the 100th payload block written (``Partition.writeblocks``) and ``set_boot``.

At each hook it collects (``gc.collect()``: the live set does not change, only where later
blocks fall) and reports the bytes of the budget in use (the budget less ``gc.mem_free()``: the
simulator's charges, boot.py and this probe's own code, about 1-2 KB, included), the largest
free run (of a roomy heap: not the fragmentation of a tight one) and the ``ota``/``asyncio``
modules in ``sys.modules``; a module released while its functions still run (``ota.check``,
``ota.agentops`` during the check) is live but not listed. A second boot imports those modules
in turn, each after the ones it imports, and prints what each import added to the heap: each
module's code and names (``.mpy``) or its module, function and class objects (frozen); qstr
chunks make these move by about 100 B from run to run. Bytes on the 64-bit unix port.

Run: ``PYTHONPATH=host_tools .venv/bin/python -m bench.heap_peaks [mpy|frozen ...]``.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from otakit.appimage import make_app_image
from otakit.sim.lab import Lab

# The whole update, hooked. BASE: what the board holds before the agent (boot.py, `import ota`,
# this script's own code).
PEAKS = """\
import gc, sys, builtins, micropython, asyncio, esp32, json
def mods():
    return " ".join(sorted(k for k in sys.modules if k[:3] == "ota" or k[:7] == "asyncio"))
def mark(what):
    gc.collect()
    print("PEAK %s %d %d | %s" % (what, gc.mem_alloc(), gc.mem_free(), mods()))
    micropython.mem_info()
mark("base")
_imp = builtins.__import__
def imp(*a):
    m = _imp(*a)
    R = getattr(sys.modules.get("ota.response"), "Response", None)  # None while it loads
    if R is not None and not hasattr(R, "_hooked"):
        b = R.begin
        async def begin(self, *a):
            mark("connect")
            return await b(self, *a)
        R.begin = begin
        sd = getattr(R, "_send", None)  # (before 2026-12-08 it sent through asyncio streams)
        async def send(self, data):
            mark("send")
            return await sd(self, data)
        if sd:
            R._send = send
        R._hooked = 1
    return m
builtins.__import__ = imp
_pow = builtins.pow
def pw(*a):
    if len(a) == 3:
        mark("rsa_pow")
    return _pow(*a)
builtins.pow = pw
P = esp32.Partition
_wb = P.writeblocks
_sb = P.set_boot
N = [0]
def wb(self, *a):
    if N[0] in (0, 99):
        mark("block%d" % N[0])
    N[0] += 1
    return _wb(self, *a)
def sb(self):
    mark("set_boot")
    return _sb(self)
P.writeblocks = wb
P.set_boot = sb
import ota
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"]))
mark("agent")
print("INSTALLED" if agent.update_sync() else "FAILED " + json.dumps(agent.status()))
mark("end")
"""

# Each module imported in turn, dependencies first, nothing forgotten: what each import added
# to the heap on top of those before it (modules boot.py loaded count 0).
MODULES = """\
import gc, sys
for name in NAMES:
    gc.collect()
    a = gc.mem_alloc()
    __import__(name)
    gc.collect()
    print("SIZE", name, gc.mem_alloc() - a)
"""

# The ota and asyncio modules of an update, each after the ones it imports.
NAMES = ["asyncio", "asyncio.core", "asyncio.event", "asyncio.funcs", "asyncio.stream",
         "ota.errors", "ota.config", "ota.slot", "ota.state", "ota.agent", "ota.ident",
         "ota.info", "ota.agentops", "ota.check", "ota.crypto", "ota.keyring", "ota.trusted",
         "ota.httpparse", "ota.response", "ota.http", "ota.body", "ota.httpsmall",
         "ota.jsonscan", "ota.strictjson", "ota.jsonfields", "ota.fields", "ota.manifest",
         "ota.rsapss", "ota.httpdate", "ota.vet", "ota.stateops", "ota.download", "ota.report",
         "ota.settings", "ota.policy", "ota.updater"]


HEAP = 200 * 1024  # roomy: the census, not the smallest heap


def _run(frozen: bool) -> tuple[list[tuple[str, int, int, int, str]], dict[str, int], str]:
    with tempfile.TemporaryDirectory() as d, Lab(Path(d), frozen=frozen) as lab:
        lab.publish(make_app_image("1.1.0", size=1_000_000), "1.1.0", 2)
        lab.flash(make_app_image("1.0.0", size=64 * 1024))
        s = lab.work / "peaks.py"
        s.write_text(PEAKS)
        log = lab.boot(script=s, heapsize=f"{HEAP // 1024}K", max_boots=1, timeout=600).log
        if "INSTALLED" not in log:
            raise RuntimeError("the probe's update failed:\n" + log[-3000:])
        peaks = []
        for m in re.finditer(r"PEAK (\S+) (\d+) (\d+) \| ([^\n]*)\n(.*?max free sz: (\d+))",
                             log, re.S):
            peaks.append((m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(6)),
                          m.group(4)))
        s.write_text(f"NAMES = {NAMES!r}\n" + MODULES)
        lab.flash(make_app_image("1.0.0", size=64 * 1024))
        sizes = {m.group(1): int(m.group(2))
                 for m in re.finditer(r"SIZE (\S+) (-?\d+)", lab.boot(
                     script=s, heapsize=f"{HEAP // 1024}K", max_boots=1, timeout=600).log)}
        return peaks, sizes, log


def report(mode: str) -> str:
    peaks, sizes, _ = _run(mode == "frozen")
    out = [f"== {mode}: bytes of the {HEAP // 1024} KB budget in use, the largest free run, "
           "and the size (imported in turn) of the ota and asyncio modules loaded, then their "
           "names"]
    out.append(f"{'point':10} {'used':>7} {'maxfree':>7} {'modules':>7}")
    for what, _alloc, free, maxfree, mods in peaks:
        names = mods.split()
        code = sum(max(sizes.get(n, 0), 0) for n in names)
        short = " ".join(n[4:] if n.startswith("ota.") else n for n in names)
        out.append(f"{what:10} {HEAP - free:7} {maxfree * 32:7} {code:7}  {short}")
    out.append("module sizes alone: " + ", ".join(f"{k[4:] if k.startswith('ota.') else k} "
                                                   f"{v}" for k, v in sizes.items()))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    modes = (argv if argv is not None else sys.argv[1:]) or ["mpy", "frozen"]
    for mode in modes:
        print(report(mode), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
