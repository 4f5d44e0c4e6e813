# otakit simulated ESP32: the flash faults beyond a torn cut (imported by _simflash when set).
# MIT license; Copyright (c) 2026 otakit contributors
"""Brown-out and silent corruption of the simulated flash chip (docs/simulator.md, fault model).

- Brown-out (OTAKIT_SIM_BROWNOUT=1): the power cut at OTAKIT_SIM_CUT_AT also tears the operation
  before it, which had reported success: the second half of what it wrote (or of the sector it
  erased) goes back to the bytes it held before. The cut is known in advance, so those bytes are
  saved as that operation starts. When the op before the cut ran in an earlier boot (the cut is
  the first op of a boot), only the cut op is torn.
- Silent corruption (OTAKIT_SIM_FAULT="flip:ADDR" or "stale:ADDR", ADDR decimal or 0x hex): the
  first write call of each boot that covers flash address ADDR reports success, but "flip"
  stores the byte at ADDR with its lowest bit inverted and "stale" stores nothing at all (the old
  bytes stay). Nothing tells the firmware; only reading the flash back shows it.
- Trace (OTAKIT_SIM_TRACE=file): every mutating op is appended to the file as 9 bytes, "<BII":
  kind (0 erase of a sector, 1 write), address, length (what a campaign classifies its cut
  points by: app slot, NVS record or commit, otadata, vfs).
All of them allocate only in setup(); the hooks run under the agent's heap lock.
"""

import os
import struct
import _simflash as fl
from micropython import const

_SECTOR = const(4096)
_HALF = const(2048)

_brownout = False
_saved = None  # brown-out: what the op before the cut overwrote, _n bytes at _addr
_addr = 0
_n = 0
_kind = 0  # silent corruption: 1 flip, 2 stale, 0 none (or already done in this boot)
_at = 0
_one = bytearray(1)
_trace = None  # the trace file
_rec = bytearray(9)


def setup():
    global _brownout, _saved, _kind, _at, _trace
    path = os.getenv("OTAKIT_SIM_TRACE")
    if path:
        _trace = open(path, "ab")
    _brownout = os.getenv("OTAKIT_SIM_BROWNOUT") == "1"
    if _brownout:
        _saved = bytearray(_SECTOR)
    spec = os.getenv("OTAKIT_SIM_FAULT") or ""
    if spec:
        kind, _, at = spec.partition(":")
        if kind not in ("flip", "stale") or not at:
            raise ValueError("OTAKIT_SIM_FAULT: want flip:ADDR or stale:ADDR, not " + spec)
        _kind = 1 if kind == "flip" else 2
        _at = int(at, 16) if at.startswith("0x") else int(at)


def _before_cut():
    # This op (already counted) is the one right before a brown-out cut.
    return _brownout and fl._cut > 0 and fl._base + fl._ops == fl._cut - 1


def _save(addr, n):
    global _addr, _n
    if n > _SECTOR:
        n = _SECTOR
    fl._f.seek(addr)
    fl._f.readinto(_saved, n)
    _addr = addr
    _n = n


def _log(kind, addr, n):
    struct.pack_into("<BII", _rec, 0, kind, addr, n)
    _trace.write(_rec)


def erase(a):
    # Called as the sector at a is about to be erased (its op counted).
    if _trace is not None:
        _log(0, a, _SECTOR)
    if _before_cut():
        _save(a + _HALF, _SECTOR - _HALF)


def write(addr, buf, cut):
    # Called as buf is about to be written at addr (its op counted; cut: the power is cut at
    # it). Returns True when the write was done here (silently corrupted).
    global _kind
    n = len(buf)
    if _trace is not None:
        _log(1, addr, n)
    if _before_cut():
        _save(addr + n // 2, n - n // 2)
    if not _kind or not addr <= _at < addr + n:
        return False
    kind = _kind
    _kind = 0
    fl._er_lo = fl._er_hi = 0
    if kind == 1:  # flip: stored, with one bit of the byte at _at inverted
        fl._and_write(addr, buf, n // 2 if cut else n)
        fl._f.seek(_at)
        fl._f.readinto(_one)
        _one[0] ^= 1
        fl._f.seek(_at)
        fl._f.write(_one)
    if cut:
        fl.die("cut")
    return True


def brownout():
    # The power is being cut: the op before the cut loses its second half.
    if _n:
        fl._f.seek(_addr)
        fl._f.write(_saved, 0, _n)
        fl._er_lo = fl._er_hi = 0
