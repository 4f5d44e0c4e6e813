# ota/slot.py: write an image into the spare OTA slot, read it back, and switch boot.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Invariants:
# - the target is always Partition(RUNNING).get_next_update(): never the running slot;
# - blocks are written with 2-argument writeblocks (erase + write), one 4 KB block at a time,
#   from one buffer the caller preallocates; nothing here allocates per block;
# - set_boot() is called only by switch(), and only after verify(): every byte of the image was
#   read back from flash and its SHA-256 equals the signed one (ota.download.Writer reads each
#   block back right after writing it and hashes what it read, a resumed download's kept prefix
#   is hashed by hash_range into that same SHA-256, which the writer's caller checks; verify
#   hashes the whole range itself when any byte was not read back), and the header, read back,
#   is an app for this chip.
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
