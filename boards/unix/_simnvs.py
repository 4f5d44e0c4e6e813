# otakit simulated ESP32: NVS storage for esp32.NVS, in the nvs partition of the flash image.
# MIT license; Copyright (c) 2026 otakit contributors
"""esp32.NVS over a small power-safe key/value log (not ESP-IDF's page format; see
docs/simulator.md).

Layout: the nvs partition is split into two halves. A half starts with a 16-byte header
`b"OSNV" + gen:u32 + crc32(first 8 bytes):u32 + 4 x 0xFF`; the valid header with the higher gen
is the active half. Records follow the header:
`0xA5, committed (0xFF = not yet, 0x00 = yes), len:u16, crc32(payload):u32, payload` with
payload `len(ns):u8, ns, len(key):u8, key, type:u8 (0 erased, 1 i32, 2 blob), value`.
- A set/erase appends one record (one write), then clears its committed byte (one write); a
  torn record is never committed, so it is ignored.
- When the active half is full (or holds a torn header), the live set is written to the other
  half after erasing it, and that half's header is written last: the header is the commit
  point, so a cut anywhere leaves either the old or the new half active.
- The active half is mirrored in RAM per process (one process per boot, the only writer),
  outside the device's heap budget: the simulator loads it before setting the budget aside
  (_load, from _simboot), as ESP-IDF keeps NVS's state in the IDF heap, not MicroPython's.
"""

import struct
import binascii
from micropython import const

import _simflash as fl
import _simota as ota

_SECTOR = const(4096)
_HDR = const(16)
NOT_FOUND = 0x1102
TYPE_MISMATCH = 0x1103
NOT_ENOUGH_SPACE = 0x1105
KEY_TOO_LONG = 0x1109
INVALID_LENGTH = 0x110C
VALUE_TOO_LONG = 0x110E
_NAMES = {NOT_FOUND: "ESP_ERR_NVS_NOT_FOUND", TYPE_MISMATCH: "ESP_ERR_NVS_TYPE_MISMATCH",
          NOT_ENOUGH_SPACE: "ESP_ERR_NVS_NOT_ENOUGH_SPACE",
          KEY_TOO_LONG: "ESP_ERR_NVS_KEY_TOO_LONG", INVALID_LENGTH: "ESP_ERR_NVS_INVALID_LENGTH",
          VALUE_TOO_LONG: "ESP_ERR_NVS_VALUE_TOO_LONG"}
MAX_BLOB = const(4000)

# State, made by _load() before the device's heap budget is set aside (_simboot), as ESP-IDF
# keeps NVS's page state in the IDF heap: nothing of it is on the device's GC heap. _mirror is
# the active half as the flash holds it (every append goes to both); lookups scan it.
_mirror = None  # bytearray: the active half
_spare = None  # bytearray: the other half, while it is made by a compaction
_rec = None  # bytearray: a record being made
_half = -1  # active half, -1 = none yet
_gen = 0
_pos = 0  # append offset within the active half
_dirty = False  # the active half holds garbage after _pos: compact before appending


def err(code):
    return OSError(-code, _NAMES[code])


def check_name(name):
    if len(name) > 15:
        raise err(KEY_TOO_LONG)


def _part():
    p = ota.find(ota.TYPE_DATA, 0x02)
    if not p:
        raise OSError(-0x1100 - 0x0F, "ESP_ERR_NVS_PART_NOT_FOUND")
    return p[0]


