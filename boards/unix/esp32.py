# otakit simulated ESP32: the `esp32` module of MicroPython's esp32 port (Partition, NVS).
# MIT license; Copyright (c) 2026 otakit contributors
"""`esp32.Partition` and `esp32.NVS` with exactly the public surface of ports/esp32.

Invariants (ground truth sections 1, 4.3, 4.4, 8):
- ESP-IDF errors are raised as OSError(-code, 'ESP_ERR_...'), ESP_FAIL as (1, 'ESP_FAIL'), a
  missing partition as OSError(ENOENT); range checks come before anything is erased or written.
- 2-arg writeblocks erases first (block_size >= 4096: len must be a multiple of 4096); 3-arg
  writeblocks never erases (NOR: old AND new); ioctl(6) returns -22 unless block_size == 4096.
- readblocks, writeblocks and ioctl allocate nothing for block_size 4096 (heap_lock-safe).
- Partition objects have no __eq__; compare .info() tuples.
Sim-only names start with `sim_`.
"""

from micropython import const

import _simflash as _fl
import _simota as _ota
from _simnvs import NVS  # noqa: F401 - esp32.NVS

_SECTOR = const(4096)
_ENOENT = const(2)
HEAP_DATA = const(4)
HEAP_EXEC = const(1)

# ESP-IDF error codes used here.
_ESP_FAIL = -1
_INVALID_ARG = 0x102
_INVALID_SIZE = 0x104
_NOT_FOUND = 0x105
_NOT_ALLOWED = 0x10D
_VALIDATE_FAILED = 0x1503
_NAMES = {_ESP_FAIL: "ESP_FAIL", _INVALID_ARG: "ESP_ERR_INVALID_ARG",
          _INVALID_SIZE: "ESP_ERR_INVALID_SIZE", _NOT_FOUND: "ESP_ERR_NOT_FOUND",
          _NOT_ALLOWED: "ESP_ERR_NOT_ALLOWED", _VALIDATE_FAILED: "ESP_ERR_OTA_VALIDATE_FAILED"}


def _esp_err(code):
    # check_esp_err(): OSError(-code, esp_err_to_name(code)).
    return OSError(-code, _NAMES.get(code, "UNKNOWN ERROR"))


def _by_addr(addr):
    for p in _ota.table():
        if p[2] == addr:
            return p
    return None


def _running_part():
    # What the simulated bootloader actually booted (the boot partition outside `otakit sim`).
    if _ota.running is not None:
        return _by_addr(_ota.running)
    return _ota.boot_partition()


def _make(p, block_size):
    o = object.__new__(Partition)
    o._init(p, block_size)
    return o


