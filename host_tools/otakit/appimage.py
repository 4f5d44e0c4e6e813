"""Synthetic but valid ESP32 app images, for the demo, the tests and the benchmarks.

The images are built with esptool's own image writer (`ESP32FirmwareImage` + `ELFSection`), so
they pass esptool's checks and the ESP-IDF app-mode image check: magic 0xE9, chip id, checksum,
appended SHA-256, the app descriptor (magic 0xABCD5432) at offset 0x20.

Two fields of the app descriptor carry what the simulated board needs (real MicroPython images
leave both empty):
- ``version``: the human version, e.g. ``1.1.0``;
- ``project_name``: ``otakit-sim:<behaviour>`` tells the simulated firmware how to behave at boot
  (see docs/simulator.md), e.g. ``otakit-sim:crash`` crashes before ``boot.py`` runs.
"""

from __future__ import annotations

import array
import hashlib
import struct

from esptool.bin_image import (
    ESP32C3FirmwareImage,
    ESP32FirmwareImage,
    ESP32S3FirmwareImage,
    ELFSection,
    LoadFirmwareImage,
)

APP_DESC_MAGIC = 0xABCD5432
APP_DESC_FORMAT = "<II8s32s32s16s16s32s32sHHB3s72s"
SIM_BEHAVIOUR_PREFIX = "otakit-sim:"

# chip -> (image class, DROM base, IROM base, DRAM base, IRAM base, max_rev_full)
_CHIPS = {
    "esp32": (ESP32FirmwareImage, 0x3F400020, 0x400D0020, 0x3FFB0000, 0x40080000, 399),
    "esp32s3": (ESP32S3FirmwareImage, 0x3C000020, 0x42000020, 0x3FC88000, 0x40378000, 99),
    "esp32c3": (ESP32C3FirmwareImage, 0x3C000020, 0x42000020, 0x3FC80000, 0x40380000, 199),
}


def _filler(seed: str, n: int) -> bytes:
    """Deterministic, incompressible-looking bytes (SHA-256 in counter mode)."""
    out = bytearray()
    block = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{block}".encode()).digest()
        block += 1
    return bytes(out[:n])


def _saved(img: ESP32FirmwareImage) -> bytes:
    """The image's bytes, as esptool writes them (``save(None)`` returns bytes)."""
    data = img.save(None)
    if not isinstance(data, bytes):
        raise TypeError("esptool's save(None) did not return bytes")
    return data


def app_descriptor(version: str = "", project: str = "", idf: str = "v5.5.2") -> bytes:
    """The 256-byte esp_app_desc_t that ESP-IDF places at image offset 0x20."""
    return struct.pack(APP_DESC_FORMAT, APP_DESC_MAGIC, 0, b"\0" * 8, version.encode()[:31],
                       project.encode()[:31], b"00:00:00", b"Jan  1 2026", idf.encode()[:31],
                       b"\0" * 32, 0, 0, 16, b"\0" * 3, b"\0" * 72)


def make_app_image(version: str, *, chip: str = "esp32", size: int = 64 * 1024,
                   behaviour: str = "", seed: str | None = None,
                   compressible: bool = False) -> bytes:
    """Build a valid app image of about ``size`` bytes (within a few hundred bytes).

    Args:
        version: goes into the app descriptor's ``version`` field.
        chip: ``esp32``, ``esp32s3`` or ``esp32c3``; sets the header's chip id.
        size: the approximate image size; the filler goes into the flash-mapped rodata segment.
        behaviour: empty for a normal image, or a simulator behaviour such as ``crash``.
        seed: varies the filler bytes; two images with the same arguments are identical.
        compressible: a filler that DEFLATE shrinks (random words from a small vocabulary, as
            code and tables are), instead of incompressible bytes.
    """
    if chip not in _CHIPS:
        raise ValueError(f"unknown chip {chip!r}")
    cls, drom, irom, dram, iram, max_rev = _CHIPS[chip]
    project = SIM_BEHAVIOUR_PREFIX + behaviour if behaviour else ""
    desc = app_descriptor(version, project)
    filler_len = max(0, size - 1024 - len(desc))
    filler_len -= filler_len % 4
    filler = _filler(seed or f"{chip}:{version}:{behaviour}", filler_len)
    if compressible:
        words = [filler[i:i + 4] for i in range(0, 1024, 4)]
        filler = b"".join(words[b] for b in filler[:filler_len // 4])
    rodata = desc + filler
    img = cls()
    img.entrypoint = iram + 0x400
    img.flash_mode, img.flash_size_freq = 2, 0x20
    img.min_rev_full, img.max_rev_full = 0, max_rev
    img.segments = [
        ELFSection(b".flash.appdesc", drom, rodata, 0),
        ELFSection(b".dram0.data", dram, _filler("dram" + version, 64), 0),
        ELFSection(b".iram0.text", iram, _filler("iram" + version, 128), 0),
        ELFSection(b".flash.text", irom, _filler("text" + version, 256), 0),
    ]
    return _saved(img)


def rebuild_with_module(image: bytes, *, at: float = 0.6, removed: int = 1536,
                        added: int = 2048, seed: str = "module") -> bytes:
    """A synthetic "rebuild" of a real app image in which one frozen module changed.

    The bytes ``removed`` long at fraction ``at`` of the flash rodata segment (where MicroPython
    keeps frozen modules) are replaced by ``added`` new bytes, and, as a linker would, every
    32-bit word in any segment that points into the part of the rodata behind the change is moved
    by the size difference. esptool rewrites the checksum and the appended SHA-256.
    """
    img = LoadFirmwareImage("esp32", image)
    if not isinstance(img, ESP32FirmwareImage):
        raise ValueError("not an ESP32 app image")
    drom = img.segments[0]
    data = bytes(drom.data)
    cut = int(len(data) * at) & ~3
    shift = added - removed
    if shift % 4:
        raise ValueError("added - removed must be a multiple of 4")
    lo, hi = drom.addr + cut + removed, drom.addr + len(data)
    module = _filler(seed, added)
    for seg in img.segments:
        d = data[:cut] + module + data[cut + removed:] if seg is drom else bytes(seg.data)
        words = array.array("I", d[:len(d) // 4 * 4])
        for k, v in enumerate(words):
            if lo <= v < hi:
                words[k] = v + shift
        seg.data = words.tobytes() + d[len(d) // 4 * 4:]
        if not hasattr(seg, "name"):
            seg.name = b""  # esptool's save() wants it; a loaded image's segments lack it
    return _saved(img)
