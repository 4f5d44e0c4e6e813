# ota/slot.py: write an image into the spare OTA slot, read it back, and switch boot.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Invariants:
# - the target is always Partition(RUNNING).get_next_update(): never the running slot;
# - the image's blocks are written with 2-argument writeblocks (erase + write), one 4 KB block
#   at a time, from one buffer the caller preallocates; nothing here allocates per block;
# - set_boot() is called only by switch(), and only after verify(): every byte of the image was
#   read back from flash and its SHA-256 equals the signed one (ota.download.Writer reads each
#   block back right after writing it and hashes what it read, a resumed download's kept prefix
#   is hashed by hash_range into that same SHA-256, which the writer's caller checks; verify
#   hashes the whole range itself when any byte was not read back), and the header, read back,
#   is an app for this chip.
# Progress records (ota.state keeps a download's resume point with them, Slot.record): when the
# image ends before the slot's last 4 KB sector (and is at most _MARKS x 64 KB), that sector
# holds them: 128 places of 32 bytes, each programmed with 3-argument writeblocks (no erase; NOR
# flash keeps old AND new) into the sector erased (ioctl 6) before the payload's download began.
# - mark i, at place i: "the image's bytes up to (i + 1) x 64 KB, or its end, are in the slot and
#   were read back", written once that block is; the marks count as a run from mark 0;
# - a stop, at the places from 127 down (never below the image's marks): "the first k 4 KB
#   blocks are", written when a download stops between two marks (a lost connection); each at a
#   new place, one below the last, and after a reset one place lower still (the place below the
#   lowest valid stop may hold one a cut tore). Each stop counts on its own.
# The resume point is the furthest any of them gives. A record's 32 bytes are a function of its
# payload's 8-byte tag and its value only (_fill: tag, two bytes (i and 255 - i, or k), a magic
# "otakit" or "otstop", twice), and a record counts only when all 32 read back exactly so: one
# torn by a power cut (its second half still erased, or any bits left unprogrammed), another
# payload's, or a mark at another index never does. Each place is written once after the erase,
# except a mark a cut tore, which the resumed download writes again with the same 32 bytes: that
# programs only bits the record clears, so the result is the whole record. Under ESP32 flash
# encryption the same holds: each write is one 32-byte record at a 32-byte aligned offset (whole
# 16/32-byte encryption blocks, never shared with other data), never rewritten with other bytes
# (the same plaintext at the same address encrypts to the same ciphertext), and an erased place
# reads back (decrypted) as no valid record.
import hashlib

from .errors import FlashError

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython, for host-side tests and fuzzing
    def const(x):
        return x


_BLOCK = const(4096)
_APP_MAGIC = const(0xE9)
_MARK = const(32)  # bytes per progress mark
_MARKS = const(128)  # records in the 4 KB sector: 128 marks x 64 KB = 8 MB
_MAGIC_MARK = b"otakit"
_MAGIC_STOP = b"otstop"


def app_header_problem(b, chip_id):
    # b: at least the first 0x24 bytes of an image. Returns None when it looks like a bootable app
    # for this chip, else a short reason. A full firmware.bin starts with the bootloader, whose
    # descriptor at 0x20 is not the app descriptor, so it is refused here.
    if len(b) < 0x24 or b[0] != _APP_MAGIC:
        return "bad magic"
    if b[12] | (b[13] << 8) != chip_id:
        return "image is for chip id %d, this board is %d" % (b[12] | (b[13] << 8), chip_id)
    if b[1] > 16 or b[23] not in (0, 1):
        return "bad header"
    if b[0x20] != 0x32 or b[0x21] != 0x54 or b[0x22] != 0xCD or b[0x23] != 0xAB:
        return "no app descriptor at 0x20 (a full firmware.bin?)"
    return None


def _fill(rec, tag, a, b, magic):
    # A 32-byte progress record: tag (8 bytes), a, b, magic (6 bytes), twice.
    for h in (0, 16):
        for j in range(8):
            rec[h + j] = tag[j]
        rec[h + 8] = a
        rec[h + 9] = b
        for j in range(6):
            rec[h + 10 + j] = magic[j]


def _same(buf, place, rec):
    # Whether the record at place of the sector in buf is rec, all 32 bytes.
    o = place * _MARK
    for j in range(_MARK):
        if buf[o + j] != rec[j]:
            return False
    return True


async def hash_partition(part, size, buf, h=None):
    # SHA-256 of the first `size` bytes of a partition, read through buf (4 KB); adds to h.
    # Yields after every block, so the app's tasks run while a slot is read back.
    import asyncio
    if h is None:
        h = hashlib.sha256()
    mv = memoryview(buf)
    block = 0
    while size > 0:
        n = _BLOCK if size >= _BLOCK else size
        part.readblocks(block, buf)
        h.update(mv[:n])
        size -= n
        block += 1
        await asyncio.sleep_ms(0)
    return h


