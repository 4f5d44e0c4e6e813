# otakit simulated ESP32: partition table, otadata and app-image rules (ESP-IDF v5.5.2).
# MIT license; Copyright (c) 2026 otakit contributors
"""One implementation of the ESP-IDF rules, shared by `esp32` and the simulated bootloader.

Invariants (docs/simulator.md, ground truth sections 2, 4 and 5):
- the partition table is the binary one at 0x8000 in the image (32-byte entries, an MD5 entry);
  "vfs" (data/fat) is registered after the last partition up to the end of flash, as
  MicroPython >= 1.26 does, when the table has no "vfs"/"ffat";
- otadata entries are `<I20sII` at sector 0 and 1 of the otadata partition; every entry write
  erases its sector and writes 32 bytes; the active entry is the valid one with the higher seq,
  entry 0 on a tie;
- `check_image` is esp_image_verify: app mode for set_boot (no load-address check), and with
  `boot=True` the bootloader's extra check that loaded segments do not overlap the bootloader.
Everything here allocates; none of it is on a hot path.
"""

import binascii
import struct
from micropython import const

import _simflash as fl

PT_ADDR = const(0x8000)
_PT_LEN = const(0xC00)
_MARKER_ADDR = const(0x7F00)
_SECTOR = const(4096)
TYPE_APP = const(0)
TYPE_DATA = const(1)
SUBTYPE_OTA = const(0)  # data/ota = otadata
NEW = const(0)
PENDING = const(1)
VALID = const(2)
INVALID = const(3)
ABORTED = const(4)
BLANK = 0xFFFFFFFF
STATE_NAMES = {0: "NEW", 1: "PENDING_VERIFY", 2: "VALID", 3: "INVALID", 4: "ABORTED",
               BLANK: "UNDEFINED"}

_table = None
_board = None
running = None  # flash address of the app the bootloader booted (set by _simboot)
booted = None  # (label, version, behaviour) of that app


def board():
    # The board record the host wrote at 0x7F00: {"board", "chip", "chip_id", "rev", "uid"}.
    global _board
    if _board is None:
        fl.open_flash()
        b = bytearray(256)
        fl.read(_MARKER_ADDR, b)
        d = {"board": "esp32", "chip": "esp32", "chip_id": "0", "rev": "300",
             "uid": "000000000000"}
        text = bytes(b).split(b"\n")
        if text[0] == b"OTAKIT-SIM":
            for item in text[1].decode().split():
                k, _, v = item.partition("=")
                d[k] = v
        _board = d
    return _board


def table():
    # [(type, subtype, addr, size, label, flags)] in table order, then the runtime "vfs".
    global _table
    if _table is not None:
        return _table
    fl.open_flash()
    raw = bytearray(_PT_LEN)
    fl.read(PT_ADDR, raw)
    parts = []
    for off in range(0, _PT_LEN, 32):
        if raw[off] != 0xAA or raw[off + 1] != 0x50:
            break
        _, t, st, addr, size, label, flags = struct.unpack("<2sBBII16sI", raw[off:off + 32])
        parts.append((t, st, addr, size, label.split(b"\0")[0].decode(), flags))
    if not [p for p in parts if p[4] in ("vfs", "ffat")]:
        end = 0
        for p in parts:
            end = max(end, p[2] + p[3])
        if end < fl.size:
            parts.append((TYPE_DATA, 0x81, end, fl.size - end, "vfs", 0))
    _table = parts
    return parts


def table_md5_ok():
    # The bootloader's check of the MD5 entry that follows the last partition entry.
    import hashlib

    raw = bytearray(_PT_LEN)
    fl.read(PT_ADDR, raw)
    for off in range(0, _PT_LEN, 32):
        if raw[off] == 0xEB and raw[off + 1] == 0xEB:
            return hashlib.md5(raw[:off]).digest() == bytes(raw[off + 16:off + 32])
        if raw[off] != 0xAA:
            return False
    return False


