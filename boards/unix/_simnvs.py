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
- Values are cached per process (one process per boot, the only writer).
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

_items = None  # {(ns, key): (type, value)} of live entries
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


def _scan(p, h):
    # Read the records of half h into _items; set _pos and _dirty.
    global _pos, _dirty
    base = p[2] + h * _half_size(p)
    end = _half_size(p)
    pos = _HDR
    hb = bytearray(8)
    while pos + 8 <= end:
        fl.read(base + pos, hb)
        if hb[0] == 0xFF and hb[1] == 0xFF:
            break
        n = struct.unpack("<H", hb[2:4])[0]
        if hb[0] != 0xA5 or pos + 8 + n > end:
            _dirty = True
            break
        if hb[1] == 0x00:
            payload = bytearray(n)
            fl.read(base + pos + 8, payload)
            if binascii.crc32(payload) == struct.unpack("<I", hb[4:8])[0]:
                _apply(payload)
        pos += 8 + n
    _pos = pos


def _apply(payload):
    i = payload[0] + 1
    ns = bytes(payload[1:i]).decode()
    k = payload[i] + i + 1
    key = bytes(payload[i + 1:k]).decode()
    t = payload[k]
    if t == 0:
        _items.pop((ns, key), None)
    elif t == 1:
        _items[(ns, key)] = (1, struct.unpack("<i", payload[k + 1:k + 5])[0])
    else:
        _items[(ns, key)] = (2, bytes(payload[k + 1:]))


def _load():
    global _items, _half, _gen
    if _items is not None:
        return
    _items = {}
    p = _part()
    g0 = _header_gen(p, 0)
    g1 = _header_gen(p, 1)
    if g0 < 0 and g1 < 0:
        return
    _half = 0 if g0 >= g1 else 1
    _gen = max(g0, g1)
    _scan(p, _half)


def _record(ns, key, t, value, committed):
    nb = ns.encode()
    kb = key.encode()
    if t == 1:
        vb = struct.pack("<i", value)
    elif t == 2:
        vb = value
    else:
        vb = b""
    payload = bytes([len(nb)]) + nb + bytes([len(kb)]) + kb + bytes([t]) + vb
    return (struct.pack("<BBHI", 0xA5, 0 if committed else 0xFF, len(payload),
                        binascii.crc32(payload)) + payload)


def _compact(p, extra):
    # Write the live set (plus `extra`) to the other half; its header last (the commit point).
    global _half, _gen, _pos, _dirty
    recs = [_record(ns, key, t, v, True) for (ns, key), (t, v) in _items.items()]
    if extra is not None:
        recs.append(extra)
    hs = _half_size(p)
    if _HDR + sum(len(r) for r in recs) > hs:
        raise err(NOT_ENOUGH_SPACE)
    h = 0 if _half != 0 else 1
    base = p[2] + h * hs
    fl.erase(base, hs)
    pos = _HDR
    for r in recs:
        fl.write(base + pos, r)
        pos += len(r)
    hdr = b"OSNV" + struct.pack("<I", _gen + 1)
    fl.write(base, hdr + struct.pack("<I", binascii.crc32(hdr)))
    _half = h
    _gen += 1
    _pos = pos
    _dirty = False


def _append(ns, key, t, value):
    global _pos
    p = _part()
    rec = _record(ns, key, t, value, False)
    if _half < 0 or _dirty or _pos + len(rec) > _half_size(p):
        _compact(p, _record(ns, key, t, value, True))
    else:
        addr = p[2] + _half * _half_size(p) + _pos
        fl.write(addr, rec)
        fl.write(addr + 1, b"\x00")
        _pos += len(rec)
    if t == 0:
        _items.pop((ns, key), None)
    else:
        _items[(ns, key)] = (t, value)


def put(ns, key, t, value):
    check_name(key)
    if t == 2 and len(value) > MAX_BLOB:
        raise err(VALUE_TOO_LONG)
    _load()
    if _items.get((ns, key)) == (t, value):
        return  # ESP-IDF does not rewrite an identical value
    _append(ns, key, t, value)


def get(ns, key, t):
    check_name(key)
    _load()
    item = _items.get((ns, key))
    if item is None:
        raise err(NOT_FOUND)
    if item[0] != t:
        raise err(TYPE_MISMATCH)
    return item[1]


def erase(ns, key):
    check_name(key)
    _load()
    if (ns, key) not in _items:
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
        v = get(self._ns, key, 2)
        if len(v) > len(buf):
            raise err(INVALID_LENGTH)
        buf[:len(v)] = v
        return len(v)

    def erase_key(self, key):
        erase(self._ns, key)

    def commit(self):
        pass
