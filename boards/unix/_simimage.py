# otakit simulated ESP32: esp_image_verify() on an image in flash (ESP-IDF v5.5.2).
# MIT license; Copyright (c) 2026 otakit contributors
"""The app-image check of ground truth 4.3 item 6, and the bootloader's load-address check.

Invariants: app mode (set_boot) checks magic, chip id, revision, segment count and lengths,
mapped-segment alignment, checksum, partition fit and the appended SHA-256; `boot=True` adds the
check that loaded segments do not overlap the bootloader's RAM (ESP32 regions only). Reads go
through the flash layer's scratch buffer, so only small objects are allocated.
"""

import struct
import micropython

import _simflash as fl
import _simota as ota

# chip id -> (mapped ranges, ranges a loaded segment must not touch in the bootloader)
_CHIPS = {
    0: (((0x3F400000, 0x3F800000), (0x400D0000, 0x40400000)),
        ((0x3FFF0000, 0x3FFF6000, "bootloader data"), (0x40078000, 0x40080000,
                                                        "bootloader code"))),
    5: (((0x3C000000, 0x3C800000), (0x42000000, 0x42800000)), ()),
    9: (((0x3C000000, 0x3E000000), (0x42000000, 0x44000000)), ()),
}
_SECTOR = 4096


@micropython.viper
def _xor(buf, n: int) -> int:
    p = ptr8(buf)
    x = 0
    i = 0
    while i < n:
        x ^= p[i]
        i += 1
    return x


def _mapped(load, ranges):
    for lo, hi in ranges:
        if lo <= load < hi:
            return True
    return False


def _segments(part, hdr, boot, buf):
    # Walk the segments: lengths, mapping alignment, bootloader overlap; return (end, xor).
    base, psize = part[2], part[3]
    mapped, forbidden = _CHIPS.get(struct.unpack("<H", hdr[12:14])[0], ((), ()))
    pos = 24
    x = 0xEF
    sh = bytearray(8)
    for i in range(hdr[1]):
        if pos + 8 > psize:
            return "image length exceeds partition", 0
        fl.read(base + pos, sh)
        load, dlen = struct.unpack("<II", sh)
        pos += 8
        if dlen % 4 or dlen >= 0x1000000 or pos + dlen > psize:
            return "invalid segment length 0x%x" % dlen, 0
        if _mapped(load, mapped):
            if (base + pos) % 0x10000 != load % 0x10000:
                return "Segment %d load address 0x%08x, doesn't match data 0x%08x" % (
                    i, load, base + pos), 0
        elif boot and load:
            for lo, hi, what in forbidden:
                if load < hi and load + dlen > lo:
                    return "Segment %d 0x%08x-0x%08x invalid: overlaps %s" % (
                        i, load, load + dlen, what), 0
        done = 0
        while done < dlen:
            k = min(dlen - done, len(buf))
            mv = memoryview(buf)[:k]
            fl.read(base + pos + done, mv)
            x ^= _xor(buf, k)
            done += k
        pos += dlen
    return pos, x


def check(part, boot=False):
    # esp_image_verify on the image at the start of `part`. Returns None or an error message.
    import hashlib

    b = ota.board()
    hdr = bytearray(24)
    fl.read(part[2], hdr)
    if hdr[0] != 0xE9:
        return "image at 0x%x has invalid magic byte (nothing flashed here)" % part[2]
    chip_id = struct.unpack("<H", hdr[12:14])[0]
    if chip_id != int(b["chip_id"]):
        return "Mismatch chip id, expected %s, found %d" % (b["chip_id"], chip_id)
    rev = int(b["rev"])
    lo, hi = struct.unpack("<HH", hdr[15:19])
    if rev < lo or (hi not in (0, 0xFFFF) and rev > hi):
        return "chip revision v%d.%d outside image range" % (rev // 100, rev % 100)
    if hdr[1] > 16:
        return "Too many segments (%d)" % hdr[1]
    buf = fl._scratch  # no 4 KiB allocation: set_boot costs a board no GC heap
    end, x = _segments(part, hdr, boot, buf)
    if isinstance(end, str):
        return end
    end += 15 - end % 16  # padding so that (len + 1) % 16 == 0, then the checksum byte
    if end + 1 + (32 if hdr[23] == 1 else 0) > part[3]:
        return "image length exceeds partition"
    cb = bytearray(1)
    fl.read(part[2] + end, cb)
    if cb[0] != x & 0xFF:
        return "Checksum failed. Calculated 0x%x read 0x%x" % (x & 0xFF, cb[0])
    if hdr[23] == 1:
        h = hashlib.sha256()
        done = 0
        n = end + 1
        while done < n:
            k = min(n - done, _SECTOR)
            mv = memoryview(buf)[:k]
            fl.read(part[2] + done, mv)
            h.update(mv)
            done += k
        stored = bytearray(32)
        fl.read(part[2] + n, stored)
        if h.digest() != bytes(stored):
            return "Image hash failed - image is corrupt"
    return None


def image_sha256(part):
    # (length, SHA-256) of the image bytes at the start of `part` as its header lays them out
    # (segments, padding, checksum byte, appended hash), for the host's oracle; None when the
    # header does not describe an image that fits. Allocates small objects only.
    import hashlib

    hdr = bytearray(24)
    fl.read(part[2], hdr)
    if hdr[0] != 0xE9 or hdr[1] > 16:
        return None
    pos = 24
    sh = bytearray(8)
    for _ in range(hdr[1]):
        if pos + 8 > part[3]:
            return None
        fl.read(part[2] + pos, sh)
        pos += 8 + struct.unpack("<II", sh)[1]
    n = pos + 15 - pos % 16 + 1 + (32 if hdr[23] == 1 else 0)
    if n > part[3]:
        return None
    buf = fl._scratch
    h = hashlib.sha256()
    done = 0
    while done < n:
        k = min(n - done, _SECTOR)
        mv = memoryview(buf)[:k]
        fl.read(part[2] + done, mv)
        h.update(mv)
        done += k
    return n, h.digest()