def _half_size(p):
    return (p[3] // 2) // _SECTOR * _SECTOR


def _header_gen(p, h):
    b = bytearray(_HDR)
    fl.read(p[2] + h * _half_size(p), b)
    if b[0:4] != b"OSNV" or struct.unpack("<I", b[8:12])[0] != binascii.crc32(b[0:8]):
        return -1
    return struct.unpack("<I", b[4:8])[0]


def _load():
    # Once per process (the simulator calls it at boot, before the budget; else the first use).
    global _mirror, _spare, _rec, _half, _gen, _pos, _dirty
    if _mirror is not None:
        return
    p = _part()
    hs = _half_size(p)
    _rec = bytearray(8 + 2 + 15 + 15 + 1 + MAX_BLOB)
    _spare = bytearray(hs)
    mirror = bytearray(hs)
    g0 = _header_gen(p, 0)
    g1 = _header_gen(p, 1)
    if g0 >= 0 or g1 >= 0:
        _half = 0 if g0 >= g1 else 1
        _gen = max(g0, g1)
        fl.read(p[2] + _half * hs, mirror)
        pos = _HDR
        while pos + 8 <= hs:
            if mirror[pos] == 0xFF and mirror[pos + 1] == 0xFF:
                break
            n = mirror[pos + 2] | (mirror[pos + 3] << 8)
            if mirror[pos] != 0xA5 or pos + 8 + n > hs:
                _dirty = True
                break
            pos += 8 + n
        _pos = pos
    _mirror = mirror


def _valid(pos):
    # The payload's (start, length) of the committed, intact record at pos, else None.
    m = _mirror
    if m[pos + 1] != 0x00:
        return None
    n = m[pos + 2] | (m[pos + 3] << 8)
    crc = m[pos + 4] | (m[pos + 5] << 8) | (m[pos + 6] << 16) | (m[pos + 7] << 24)
    if binascii.crc32(memoryview(m)[pos + 8:pos + 8 + n]) != crc:
        return None
    return pos + 8, n


def _names_at(s, nb, kb):
    # Whether the payload at s names namespace nb and key kb (bytes).
    m = _mirror
    i = len(nb)
    if m[s] != i or m[s + 1 + i] != len(kb):
        return False
    for j in range(i):
        if m[s + 1 + j] != nb[j]:
            return False
    s += 2 + i
    for j in range(len(kb)):
        if m[s + j] != kb[j]:
            return False
    return True


def _find(ns, key):
    # (type, value start, value length) of the live entry ns/key, or None; the last record
    # naming it counts (type 0: erased).
    nb = ns.encode()
    kb = key.encode()
    found = None
    pos = _HDR
    while pos < _pos:
        n = _mirror[pos + 2] | (_mirror[pos + 3] << 8)
        if _mirror[pos] == 0xA5 and _names_at(pos + 8, nb, kb):
            v = _valid(pos)
            if v is not None:
                found = v
        pos += 8 + n
    if found is None:
        return None
    s, n = found
    k = s + 2 + len(nb) + len(kb)
    t = _mirror[k]
    return None if t == 0 else (t, k + 1, s + n - k - 1)


def _i32(s):
    m = _mirror
    v = m[s] | (m[s + 1] << 8) | (m[s + 2] << 16) | (m[s + 3] << 24)
    return v - 0x100000000 if v & 0x80000000 else v


def _record(ns, key, t, value):
    # The committed record's length, made in _rec.
    r = _rec
    nb = ns.encode()
    kb = key.encode()
    o = 8
    r[o] = len(nb)
    r[o + 1:o + 1 + len(nb)] = nb
    o += 1 + len(nb)
    r[o] = len(kb)
    r[o + 1:o + 1 + len(kb)] = kb
    o += 1 + len(kb)
    r[o] = t
    o += 1
    if t == 1:
        struct.pack_into("<i", r, o, value)
        o += 4
    elif t == 2:
        r[o:o + len(value)] = value
        o += len(value)
    struct.pack_into("<BBHI", r, 0, 0xA5, 0, o - 8, binascii.crc32(memoryview(r)[8:o]))
    return o


def _compact(p, extra):
    # Write the live set (plus the record of length extra in _rec) to the other half; its
    # header last (the commit point). The live set: every intact record that is the last one
    # naming its entry and does not erase it.
    global _mirror, _spare, _half, _gen, _pos, _dirty
    m = _mirror
    live = []
    total = _HDR + extra
    pos = _HDR
    while pos < _pos:
        n = m[pos + 2] | (m[pos + 3] << 8)
        v = _valid(pos) if m[pos] == 0xA5 else None
        if v is not None:
            s = v[0]
            nb = bytes(m[s + 1:s + 1 + m[s]])
            kb = bytes(m[s + 2 + m[s]:s + 2 + m[s] + m[s + 1 + m[s]]])
            later = False
            q = pos + 8 + n
            while q < _pos and not later:
                later = m[q] == 0xA5 and _names_at(q + 8, nb, kb) and _valid(q) is not None
                q += 8 + (m[q + 2] | (m[q + 3] << 8))
            if not later and m[s + 2 + len(nb) + len(kb)] != 0:
                live.append(pos)
                total += 8 + n
        pos += 8 + n
    hs = _half_size(p)
    if total > hs:
        raise err(NOT_ENOUGH_SPACE)
    h = 0 if _half != 0 else 1
    base = p[2] + h * hs
    new = _spare
    for i in range(hs):
        new[i] = 0xFF
    fl.erase(base, hs)
    pos = _HDR
    for r in live:
        n = 8 + (m[r + 2] | (m[r + 3] << 8))
        new[pos:pos + n] = m[r:r + n]
        fl.write(base + pos, memoryview(new)[pos:pos + n])
        pos += n
    if extra:
        new[pos:pos + extra] = _rec[:extra]
        fl.write(base + pos, memoryview(new)[pos:pos + extra])
        pos += extra
    hdr = b"OSNV" + struct.pack("<I", _gen + 1)
    hdr += struct.pack("<I", binascii.crc32(hdr))
    new[0:12] = hdr
    fl.write(base, hdr)
    _mirror, _spare = new, m
    _half = h
    _gen += 1
    _pos = pos
    _dirty = False


def _append(ns, key, t, value):
    # One record: written uncommitted, then its committed byte cleared (two writes).
    global _pos
    p = _part()
    n = _record(ns, key, t, value)
    if _half < 0 or _dirty or _pos + n > _half_size(p):
        _compact(p, n)
        return
    addr = p[2] + _half * _half_size(p) + _pos
    _rec[1] = 0xFF
    fl.write(addr, memoryview(_rec)[:n])
    fl.write(addr + 1, b"\x00")
    _rec[1] = 0x00
    _mirror[_pos:_pos + n] = _rec[:n]
    _pos += n


def put(ns, key, t, value):
    check_name(key)
    if t == 2 and len(value) > MAX_BLOB:
        raise err(VALUE_TOO_LONG)
    _load()
    e = _find(ns, key)
    if e is not None and e[0] == t:  # ESP-IDF does not rewrite an identical value
        if t == 1 and _i32(e[1]) == value:
            return
        if t == 2 and e[2] == len(value) and _mirror[e[1]:e[1] + e[2]] == value:
            return
    _append(ns, key, t, value)


def get(ns, key, t):
    # An i32's value, or a blob's (start, length) in _mirror.
    check_name(key)
    _load()
    e = _find(ns, key)
    if e is None:
        raise err(NOT_FOUND)
    if e[0] != t:
        raise err(TYPE_MISMATCH)
    return _i32(e[1]) if t == 1 else (e[1], e[2])


def erase(ns, key):
    check_name(key)
    _load()
    if _find(ns, key) is None:
        raise err(NOT_FOUND)
    _append(ns, key, 0, None)


class NVS:
    # esp32.NVS(namespace): each set/erase is persisted atomically at once; commit() is a
    # no-op, as in ESP-IDF's NVSHandleSimple::commit (see docs/simulator.md).
    def __init__(self, namespace):
        check_name(namespace)
        self._ns = namespace

    def __repr__(self):
        return "<NVS namespace>"

    def set_i32(self, key, value):
        put(self._ns, key, 1, int(value))

    def get_i32(self, key):
        return get(self._ns, key, 1)

    def set_blob(self, key, value):
        put(self._ns, key, 2, bytes(value))

    def get_blob(self, key, buf):
        s, n = get(self._ns, key, 2)
        if n > len(buf):
            raise err(INVALID_LENGTH)
        buf[:n] = memoryview(_mirror)[s:s + n]
        return n

    def erase_key(self, key):
        erase(self._ns, key)

    def commit(self):
        pass
