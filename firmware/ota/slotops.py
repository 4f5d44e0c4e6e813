# ota/slotops.py: the second half of ota.slot: what runs once an image is in the slot.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Called as methods of an ota.slot.Slot (slot.verify(...) runs verify(slot, ...) here, through
# Slot.__getattr__), loaded once the payload is in (ota.release() has dropped the download's
# code by then) and dropped with the install phase, so that none of this code is in the heap
# while a payload streams in (the agent's peak of RAM). The invariants are ota.slot's.
from .errors import FlashError


async def verify(slot, size, sha256, chip_id, buf):
    # Check the written range is the signed, bootable image. When every byte was read back
    # (read_back) into the SHA-256 the download checked, only the header is read here; else
    # the whole range is hashed from flash (Slot.hash_range) and compared with the signed
    # SHA-256.
    if slot.read_back < size and (await slot.hash_range(size, buf)).digest() != sha256:
        raise FlashError("READBACK_MISMATCH", "the image read back from %s differs from the "
                         "signed SHA-256" % slot.label)
    slot.check_header(chip_id, buf)


def switch(slot):
    # Make the verified slot the one the bootloader tries next (as NEW: a trial boot).
    try:
        slot.part.set_boot()
    except OSError as e:
        raise FlashError("SET_BOOT_FAILED", "set_boot refused %s: %s" % (slot.label, e))
