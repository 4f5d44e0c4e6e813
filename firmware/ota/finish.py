# ota/finish.py: an install's last steps on the slot: check what was written, then boot it.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Called by Agent.install() (ota.agent) on an ota.slot.Slot once its image is written (or, for a
# signed revert, read back): verify(), then switch() from State.arm_trial (ota.stateops), which
# orders it among the trial's records. Loaded only for these steps and released after them, so
# that none of this is in the heap while a payload streams in. Slot's invariants (ota/slot.py)
# hold: switch() is called only after verify() passed.
from .errors import FlashError
from .slot import app_header_problem, hash_partition


async def verify(slot, size, sha256, chip_id, buf):
    # Check the written range is the signed, bootable image. When every byte was read back
    # (slot.read_back) into the SHA-256 the download checked, only the header is read here; else
    # the whole range is hashed from flash and compared with the signed SHA-256.
    part = slot.part
    if slot.read_back < size and (await hash_partition(part, size, buf)).digest() != sha256:
        raise FlashError("READBACK_MISMATCH", "the image read back from %s differs from the "
                         "signed SHA-256" % slot.label)
    part.readblocks(0, buf)  # the written image's header, read back from flash, is for this chip
    problem = app_header_problem(buf, chip_id)
    if problem:
        raise FlashError("BAD_IMAGE", problem)


def switch(slot):
    # Make the verified slot the one the bootloader tries next (as NEW: a trial boot).
    try:
        slot.part.set_boot()
    except OSError as e:
        raise FlashError("SET_BOOT_FAILED", "set_boot refused %s: %s" % (slot.label, e))
