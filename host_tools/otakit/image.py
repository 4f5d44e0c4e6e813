"""Check that a file is an ESP32 app image a board's bootloader would boot from an OTA slot.

The parse is esptool's own (`esptool.bin_image.LoadFirmwareImage`); on top of it come the checks
esptool's loader leaves out (docs/format.md, ground truth §5): the board's chip id, the app
descriptor magic 0xABCD5432 at offset 0x20 (which refuses a full ``firmware.bin``, whose first
image is the bootloader), an appended SHA-256, no trailing bytes, and the size of the OTA slot.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from esptool.bin_image import ESP32FirmwareImage, LoadFirmwareImage

from otakit.boards import Board
from otakit.errors import ImageError

IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = b"\x32\x54\xcd\xab"  # 0xABCD5432 little-endian, at offset 0x20
BOOTLOADER_DESC_MAGIC = 0x50
DIGEST_LEN = 32
FIRMWARE_BIN_HINT = ("this looks like a full firmware.bin (it starts with the bootloader); "
                     "release the app image (.app-bin / micropython.bin)")


@dataclass(frozen=True)
class AppImageInfo:
    """What a release needs to know about a checked app image."""

    size: int
    sha256: str
    chip_id: int
    app_version: str
    project_name: str
    idf_version: str


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def _check_header(data: bytes, board: Board) -> None:
    if len(data) < 0x20 + 256 or data[0] != IMAGE_MAGIC:
        raise ImageError(f"not an ESP32 app image (magic 0x{data[:1].hex() or '??'}, want 0xe9, "
                         f"{len(data)} bytes)", reason="BAD_IMAGE")
    if data[0x20:0x24] != APP_DESC_MAGIC:
        if data[0x20] == BOOTLOADER_DESC_MAGIC:
            raise ImageError(FIRMWARE_BIN_HINT, reason="BAD_IMAGE")
        raise ImageError("no app descriptor (magic 0xABCD5432) at offset 0x20: not an ESP-IDF "
                         "app image", reason="BAD_IMAGE")
    (chip_id,) = struct.unpack_from("<H", data, 12)
    if chip_id != board.chip_id:
        raise ImageError(f"image is for chip id {chip_id}, board {board.name} is {board.chip} "
                         f"(chip id {board.chip_id})", reason="BAD_IMAGE")


def check_app_image(data: bytes, board: Board) -> AppImageInfo:
    """Validate an app image for ``board``.

    Args:
        data: the whole image file.
        board: the target board (chip, chip id, OTA slot size).

    Returns:
        The image's size, SHA-256 and descriptor fields.

    Raises:
        ImageError: ``BAD_IMAGE`` (magic, firmware.bin, chip id, checksum, digest, truncation,
            trailing bytes) or ``PAYLOAD_TOO_LARGE`` (does not fit the board's OTA slot).
    """
    _check_header(data, board)
    try:
        im = LoadFirmwareImage(board.chip, data)
    except Exception as e:  # noqa: BLE001 - esptool raises FatalError, struct.error, ...
        raise ImageError(f"esptool cannot parse the image: {e}", reason="BAD_IMAGE") from e
    if not isinstance(im, ESP32FirmwareImage):  # every ESP32-family chip's image class is one
        raise ImageError(f"{board.chip} is not an ESP32-family chip", reason="BAD_IMAGE")
    if im.checksum != im.calculate_checksum():
        raise ImageError("image checksum is wrong (corrupted image)", reason="BAD_IMAGE")
    if not im.append_digest:
        raise ImageError("image has no appended SHA-256 (hash_appended is 0; ESP-IDF app "
                         "builds append one by default)", reason="BAD_IMAGE")
    if im.stored_digest != im.calc_digest:
        raise ImageError("image's appended SHA-256 does not match (corrupted image)",
                         reason="BAD_IMAGE")
    end = (im.data_length or 0) + DIGEST_LEN  # set by the loader
    if end != len(data):
        raise ImageError(f"{len(data) - end} bytes follow the image's end at {end}: not a bare "
                         "app image", reason="BAD_IMAGE")
    slot = board.ota_slot_size
    if len(data) > slot:
        raise ImageError(f"image is {len(data)} bytes, board {board.name}'s OTA slot holds "
                         f"{slot} (over by {len(data) - slot})", reason="PAYLOAD_TOO_LARGE")
    desc = data[0x20:0x20 + 256]
    return AppImageInfo(size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                        chip_id=im.chip_id,
                        app_version=_cstr(desc[16:48]), project_name=_cstr(desc[48:80]),
                        idf_version=_cstr(desc[112:144]))
