"""Board definitions: ``boards/<name>/board.json`` plus its ``partitions.csv``.

A board names its chip (and the chip id in the app image header), flash size, bootloader offset and
partition table. The release command uses it to check an image fits the OTA slot; the simulator
builds its flash image from the same table. The binary partition table (``PT_ADDR``, written by
`partition_table_bin`, read by `parse_partition_table`) lives here too: ``otakit build``,
``otakit flash`` and the simulator all use it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from otakit.errors import BoardError, ImageError
from otakit.paths import BOARDS_DIR

# Partition types and subtypes as ESP-IDF's gen_esp32part.py spells them.
PART_TYPES = {"app": 0x00, "data": 0x01}
APP_SUBTYPES = {"factory": 0x00, "test": 0x20, **{f"ota_{i}": 0x10 + i for i in range(16)}}
DATA_SUBTYPES = {"ota": 0x00, "phy": 0x01, "nvs": 0x02, "coredump": 0x03, "nvs_keys": 0x04,
                 "efuse": 0x05, "undefined": 0x06, "esphttpd": 0x80, "fat": 0x81, "spiffs": 0x82,
                 "littlefs": 0x83}
# Where the binary partition table sits in flash, and its size (0xC00, MD5 entry included).
PT_ADDR = 0x8000
PT_SIZE = 0xC00
_ENTRY = struct.Struct("<2sBBLL16sL")


@dataclass(frozen=True)
class PartitionEntry:
    """One row of a partition table."""

    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0


@dataclass(frozen=True)
class Board:
    """A board definition as read from ``boards/<name>/``."""

    name: str
    chip: str
    chip_id: int
    flash_size: int
    bootloader_offset: int
    partitions: tuple[PartitionEntry, ...]
    micropython_board: str = ""
    micropython_variant: str = ""

    def partition(self, label: str) -> PartitionEntry:
        for p in self.partitions:
            if p.label == label:
                return p
        raise BoardError(f"board {self.name} has no partition {label!r}")

    @property
    def ota_slots(self) -> list[PartitionEntry]:
        """The OTA app partitions, ota_0 first."""
        return sorted((p for p in self.partitions
                       if p.type == 0 and 0x10 <= p.subtype < 0x20), key=lambda p: p.subtype)

    @property
    def ota_slot_size(self) -> int:
        """The smallest OTA slot: an image must fit every slot it may be written to."""
        slots = self.ota_slots
        if not slots:
            raise BoardError(f"board {self.name} has no OTA app partitions")
        return min(p.size for p in slots)


def _int(text: str) -> int:
    text = text.strip().upper().replace("0X", "0x")
    if text.endswith("K"):
        return int(text[:-1], 0) * 1024
    if text.endswith("M"):
        return int(text[:-1], 0) * 1024 * 1024
    return int(text, 0)


def parse_partitions_csv(text: str) -> tuple[PartitionEntry, ...]:
    """Parse an ESP-IDF partition CSV (explicit offsets required; comments with #)."""
    rows = []
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for row in csv.reader(lines):
        cells = [c.strip() for c in row] + [""] * 6
        label, ptype, sub, off, size, flags = cells[:6]
        if ptype not in PART_TYPES:
            raise BoardError(f"partition {label}: unknown type {ptype!r}")
        table = APP_SUBTYPES if ptype == "app" else DATA_SUBTYPES
        subtype = table[sub] if sub in table else _int(sub)
        if not off:
            raise BoardError(f"partition {label}: an explicit offset is required")
        rows.append(PartitionEntry(label, PART_TYPES[ptype], subtype, _int(off), _int(size),
                                   1 if "encrypted" in flags else 0))
    return tuple(rows)


def load_board(name: str, boards_dir: Path = BOARDS_DIR) -> Board:
    """Load ``boards/<name>``.

    Raises:
        BoardError: the board is unknown or its definition is malformed.
    """
    d = boards_dir / name
    meta_path = d / "board.json"
    if name == "unix" or not meta_path.is_file():
        known = ", ".join(available_boards(boards_dir)) or "none"
        raise BoardError(f"unknown board {name!r} (known: {known})", reason="UNKNOWN_BOARD")
    try:
        meta = json.loads(meta_path.read_text())
        parts = parse_partitions_csv((d / meta.get("partitions", "partitions.csv")).read_text())
        return Board(name=name, chip=meta["chip"], chip_id=int(meta["chip_id"]),
                     flash_size=_int(str(meta["flash_size"])),
                     bootloader_offset=_int(str(meta["bootloader_offset"])),
                     partitions=parts,
                     micropython_board=meta.get("micropython_board", ""),
                     micropython_variant=meta.get("micropython_variant", ""))
    except (OSError, KeyError, ValueError) as e:
        raise BoardError(f"board {name}: cannot read its definition: {e}") from e


def available_boards(boards_dir: Path = BOARDS_DIR) -> list[str]:
    """Names of the board definitions present (the simulator's ``unix`` is not a target board)."""
    return sorted(p.parent.name for p in boards_dir.glob("*/board.json"))


def partition_table_bin(partitions: tuple[PartitionEntry, ...] | list[PartitionEntry]) -> bytes:
    """The binary partition table (0xC00 bytes) for ``partitions``, MD5 entry included."""
    body = b"".join(_ENTRY.pack(b"\xaa\x50", p.type, p.subtype, p.offset, p.size,
                                p.label.encode()[:16], p.flags) for p in partitions)
    md5 = b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(body).digest()  # noqa: S324 - format's MD5
    table = body + md5
    if len(table) > PT_SIZE:
        raise ImageError("partition table too long", reason="BAD_TABLE")
    return table + b"\xff" * (PT_SIZE - len(table))


def parse_partition_table(data: bytes) -> tuple[list[PartitionEntry], bool]:
    """Parse a binary partition table; return the entries and whether its MD5 entry matches."""
    parts: list[PartitionEntry] = []
    for off in range(0, min(len(data), PT_SIZE), 32):
        entry = data[off:off + 32]
        if entry[:2] == b"\xeb\xeb":
            md5_ok = hashlib.md5(data[:off]).digest() == entry[16:]  # noqa: S324
            return parts, md5_ok
        if entry[:2] != b"\xaa\x50":
            break
        _, ptype, sub, addr, size, label, flags = _ENTRY.unpack(entry)
        parts.append(PartitionEntry(label.split(b"\0")[0].decode(), ptype, sub, addr, size,
                                    flags))
    return parts, False