def find(ptype, subtype=0xFF, label=None):
    return [p for p in table()
            if p[0] == ptype and (subtype == 0xFF or p[1] == subtype)
            and (label is None or p[4] == label)]


def otadata():
    p = find(TYPE_DATA, SUBTYPE_OTA)
    return p[0] if p else None


def ota_slots():
    # The app side's OTA slots: ota_0, ota_1, ... counted contiguously from ota_0.
    out = []
    for i in range(16):
        p = find(TYPE_APP, 0x10 + i)
        if not p:
            break
        out.append(p[0])
    return out


def factory():
    p = find(TYPE_APP, 0x00)
    return p[0] if p else None


def crc(seq):
    return binascii.crc32(struct.pack("<I", seq), 0xFFFFFFFF)


def read_entries(part):
    # Both otadata entries as (seq, state, crc).
    out = []
    b = bytearray(32)
    for i in (0, 1):
        fl.read(part[2] + i * _SECTOR, b)
        seq, _, state, c = struct.unpack("<I20sII", b)
        out.append((seq, state, c))
    return out


def entry_valid(e):
    return e[0] != BLANK and e[1] not in (INVALID, ABORTED) and e[2] == crc(e[0])


def entry_initial(e):
    return e[0] == BLANK or e[2] != crc(e[0])


def active(entries):
    # Index of the active entry (highest valid seq, entry 0 on a tie), or -1.
    v0 = entry_valid(entries[0])
    v1 = entry_valid(entries[1])
    if v0 and v1:
        return 0 if entries[0][0] >= entries[1][0] else 1
    return 0 if v0 else (1 if v1 else -1)


def write_entry(part, idx, seq, state):
    # Rewrite one otadata entry: erase its sector, then write 32 bytes (2+ mutating ops).
    addr = part[2] + idx * _SECTOR
    fl.erase(addr, _SECTOR)
    fl.write(addr, struct.pack("<I20sII", seq, b"\xff" * 20, state, crc(seq)))


def rewrite_state(part, idx, state):
    # The bootloader's write_otadata(): the entry as read (seq, label, crc), new state.
    addr = part[2] + idx * _SECTOR
    b = bytearray(32)
    fl.read(addr, b)
    b[24:28] = struct.pack("<I", state)
    fl.erase(addr, _SECTOR)
    fl.write(addr, b)


def slot_of_seq(seq, n):
    return (seq - 1) % n


def app_desc(part):
    # (version, project_name) from the app descriptor at image offset 0x20, or None.
    b = bytearray(80)
    fl.read(part[2] + 0x20, b)
    if struct.unpack("<I", b[0:4])[0] != 0xABCD5432:
        return None
    return (bytes(b[16:48]).split(b"\0")[0].decode(), bytes(b[48:80]).split(b"\0")[0].decode())


def check_image(part, boot=False):
    # esp_image_verify(); see _simimage. Returns None or an error message.
    import _simimage

    return _simimage.check(part, boot)


def boot_partition():
    # esp_ota_get_boot_partition(): the active entry's slot, else factory, else ota_0.
    od = otadata()
    if od is None:
        return None
    slots = ota_slots()
    e = read_entries(od)
    a = active(e)
    if a >= 0 and slots:
        return slots[slot_of_seq(e[a][0], len(slots))]
    f = factory()
    return f if f else (slots[0] if slots else None)


def rewrite_ota_data(subtype, err):
    # esp_rewrite_ota_data(): write {new_seq, NEW} into the non-active sector; err(code)
    # makes the OSError.
    if not 0x10 <= subtype < 0x20:
        raise err(0x102)
    od = otadata()
    if od is None:
        raise err(0x105)
    n = len(ota_slots())
    slot = subtype & 0x0F
    if slot >= n:
        raise err(0x102)
    e = read_entries(od)
    a = active(e)
    if a >= 0:
        seq = e[a][0]
        i = 0
        while (slot + 1) % n + i * n < seq:
            i += 1
        write_entry(od, (~a) & 1, (slot + 1) % n + i * n, NEW)
    else:
        write_entry(od, 0, slot + 1, NEW)
