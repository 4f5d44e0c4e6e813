# ota/revert.py: a signed revert's install step: the release it names is in the other slot.
# MIT license; Copyright (c) 2026 otakit contributors
#
# A manifest with "action": "revert" below the installed sequence (docs/format.md §2.6; ota.vet
# has checked its signature, channel, expiry, revision, known-bad list and security floor like
# any manifest's) names the release the device ran before: its image should still be in the
# spare slot. Agent.install() calls read_back() instead of downloading; nothing is written to
# the slot. The slot's first payload.size bytes are read back and hashed: only when they are
# payload.sha256 does the install go on (the header check, then State.arm_trial and
# set_boot(), as after a download), so the trial, its health checks and the bootloader's
# rollback treat the revert like any update. Loaded only on this path, released after it.
from .errors import ManifestError


async def read_back(m, slot, buf):
    # Raises ManifestError REVERT_MISMATCH unless the spare slot holds the named image; leaves
    # slot.read_back at m.size, so ota.finish.verify() then reads only the header.
    h = await slot.hash_range(m.size, buf)  # yields after every 4 KB block
    if h.digest() != m.sha256:
        raise ManifestError("REVERT_MISMATCH", "%s does not hold %s (sequence %d): its first %d "
                            "bytes differ from the signed SHA-256"
                            % (slot.label, m.version, m.sequence, m.size))
