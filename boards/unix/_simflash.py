# otakit simulated ESP32: the SPI flash chip, backed by one image file on the host.
# MIT license; Copyright (c) 2026 otakit contributors
"""The flash chip of the simulated board.

Invariants:
- All device state is the image file named by OTAKIT_SIM_FLASH (one file of the board's flash
  size); the unix file is written with unbuffered syscalls, so a killed process loses nothing.
- NOR semantics: an erase sets a 4 KiB sector to 0xFF; a write stores old AND new.
- Every sector erase and every write call is one "mutating operation", counted across the whole
  run (OTAKIT_SIM_OPS is the count before this boot). When the count reaches OTAKIT_SIM_CUT_AT
  the operation is torn (half a sector erased / the first half of the data written) and power
  is cut: the exit record is written and the process kills itself with SIGKILL, so device code
  can neither catch nor delay it.
- The fault model beyond the torn cut (a brown-out that also tears the op before the cut; silent
  corruption of a write), and the op trace, are in _simfault, imported only when
  OTAKIT_SIM_BROWNOUT, OTAKIT_SIM_FAULT or OTAKIT_SIM_TRACE is set (this module's code is on the heap of the firmware it serves).
- read/write/erase allocate nothing on the heap (the agent may call them under heap_lock); the
  two 4 KiB buffers below are allocated once at import.
"""

import os
import micropython
from micropython import const

_SECTOR = const(4096)
_CUT_ERASE_BYTES = const(2048)  # a torn erase leaves this many leading bytes erased

_f = None  # the open image file
size = 0  # flash size in bytes (= the image file size)
state_dir = "."  # the run's state directory (OTAKIT_SIM_STATE)
_base = 0  # mutating ops done by earlier boots of this run
_ops = 0  # mutating ops done by this boot
_cut = 0  # the op number (1-based, whole run) at which power is cut; 0 = never
_er_lo = 0  # [_er_lo, _er_hi) is known to be erased and not written since
_er_hi = 0
_ff = bytearray(b"\xff" * _SECTOR)
_scratch = bytearray(_SECTOR)
_fx = None  # the _simfault module when a fault is set


def _env_int(name):
    v = os.getenv(name)
    return int(v) if v else 0


def open_flash():
    # Open the image named by the environment (idempotent). Allocates.
    global _f, size, state_dir, _base, _cut, _fx
    if _f is not None:
        return
    path = os.getenv("OTAKIT_SIM_FLASH")
    if not path:
        raise OSError(2, "OTAKIT_SIM_FLASH is not set: run under `otakit sim run`")
    _f = open(path, "r+b")
    size = _f.seek(0, 2)
    state_dir = os.getenv("OTAKIT_SIM_STATE") or "."
    _base = _env_int("OTAKIT_SIM_OPS")
    _cut = _env_int("OTAKIT_SIM_CUT_AT")
    if os.getenv("OTAKIT_SIM_BROWNOUT") or os.getenv("OTAKIT_SIM_FAULT") or \
            os.getenv("OTAKIT_SIM_TRACE"):
        import _simfault as _fx
        _fx.setup()


def ops_total():
    return _base + _ops


def _next_op_is_cut():
    global _ops
    _ops += 1
    return _cut > 0 and _base + _ops == _cut


@micropython.viper
def _and_into(dst, src, off: int, n: int):
    # dst[i] &= src[off + i] for i < n
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[i] = d[i] & s[off + i]
        i += 1


def read(addr, buf):
    # Fill buf from flash address addr. No allocation.
    _f.seek(addr)
    _f.readinto(buf)


def _and_write(addr, buf, n):
    # Write n bytes of buf at addr as NOR flash does (old AND new), 4 KiB at a time.
    done = 0
    while done < n:
        k = n - done
        if k > _SECTOR:
            k = _SECTOR
        _f.seek(addr + done)
        _f.readinto(_scratch, k)
        _and_into(_scratch, buf, done, k)
        _f.seek(addr + done)
        _f.write(_scratch, 0, k)
        done += k


def write(addr, buf):
    # One mutating op: program len(buf) bytes at addr (no erase). No allocation.
    global _er_lo, _er_hi
    n = len(buf)
    cut = _next_op_is_cut()
    if _fx is not None and _fx.write(addr, buf, cut):
        return
    if cut:
        n //= 2
    end = addr + n
    if n and _er_lo <= addr and end <= _er_hi:
        # Everything here is still 0xFF, so old AND new == new.
        _f.seek(addr)
        _f.write(buf, 0, n)
        _er_lo = end
    elif n:
        if addr < _er_hi and end > _er_lo:
            _er_lo = _er_hi = 0
        _and_write(addr, buf, n)
    if cut:
        die("cut")


def erase(addr, length):
    # Erase whole sectors; one mutating op per sector. addr/length are multiples of 4096.
    global _er_lo, _er_hi
    a = addr
    end = addr + length
    while a < end:
        cut = _next_op_is_cut()
        if _fx is not None:
            _fx.erase(a)
        if cut:
            _f.seek(a)
            _f.write(_ff, 0, _CUT_ERASE_BYTES)
            _er_lo = _er_hi = 0
            die("cut")
        _f.seek(a)
        _f.write(_ff)
        a += _SECTOR
    if addr == _er_hi:
        _er_hi = end
    else:
        _er_lo = addr
        _er_hi = end


def erase_program(addr, buf):
    # erase(addr, len(buf)) then write(addr, buf): len(buf) sectors + 1 ops. When no cut falls
    # inside, the result (the data itself) is stored with one syscall. No allocation.
    global _ops, _er_lo, _er_hi
    n = len(buf)
    ops = n // _SECTOR + 1
    if (_cut > 0 and _base + _ops < _cut <= _base + _ops + ops) or _fx is not None:
        erase(addr, n)
        write(addr, buf)
        return
    _ops += ops
    _f.seek(addr)
    _f.write(buf)
    if addr < _er_hi and addr + n > _er_lo:
        _er_lo = _er_hi = 0


def write_exit(event, extra=""):
    # Record how this boot ended, for the host runner. Allocates.
    with open(state_dir + "/exit", "w") as f:
        f.write("%s %d %s\n" % (event, ops_total(), extra))


def die(event, extra=""):
    # End this boot now, uncatchably: record the event, then SIGKILL our own process.
    while micropython.heap_unlock():
        pass
    if _fx is not None and event == "cut":
        _fx.brownout()
    try:
        write_exit(event, extra)
    finally:
        pid = open("/proc/self/stat").read().split()[0]
        os.system("kill -9 " + pid)
        while True:
            pass