class Partition:
    BOOT = const(0)
    RUNNING = const(1)
    TYPE_APP = const(0)
    TYPE_DATA = const(1)

    def __init__(self, *args, **kw):
        # Partition(id, block_size=4096, /): positional only, like the C constructor.
        if kw:
            raise TypeError("function doesn't take keyword arguments")
        if not 1 <= len(args) <= 2:
            raise TypeError("function takes 2 positional arguments but %d were given" % len(args))
        pid = args[0]
        if isinstance(pid, int):
            if pid == 0:
                p = _ota.boot_partition()
            elif pid == 1:
                p = _running_part()
            else:
                raise ValueError
        else:
            label = str(pid) if isinstance(pid, str) else None
            if label is None:
                raise TypeError("can't convert %s to str" % type(pid).__name__)
            p = _ota.find(_ota.TYPE_APP, 0xFF, label) or _ota.find(_ota.TYPE_DATA, 0xFF, label)
            p = p[0] if p else None
        if p is None:
            raise OSError(_ENOENT)
        self._init(p, args[1] if len(args) > 1 else 4096)

    def _init(self, p, block_size):
        self._p = p
        self._addr = p[2]
        self._size = p[3]
        self._bs = block_size
        self._cache = bytearray(_SECTOR) if block_size < _SECTOR else None

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None, block_size=4096):
        return [_make(p, block_size) for p in _ota.find(type, subtype, label)]

    def info(self):
        p = self._p
        return (p[0], p[1], p[2], p[3], p[4], bool(p[5] & 1))

    def __repr__(self):
        p = self._p
        return "<Partition type=%u, subtype=%u, address=%u, size=%u, label=%s, encrypted=%u>" % (
            p[0], p[1], p[2], p[3], p[4], p[5] & 1)

    def _range(self, off, n):
        # esp_partition_read/write range checks.
        if off > self._size:
            raise _esp_err(_INVALID_ARG)
        if n > self._size - off:
            raise _esp_err(_INVALID_SIZE)

    def _check_erase(self, off, n):
        # esp_partition_erase_range()'s checks, in ESP-IDF's order.
        if self._p[5] & 2:
            raise _esp_err(_NOT_ALLOWED)
        self._range(off, n)
        if n % _SECTOR:
            raise _esp_err(_INVALID_SIZE)
        if off % _SECTOR:
            raise _esp_err(_INVALID_ARG)

    def _erase(self, off, n):
        self._check_erase(off, n)
        _fl.erase(self._addr + off, n)

    def readblocks(self, block_num, buf, offset=0):
        off = block_num * self._bs + offset
        self._range(off, len(buf))
        _fl.read(self._addr + off, buf)

    def writeblocks(self, block_num, buf, offset=None):
        if offset is not None:
            # Extended protocol: program only, no erase.
            off = block_num * self._bs + offset
            if self._p[5] & 2:
                raise _esp_err(_NOT_ALLOWED)
            self._range(off, len(buf))
            _fl.write(self._addr + off, buf)
            return
        off = block_num * self._bs
        if self._bs < _SECTOR:
            self._write_rmw(off, buf)
            return
        self._check_erase(off, len(buf))
        _fl.erase_program(self._addr + off, buf)

    def _write_rmw(self, off, buf):
        # block_size < 4096: read-modify-erase-write each touched sector through the cache.
        n = len(buf)
        done = 0
        c = self._cache
        while done < n:
            sec = (off + done) & ~(_SECTOR - 1)
            o = off + done - sec
            k = min(n - done, _SECTOR - o)
            self._range(sec, _SECTOR)
            _fl.read(self._addr + sec, c)
            c[o:o + k] = buf[done:done + k]
            self._erase(sec, _SECTOR)
            _fl.write(self._addr + sec, c)
            done += k

    def ioctl(self, cmd, arg):
        if 1 <= cmd <= 3:
            return 0
        if cmd == 4:
            return self._size // self._bs
        if cmd == 5:
            return self._bs
        if cmd == 6:
            if self._bs != _SECTOR:
                return -22
            self._erase(arg * _SECTOR, _SECTOR)
            return 0
        return None

    def set_boot(self):
        # esp_ota_set_boot_partition(): validate (app mode), then otadata.
        p = self._p
        if _ota.check_image(p) is not None:
            raise _esp_err(_VALIDATE_FAILED)
        if p[0] != _ota.TYPE_APP:
            raise _esp_err(_INVALID_ARG)
        if p[1] == 0:
            od = _ota.otadata()
            if od is None:
                raise _esp_err(_NOT_FOUND)
            _fl.erase(od[2], od[3])
            return
        _ota.rewrite_ota_data(p[1], _esp_err)

    def get_next_update(self):
        # esp_ota_get_next_update_partition(): the OTA slot after this one, else the first.
        slots = _ota.ota_slots()
        if not slots:
            raise OSError(_ENOENT)
        for i, p in enumerate(slots):
            if p[2] == self._addr:
                return _make(slots[(i + 1) % len(slots)], _SECTOR)
        return _make(slots[0], _SECTOR)

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        # esp_ota_mark_app_valid_cancel_rollback(): acts on the ACTIVE entry, not RUNNING.
        od = _ota.otadata()
        if od is None:
            raise _esp_err(_NOT_FOUND)
        e = _ota.read_entries(od)
        a = _ota.active(e)
        if a < 0 or not _ota.ota_slots():
            raise _esp_err(_ESP_FAIL)
        if e[a][1] != _ota.VALID:
            _ota.write_entry(od, a, e[a][0], _ota.VALID)


def idf_heap_info(capabilities):
    # Plausible fixed figures for an ESP32 without PSRAM (the simulator has no IDF heap).
    return [(7280, 4, 0, 4), (16648, 4, 4, 4), (94608, 80000, 65536, 70000),
            (15072, 15024, 14848, 15024), (113200, 90000, 65536, 80000)]


def sim_firmware():
    # Sim only: (slot label, version, behaviour) of the app image that booted, or None.
    return _ota.booted
