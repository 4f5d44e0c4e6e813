"""Build the flash image of a simulated board, as esptool would leave a freshly flashed ESP32.

The image is one file of the board's flash size. Layout (docs/simulator.md):

- ``bootloader_offset`` (0x1000 on ESP32): a stand-in 2nd-stage bootloader image (a real ESP
  image whose first segment loads at 0x3FFF0030, with the bootloader descriptor magic 0x50 at
  0x20). The simulated bootloader is Python code; this image only makes the region realistic and
  is what :func:`make_firmware_bin` puts first.
- 0x7F00: the simulator's board record (``OTAKIT-SIM`` + ``key=value`` line: board, chip, chip
  id, chip revision, unique id, ``origin=SEQ,SV`` when the flashed firmware was built knowing
  its own release, and ``build=product`` for a product build; without it the firmware is a
  development build, which takes http update URLs). It sits in bootloader space that a real
  bootloader never uses. The runner turns ``origin``/``build`` into the firmware's frozen module
  ``ota_origin`` (docs/simulator.md).
- 0x8000: the binary partition table (``gen_esp32part.py`` format, MD5 entry, 0xC00 bytes).
- the app image in the first app partition; everything else 0xFF (blank otadata, nvs and vfs),
  which is what flashing a full ``firmware.bin`` does.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from esptool.bin_image import (
    ELFSection,
    ESP32C3FirmwareImage,
    ESP32FirmwareImage,
    ESP32S3FirmwareImage,
)

from otakit.boards import PT_ADDR, PT_SIZE, Board, load_board, partition_table_bin
from otakit.frozen import origin_module
from otakit.errors import ImageError
from otakit.mpy import compile_to_mpy

MARKER_ADDR = 0x7F00
MARKER_MAGIC = b"OTAKIT-SIM"
CHIP_REV = {"esp32": 300, "esp32s3": 2, "esp32c3": 4}


def _board(board: Board | str) -> Board:
    return load_board(board) if isinstance(board, str) else board


# chip -> (image class, bootloader data/bss address, loader text address, max_rev_full): where
# ESP-IDF v5.5.2 links each chip's 2nd-stage bootloader (its RAM, not the app's).
_BOOTLOADERS = {
    "esp32": (ESP32FirmwareImage, 0x3FFF0030, 0x40078000, 399),
    "esp32s3": (ESP32S3FirmwareImage, 0x3FCE2700, 0x403C8700, 99),
    "esp32c3": (ESP32C3FirmwareImage, 0x3FCD5700, 0x403CC700, 199),
}


def bootloader_image(chip: str = "esp32") -> bytes:
    """A stand-in 2nd-stage bootloader image for ``chip`` (valid ESP image, loads into RAM).

    Raises:
        ImageError: ``UNKNOWN_CHIP`` for a chip with no board definition here.
    """
    if chip not in _BOOTLOADERS:
        raise ImageError(f"no simulated bootloader for chip {chip}", reason="UNKNOWN_CHIP")
    cls, data_addr, text_addr, max_rev = _BOOTLOADERS[chip]
    desc = bytes([0x50, 0, 0, 0]) + struct.pack("<I", 1) + b"v5.5.2".ljust(32, b"\0")
    desc += b"Jan  1 2026 00:00:00".ljust(24, b"\0") + b"\0" * 64
    img = cls()
    img.entrypoint = text_addr + 0x400
    img.flash_mode, img.flash_size_freq = 2, 0x20
    img.min_rev_full, img.max_rev_full = 0, max_rev
    img.segments = [
        ELFSection(b".dram0.bss", data_addr, desc + b"\x5a" * (0x1010 - len(desc)), 0),
        ELFSection(b".iram_loader.text", text_addr, b"\xa5" * 0x400, 0),
        ELFSection(b".iram.text", text_addr + 0x400, b"\x3c" * 0x800, 0),
    ]
    data = img.save(None)
    assert data is not None  # save(None) returns the bytes
    return data


def board_record(board: Board, uid: bytes, origin: tuple[int, int] | None = None,
                 product: bool = False) -> bytes:
    """The 256-byte board record stored at 0x7F00."""
    line = (f"board={board.name} chip={board.chip} chip_id={board.chip_id} "
            f"rev={CHIP_REV.get(board.chip, 0)} uid={uid.hex()} flash={board.flash_size}")
    if origin is not None:
        line += f" origin={origin[0]},{origin[1]}"
    if product:
        line += " build=product"
    rec = MARKER_MAGIC + b"\n" + line.encode() + b"\n"
    return rec + b"\xff" * (256 - len(rec))


def read_board_record(image: bytes | Path | str) -> dict[str, str]:
    """The board record of a flash image as a dict (empty if the image has none)."""
    if isinstance(image, (str, Path)):
        with open(image, "rb") as f:
            f.seek(MARKER_ADDR)
            raw = f.read(256)
    else:
        raw = image[MARKER_ADDR:MARKER_ADDR + 256]
    lines = raw.split(b"\n")
    if lines[0] != MARKER_MAGIC or len(lines) < 2:
        return {}
    return dict(item.split("=", 1) for item in lines[1].decode().split())


def make_firmware_bin(board: Board | str, app_image: bytes) -> bytes:
    """What MicroPython's makeimg.py makes: bootloader, table, app (file offset 0 = bootloader)."""
    b = _board(board)
    app_off = min(p.offset for p in b.partitions if p.type == 0)
    out = bytearray(b"\xff" * (app_off - b.bootloader_offset))
    boot = bootloader_image(b.chip)
    out[0:len(boot)] = boot
    pt = PT_ADDR - b.bootloader_offset
    out[pt:pt + PT_SIZE] = partition_table_bin(b.partitions)
    return bytes(out) + app_image