class Slot:
    # The spare OTA partition, opened for one install. read_back: how many bytes from the slot's
    # start were read back from flash and hashed since it was opened (hash_range, or
    # ota.download.Writer, which sets it).
    def __init__(self, esp32):
        try:
            self.part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()
        except OSError as e:
            raise FlashError("NO_SLOT", "no OTA partition to update into (%s)" % e)
        info = self.part.info()
        self.address = info[2]
        self.size = info[3]
        self.label = info[4]
        self.read_back = 0
        self.mb = -1  # the block of the progress records (marks()), -1: none

    def marks(self, size):
        # Whether an image of size bytes leaves the slot's last sector to progress records;
        # sets mb (that sector's block, else -1), end (size) and nm (its marks).
        n = self.size // _BLOCK - 1
        self.mb = n if size <= n * _BLOCK and size <= _MARKS << 16 else -1
        self.end = size
        self.nm = (size + 0xFFFF) >> 16
        return self.mb >= 0

    def scan(self, tag, buf, rec):
        # The resume point the records of payload tag give (0: none), read through buf (4 KB):
        # the run of its marks from mark 0, or its furthest stop, whichever is further; sets n
        # (that run) and stop (the place of the next stop: one below the lowest, since the
        # place below it may hold a stop a cut tore, never to be rewritten with other bytes).
        # rec: a 32-byte scratch buffer.
        self.part.readblocks(self.mb, buf)
        n = 0
        while n < self.nm:
            _fill(rec, tag, n, 255 - n, _MAGIC_MARK)
            if not _same(buf, n, rec):
                break
            n += 1
        self.n = n
        off = n << 16
        off = off if off < self.end else self.end
        low = p = _MARKS
        while p > self.nm:
            p -= 1
            o = p * _MARK
            if buf[o + 15] == 0x70:  # "p", the last byte of "otstop": it may be a stop
                _fill(rec, tag, buf[o + 8], buf[o + 9], _MAGIC_STOP)
                k = (buf[o + 8] | (buf[o + 9] << 8)) * _BLOCK
                if _same(buf, p, rec) and k <= self.end:
                    low = p
                    off = k if k > off else off
        self.stop = low - 2
        return off

    def erase_marks(self):
        try:
            r = self.part.ioctl(6, self.mb)
        except OSError as e:
            r = e
        if r:
            raise FlashError("WRITE_FAILED", "erasing the progress records: %s" % r)
        self.n = 0
        self.stop = _MARKS - 1

    def record(self, done, tag, rec):
        # Records that the image's bytes [0, done) of payload tag are in the slot and read back
        # (rec: a 32-byte buffer the record is made in): at a multiple of 64 KB or the image's
        # end, the marks up to done's; else (a download that stopped between two marks) a stop
        # at the next place, False when no place is left.
        if not done & 0xFFFF or done == self.end:
            i = (done - 1) >> 16
            while self.n <= i:
                _fill(rec, tag, self.n, 255 - self.n, _MAGIC_MARK)
                self._program(self.n, rec)
                self.n += 1
            return True
        p = self.stop
        if p < self.nm:
            return False
        k = done // _BLOCK
        _fill(rec, tag, k & 255, k >> 8, _MAGIC_STOP)
        self._program(p, rec)
        self.stop = p - 1
        return True

    def _program(self, place, rec):
        try:
            self.part.writeblocks(self.mb, rec, place * _MARK)
        except OSError as e:
            raise FlashError("WRITE_FAILED", "progress record %d: %s" % (place, e))

    def write_block(self, block_num, buf):
        # buf is a full 4 KB block (pad the last one with 0xFF); erases then writes.
        try:
            self.part.writeblocks(block_num, buf)
        except OSError as e:
            raise FlashError("WRITE_FAILED", "block %d: %s" % (block_num, e))

    async def hash_range(self, size, buf, h=None):
        # SHA-256 of the first `size` bytes of the slot, read back through buf (4 KB). The
        # caller compares the digest (or its continuation) with the signed one.
        h = await hash_partition(self.part, size, buf, h)
        self.read_back = size  # a prefix: from the slot's start
        return h

    async def verify(self, size, sha256, chip_id, buf):
        # Check the written range is the signed, bootable image. When every byte was read back
        # (read_back) into the SHA-256 the download checked, only the header is read here; else
        # the whole range is hashed from flash and compared with the signed SHA-256.
        if self.read_back < size and \
                (await hash_partition(self.part, size, buf)).digest() != sha256:
            raise FlashError("READBACK_MISMATCH", "the image read back from %s differs from the "
                             "signed SHA-256" % self.label)
        self.check_header(chip_id, buf)

    def check_header(self, chip_id, buf):
        # The written image's header, read back from flash, is an app for this chip.
        self.part.readblocks(0, buf)
        problem = app_header_problem(buf, chip_id)
        if problem:
            raise FlashError("BAD_IMAGE", problem)

    def switch(self):
        # Make the verified slot the one the bootloader tries next (as NEW: a trial boot).
        try:
            self.part.set_boot()
        except OSError as e:
            raise FlashError("SET_BOOT_FAILED", "set_boot refused %s: %s" % (self.label, e))
