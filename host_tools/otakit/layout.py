"""Partition layout advice: does an app image fit a board's OTA slots, and what table would.

The most common MicroPython OTA failure is an app image (~1.6-1.7 MB for a stock build) that does
not fit the 1.5 MiB slots of ``partitions-4MiB-ota.csv`` (ground truth §7). `check_fit` says by
how much; `suggest_layout` gives a table with two equal OTA slots sized for the image plus a
margin, every app partition 0x10000-aligned (``gen_esp32part.py``), and the rest of the flash as
the vfs.

Invariants: the suggested table starts like MicroPython's own (nvs 0x9000+0x4000, otadata
0xd000+0x2000, phy_init 0xf000+0x1000, ota_0 at 0x10000), has no factory partition (rollback
needs ota_0 and ota_1), and never overlaps or runs past the flash.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass

from otakit.boards import APP_SUBTYPES, DATA_SUBTYPES, Board, PartitionEntry
from otakit.errors import ImageError
from otakit.image import APP_DESC_MAGIC, BOOTLOADER_DESC_MAGIC, FIRMWARE_BIN_HINT, IMAGE_MAGIC

APP_ALIGN = 0x10000
DEFAULT_MARGIN = 0.10
MIN_VFS = 0x20000
# The table MicroPython's OTA layouts start with (ports/esp32/partitions-*-ota.csv).
HEAD = (PartitionEntry("nvs", 1, DATA_SUBTYPES["nvs"], 0x9000, 0x4000),
        PartitionEntry("otadata", 1, DATA_SUBTYPES["ota"], 0xD000, 0x2000),
        PartitionEntry("phy_init", 1, DATA_SUBTYPES["phy"], 0xF000, 0x1000))
FIRST_APP = 0x10000


@dataclass(frozen=True)
class Fit:
    """An app image against a slot: ``spare`` is negative when it does not fit."""

    size: int
    slot_label: str
    slot_size: int

    @property
    def spare(self) -> int:
        return self.slot_size - self.size

    @property
    def fits(self) -> bool:
        return self.spare >= 0


def app_size(data: bytes, chip_id: int | None = None) -> int:
    """The size of an app image after a cheap header check (magic, app descriptor, chip id).

    Raises:
        ImageError: ``BAD_IMAGE`` for something that is not an app image (e.g. a firmware.bin).
    """
    if len(data) < 0x24 or data[0] != IMAGE_MAGIC:
        raise ImageError("not an ESP app image (magic byte is not 0xE9)", reason="BAD_IMAGE")
    if data[0x20:0x24] != APP_DESC_MAGIC:
        hint = FIRMWARE_BIN_HINT if data[0x20] == BOOTLOADER_DESC_MAGIC else (
            "no app descriptor at offset 0x20: not an ESP-IDF app image")
        raise ImageError(hint, reason="BAD_IMAGE")
    (image_chip,) = struct.unpack_from("<H", data, 12)
    if chip_id is not None and image_chip != chip_id:
        raise ImageError(f"image is for chip id {image_chip}, the board's chip id is {chip_id}",
                         reason="BAD_IMAGE")
    return len(data)


def check_fit(board: Board, data: bytes) -> Fit:
    """How ``data`` (an app image) fits ``board``'s smallest OTA slot."""
    size = app_size(data, board.chip_id)
    slot = min(board.ota_slots, key=lambda p: p.size) if board.ota_slots else None
    if slot is None:
        raise ImageError(f"board {board.name} has no OTA app partitions", reason="NO_SLOT")
    return Fit(size, slot.label, slot.size)


def parse_size(text: str) -> int:
    """``4MB``, ``4M``, ``4MiB``, ``512K``, ``0x400000`` or ``4194304`` -> bytes."""
    m = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+)\s*([kKmM]?)(i?[bB])?\s*", text)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 4MB, 8M, 0x400000)")
    n = int(m.group(1), 0)
    return n * {"": 1, "k": 1024, "m": 1 << 20}[m.group(2).lower()]


def parse_margin(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1."""
    t = text.strip()
    value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    if not 0 <= value <= 1:
        raise ValueError(f"margin {text!r} is outside 0%..100%")
    return value


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def suggest_layout(flash_size: int, app: int, margin: float = DEFAULT_MARGIN,
                   ) -> tuple[PartitionEntry, ...]:
    """Two OTA slots for an ``app``-byte image plus ``margin``, the rest of the flash as vfs.

    Raises:
        ImageError: ``TOO_LARGE`` when two such slots and a minimal vfs do not fit the flash
            (the message says by how much).
    """
    slot = _round_up(math.ceil(app * (1 + margin)), APP_ALIGN)
    end = FIRST_APP + 2 * slot
    vfs = flash_size - end
    if vfs < MIN_VFS:
        short = MIN_VFS - vfs
        raise ImageError(f"two OTA slots of 0x{slot:x} ({slot} bytes: the {app}-byte image plus "
                         f"{margin:.0%} margin) and a {MIN_VFS // 1024} KiB vfs need "
                         f"{short} bytes more than the {flash_size}-byte flash; use a bigger "
                         "flash, a smaller margin or a smaller build", reason="TOO_LARGE")
    return (*HEAD,
            PartitionEntry("ota_0", 0, APP_SUBTYPES["ota_0"], FIRST_APP, slot),
            PartitionEntry("ota_1", 0, APP_SUBTYPES["ota_1"], FIRST_APP + slot, slot),
            PartitionEntry("vfs", 1, DATA_SUBTYPES["fat"], end, vfs))


def to_csv(parts: tuple[PartitionEntry, ...] | list[PartitionEntry]) -> str:
    """An ESP-IDF partition CSV (the format of ``boards/<b>/partitions.csv``)."""
    names = {0: {v: k for k, v in APP_SUBTYPES.items()},
             1: {v: k for k, v in DATA_SUBTYPES.items()}}
    lines = ["# Name,   Type, SubType, Offset,   Size,     Flags"]
    for p in parts:
        ptype = "app" if p.type == 0 else "data"
        sub = names[p.type].get(p.subtype, f"0x{p.subtype:02x}")
        cells = [f"{p.label},", f"{ptype},", f"{sub},", f"0x{p.offset:x},", f"0x{p.size:x},"]
        widths = (10, 6, 9, 10, 10)
        line = "".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        lines.append(line + ("encrypted" if p.flags & 1 else "").rstrip())
    return "\n".join(line.rstrip() for line in lines) + "\n"