def create_flash(board: Board | str, app_image: bytes, path: str | os.PathLike[str], *,
                 uid: bytes | None = None, origin: tuple[int, int] | None = None,
                 product: bool = False) -> Path:
    """Write a fresh flash image: as if the full firmware had been flashed with esptool.

    Args:
        board: a board name (``boards/<name>``) or a loaded `Board`.
        app_image: the app image (``micropython.bin`` / ``.app-bin``) for the first app slot.
        path: the image file to write (overwritten).
        uid: the 6-byte ``machine.unique_id()``; random (Espressif OUI) when omitted.
        origin: ``(sequence, security_version)`` of the flashed firmware, as `otakit build
            --sequence --security-version` freezes them (``ota_origin``); None: a development
            build without the module.
        product: a product build (``ota_origin.DEVELOPMENT = False``: the device takes only
            https update URLs); else a development build.

    Returns:
        The path written.

    Raises:
        ImageError: the app is not an ESP image or does not fit the first app slot.
        BoardError: the board is unknown.
        ToolError: ``BAD_ARGUMENT`` for an origin value outside 0 - 2^31-1.
    """
    b = _board(board)
    if origin is not None:
        origin_module(*origin)  # the range check
    apps = [p for p in b.partitions if p.type == 0]
    if not apps:
        raise ImageError(f"board {b.name} has no app partition", reason="NO_SLOT")
    slot = min(apps, key=lambda p: p.offset)
    if not app_image or app_image[0] != 0xE9:
        raise ImageError("not an ESP app image (magic byte is not 0xE9)", reason="BAD_IMAGE")
    if len(app_image) > slot.size:
        raise ImageError(f"app image ({len(app_image)} bytes) does not fit {slot.label} "
                         f"({slot.size} bytes)", reason="TOO_LARGE")
    uid = uid if uid is not None else b"\x24\x0a\xc4" + os.urandom(3)
    flash = bytearray(b"\xff" * b.flash_size)
    boot = bootloader_image(b.chip)
    flash[b.bootloader_offset:b.bootloader_offset + len(boot)] = boot
    flash[MARKER_ADDR:MARKER_ADDR + 256] = board_record(b, uid, origin, product)
    flash[PT_ADDR:PT_ADDR + PT_SIZE] = partition_table_bin(b.partitions)
    flash[slot.offset:slot.offset + len(app_image)] = app_image
    out = Path(path)
    out.write_bytes(flash)
    return out


def frozen_origin(image: Path | str, out_dir: Path) -> Path | None:
    """The flashed firmware's frozen module ``ota_origin``, compiled to .mpy in ``out_dir``
    (a directory the runner puts where the board's frozen modules are on ``sys.path``), from
    the image's board record; None when the firmware has none (a development build). With an
    origin it is a development build too (``DEVELOPMENT = True``) unless the record says
    ``build=product``."""
    rec = read_board_record(image)
    origin, product = rec.get("origin"), rec.get("build") == "product"
    if not origin and not product:
        return None
    seq, _, sv = (origin or "0,0").partition(",")
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "ota_origin.py"
    src.write_text(origin_module(int(seq), int(sv), development=not product))
    compile_to_mpy([src], out_dir)
    src.unlink()
    return out_dir
