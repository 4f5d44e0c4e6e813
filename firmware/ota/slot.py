# ota/slot.py: the spare OTA slot an install writes its image into, and reads back.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Invariants:
# - the target is always Partition(RUNNING).get_next_update(): never the running slot;
# - blocks are written with 2-argument writeblocks (erase + write), one 4 KB block at a time,
#   from one buffer the caller preallocates; nothing here allocates per block;
# - set_boot() is called only by ota.finish.switch(), and only after ota.finish.verify(): every
#   byte of the image was read back from flash and its SHA-256 equals the signed one
#   (ota.download.Writer reads each block back right after writing it and hashes what it read, a
#   resumed download's kept prefix is hashed by hash_range into that same SHA-256, which the
#   writer's caller checks; verify hashes the whole range itself when any byte was not read
#   back), and the header, read back, is an app for this chip.
# The checks and the switch are in ota.finish, loaded only for an install's last steps.
import hashlib

from .errors import FlashError

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython, for host-side tests and fuzzing
    def const(x):
        return x


_BLOCK = const(4096)
_APP_MAGIC = const(0xE9)


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
