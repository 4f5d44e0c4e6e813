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

Each point also gives the names interned so far (``micropython.qstr_info()``: their number, and
the bytes of their pools and strings; interned names are never freed). A third boot installs the
same release with no check before it: the offer is rebuilt in that boot from the manifest's
attributes as the update printed them (``json.loads``, as the check's parser makes them; the
classes are the script's), ``install_sync(offer)`` runs it, and the same points are reported.
Between them, the boot after the install is reported too, in its own heap: ``ota.boot()``
confirms the trial (point ``booted``), then a check that offers nothing (the manifest fetched
and its signature checked again) and the telemetry report that carries the install's events
(``bench.agent``'s heap figure includes this boot; the probe fails unless the report went out).
The last line is what the check leaves at the payload's 100th block: the two boots' growth from
their own ``agent`` point, and the interned names' part of it. The ``agent`` points differ by
the script's own code (the update boot's is smaller).

With ``--encoding deflate`` or ``--encoding delta`` (repeatable) it makes the same census of an
install of that representation instead (ota.encoded; wbits 12, the device's default
``max_wbits``): a synthetic pair, a compressible 1,000,000 B image and its rebuild with 100 KB
of new code at 30 % (``rebuild_with_module``: a delta of about 100 KB), the board flashed with
the old image, the release offering the new one raw and as that representation, whose blob it
takes. Two more points: ``base_read``, the first ``readblocks`` once ``ota.encoded`` is loaded
(a delta's hash of its base in the running slot; for deflate the first read-back of a written
block), and ``refill``, the first body read (``ota.body.Body.readinto``, the decoder's frames live)
once 17 blocks are written; ``ota.encoded``, ``ota.encplan``, ``ota.delta`` and
``ota.fastadd`` are among the modules sized.

Run: ``PYTHONPATH=host_tools .venv/bin/python -m bench.heap_peaks [--encoding deflate|delta]
[mpy|frozen ...]``.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tempfile
from pathlib import Path

from otakit.appimage import make_app_image, rebuild_with_module
from otakit.sim.lab import Lab

from bench.agent import reported

# The whole update, hooked (GO: the update, or the install-only boot's offer and install).
# BASE: what the board holds before the agent (boot.py, `import ota`, this script's own code).
PEAKS = """\
import gc, sys, builtins, micropython, asyncio, esp32, json
def mods():
    return " ".join(sorted(k for k in sys.modules if k[:3] == "ota" or k[:7] == "asyncio"))
def mark(what):
    gc.collect()
    print("PEAK %s %d %d | %s" % (what, gc.mem_alloc(), gc.mem_free(), mods()))
    micropython.mem_info()
    micropython.qstr_info()
mark("base")
_imp = builtins.__import__
HOOKED = []  # id()s: a failed hasattr() on the class would keep it (and its module) alive
def imp(*a):
    m = _imp(*a)
    R = getattr(sys.modules.get("ota.response"), "Response", None)  # None while it loads
    if R is not None and id(R) not in HOOKED:
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
        HOOKED.append(id(R))
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
EXTRA
import ota
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"]))
mark("agent")
GO
mark("end")
"""

UPDATE = """\
print("INSTALLED" if agent.update_sync() else "FAILED " + json.dumps(agent.status()))
print("OFFER", agent._verdict[3].__dict__)  # the offer's manifest, for the install-only boot
"""


# The boot after the install, in its own heap: ota.boot() confirms the trial, then a check
# (the manifest fetched and verified again: the ETag was RAM) offers nothing and posts the
# report with the install's events, kept in NVS through the reboot (ota.report).
AFTER = """\
print("UPDATED" if agent.update_sync() is False else "FAILED " + json.dumps(agent.status()))
"""
BOOTED = """\
import ota
print("BOOT " + ota.boot()[0])
mark("booted")
"""


def _fields(text: str) -> str:
    # The manifest's attributes as the update boot printed them, as JSON for the install-only
    # boot (bytes, tuples, arrays and dicts tagged, so that they come back as they were).
    def enc(v: object) -> object:
        if isinstance(v, bytes):
            return {"b": v.hex()}
        if isinstance(v, tuple):
            return {"t": [enc(x) for x in v]}
        if isinstance(v, list):
            return [enc(x) for x in v]
        if isinstance(v, dict):
            return {"d": [[k, enc(x)] for k, x in v.items()]}
        if isinstance(v, _Array):
            return {"a": v.items}
        return v
    tree = ast.fix_missing_locations(_Arrays().visit(ast.parse(text, mode="eval")))
    d = eval(compile(tree, "<offer>", "eval"), {"_Array": _Array, "__builtins__": {}})
    return json.dumps([[k, enc(v)] for k, v in d.items()])


class _Array:
    # An array('i', [...]) of the printed manifest (the chunk lengths of a representation).
    def __init__(self, _typecode: str, items: list[int]) -> None:
        self.items = items


class _Arrays(ast.NodeTransformer):
    # The only call in the printed manifest, array('i', [...]), made an _Array.
    def visit_Call(self, node: ast.Call) -> ast.AST:
        return ast.Call(ast.Name("_Array", ast.Load()), [self.visit(a) for a in node.args], [])


# The same install from an offer made in this boot from the manifest's fields (json.loads, as
# the check's parser makes them), with no check before it: what the check leaves at the
# install's peak is the difference between the two (the Manifest class here is the script's).
INSTALL = """\
def dec(v):
    if type(v) is dict:
        if "b" in v:
            return bytes.fromhex(v["b"])
        if "t" in v:
            return tuple(dec(x) for x in v["t"])
        if "a" in v:
            from array import array
            return array("i", v["a"])
        return {k: dec(x) for k, x in v["d"]}
    if type(v) is list:
        return [dec(x) for x in v]
    return v
class Manifest:
    crypt = None
class Offer:
    pass
m = Manifest()
for k, v in json.loads(FIELDS):
    setattr(m, k, dec(v))
o = Offer()
o.manifest, o.version, o.sequence, o.size, o.security = m, m.version, m.sequence, m.size, m.security
agent.cfg.chip_id = m.chip_id  # the check's (ota.config.running_chip_id)
m = None
mark("offer")
print("INSTALLED" if agent.install_sync(o) else "FAILED " + json.dumps(agent.status()))
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


# ota.encoded's own points: the first partition read once it is loaded (delta: the base's
# hash), and the first body read (ota.body.Body.readinto, as the decoder refills its input buffer,
# its frames live) once 17 blocks are written (the progress records' code loaded at 64 KB).
READ = """\
_rb = P.readblocks
RB = [0, 0]
def rb(self, *a):
    if not RB[0] and "ota.encoded" in sys.modules:
        RB[0] = 1
        mark("base_read")
    return _rb(self, *a)
P.readblocks = rb
def imp2(*a):  # (builtins.__import__ reads as the builtin one, not imp)
    m = imp(*a)
    R = getattr(sys.modules.get("ota.body"), "Body", None)
    if R is not None and id(R) not in HOOKED:
        HOOKED.append(id(R))
        ri = R.readinto
        def readinto(self, buf):
            if N[0] >= 17 and not RB[1]:
                RB[1] = 1
                mark("refill")
            return ri(self, buf)
        R.readinto = readinto
    return m
builtins.__import__ = imp2
"""

ENCODED_NAMES = ["ota.encoded", "ota.encplan", "ota.delta", "ota.fastadd"]

HEAP = 200 * 1024  # roomy: the census, not the smallest heap


_PEAK = re.compile(r"PEAK (\S+) (\d+) (\d+) \| ([^\n]*)\n(.*?max free sz: (\d+)).*?"
                   r"n_qstr=(\d+), n_str_data_bytes=\d+, n_total_bytes=(\d+)", re.S)


def _peaks(log: str) -> list[tuple[str, int, int, int, str, int, int]]:
    # (point, alloc, free, largest free run in blocks, modules, interned names, their bytes)
    return [(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(6)), m.group(4),
             int(m.group(7)), int(m.group(8))) for m in _PEAK.finditer(log)]


Peaks = list[tuple[str, int, int, int, str, int, int]]


def _run(frozen: bool, encoding: str | None = None
         ) -> tuple[Peaks, dict[str, int], Peaks, Peaks]:
    with tempfile.TemporaryDirectory() as d, Lab(Path(d), frozen=frozen) as lab:
        names = NAMES
        if encoding is None:
            old = make_app_image("1.0.0", size=64 * 1024)
            lab.publish(make_app_image("1.1.0", size=1_000_000), "1.1.0", 2)
            peaks_script = PEAKS.replace("EXTRA\n", "")
        else:
            old = make_app_image("1.0.0", size=1_000_000, seed="fw", compressible=True)
            new = rebuild_with_module(old, at=0.3, removed=1536, added=100_000)
            kw: dict[str, object] = {"wbits": 12}
            kw.update({"delta_bases": (old,)} if encoding == "delta" else {"deflate": True})
            lab.publish(new, "1.1.0", 2, **kw)  # type: ignore[arg-type]
            peaks_script = PEAKS.replace("EXTRA\n", READ)
            names = NAMES + ENCODED_NAMES
        lab.flash(old)
        s = lab.work / "peaks.py"
        s.write_text(peaks_script.replace("GO\n", UPDATE))
        log = lab.boot(script=s, heapsize=f"{HEAP // 1024}K", max_boots=1, timeout=600).log
        if "INSTALLED" not in log or "payload refused" in log:
            raise RuntimeError("the probe's update failed:\n" + log[-3000:])
        peaks = _peaks(log)
        if encoding and not any(p[0] == "block0" and "ota.encoded" in p[4] for p in peaks):
            raise RuntimeError(f"the probe's update did not install the {encoding} payload")
        fields = re.search(r"OFFER ([^\n]*)", log)
        assert fields is not None
        lab.access_log.seek(0)
        lab.access_log.truncate()
        s.write_text(peaks_script.replace("import ota\n", BOOTED).replace("GO\n", AFTER))
        log = lab.boot(script=s, heapsize=f"{HEAP // 1024}K", max_boots=1, timeout=600).log
        if "BOOT confirmed" not in log or "UPDATED" not in log or not reported(lab):
            raise RuntimeError("the probe's boot after the install failed:\n" + log[-3000:])
        after = _peaks(log)
        s.write_text(peaks_script.replace("GO\n", f"FIELDS = {_fields(fields.group(1))!r}\n"
                                          + INSTALL))
        lab.flash(old)
        log = lab.boot(script=s, heapsize=f"{HEAP // 1024}K", max_boots=1, timeout=600).log
        if "INSTALLED" not in log or "payload refused" in log:
            raise RuntimeError("the probe's install failed:\n" + log[-3000:])
        alone = _peaks(log)
        s.write_text(f"NAMES = {names!r}\n" + MODULES)
        lab.flash(old)
        sizes = {m.group(1): int(m.group(2))
                 for m in re.finditer(r"SIZE (\S+) (-?\d+)", lab.boot(
                     script=s, heapsize=f"{HEAP // 1024}K", max_boots=1, timeout=600).log)}
        return peaks, sizes, alone, after


def _rows(peaks, sizes: dict[str, int]) -> list[str]:
    out = []
    for what, _alloc, free, maxfree, mods, nq, qb in peaks:
        names = mods.split()
        code = sum(max(sizes.get(n, 0), 0) for n in names)
        short = " ".join(n[4:] if n.startswith("ota.") else n for n in names)
        out.append(f"{what:10} {HEAP - free:7} {maxfree * 32:7} {nq:6} {qb:6} {code:7}  {short}")
    return out


def report(mode: str, encoding: str | None = None) -> str:
    peaks, sizes, alone, after = _run(mode == "frozen", encoding)
    what = mode if encoding is None else f"{mode}, {encoding} install"
    out = [f"== {what}: bytes of the {HEAP // 1024} KB budget in use, the largest free run, "
           "the interned names (qstrs) and their pools' bytes, and the size (imported in turn) "
           "of the ota and asyncio modules loaded, then their names"]
    head = f"{'point':10} {'used':>7} {'maxfree':>7} {'names':>6} {'qbytes':>6} {'modules':>7}"
    out += [head] + _rows(peaks, sizes)
    out.append("-- the same install from an offer made from the manifest's fields in its own "
               "boot, with no check before it:")
    out += [head] + _rows(alone, sizes)
    out.append("-- the boot after the install: ota.boot() confirms the trial, then a check that "
               "offers nothing (connect, send, rsa_pow) and the report with the install's "
               "events (the last connect and send):")
    out += [head] + _rows(after, sizes)
    up = {p[0]: p for p in peaks}
    al = {p[0]: p for p in alone}
    if "block99" in up and "block99" in al and "agent" in up and "agent" in al:
        d_up = up["agent"][2] - up["block99"][2]
        d_al = al["agent"][2] - al["block99"][2]
        out.append(f"left by the check at block 99 (both over their own 'agent' point): "
                   f"{d_up - d_al} B, of which interned names "
                   f"{(up['block99'][6] - up['agent'][6]) - (al['block99'][6] - al['agent'][6])} B "
                   f"({(up['block99'][5] - up['agent'][5]) - (al['block99'][5] - al['agent'][5])}"
                   " names)")
    out.append("module sizes alone: " + ", ".join(f"{k[4:] if k.startswith('ota.') else k} "
                                                   f"{v}" for k, v in sizes.items()))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    encodings: list[str | None] = []
    while "--encoding" in args:
        i = args.index("--encoding")
        if i + 1 >= len(args) or args[i + 1] not in ("deflate", "delta"):
            print("bench.heap_peaks: --encoding takes deflate or delta", file=sys.stderr)
            return 2
        encodings.append(args[i + 1])
        del args[i:i + 2]
    modes = args or ["mpy", "frozen"]
    for encoding in encodings or [None]:
        for mode in modes:
            print(report(mode, encoding), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
