# ota/info.py: what the device is, as plain text for a local interface (Agent.device_info()).
# MIT license; Copyright (c) 2026 otakit contributors
#
# Loaded only when Agent.device_info() is called, then released.


# Plain text for a local interface (ETSI EN 303 645 5.3-16, the model designation): the model
# (the product), the hardware (board, chip id), the firmware the board runs, read from the app
# descriptor of the running image (its version and project name when the build set them, else
# MicroPython's own version; its build date and ESP-IDF version; its slot), the installed
# release, the end of support and the device id (s: Agent.status()). One "name: value" line each.
def device_info(esp32, cfg, s):
    from .ident import device_id
    if cfg.chip_id is None:
        from .config import running_chip_id
        cfg.chip_id = running_chip_id()
    part = esp32.Partition(esp32.Partition.RUNNING)
    b = bytearray(0xB0)  # the image header and the app descriptor (esp_app_desc_t) to idf_ver
    part.readblocks(0, b)
    version = built = ""
    if b[0x20:0x24] == b"\x32\x54\xcd\xab":  # version 0x30, project_name 0x50, time 0x70,
        version = (_text(b, 0x30, 32) + " " + _text(b, 0x50, 32)).strip()  # date 0x80, idf 0x90
        built = "%s %s, ESP-IDF %s" % (_text(b, 0x80, 16), _text(b, 0x70, 16), _text(b, 0x90, 32))
    if not version:  # e.g. "MicroPython v1.25.0 on 2025-04-15"
        import sys
        version = sys.version.split("; ")[-1]
    return "\n".join((
        "model: " + cfg.product,
        "hardware: %s (chip id %s)" % (cfg.board, cfg.chip_id),  # None: no image header
        "firmware: %s (%s)" % (version, part.info()[4]),
        "built: " + (built or "unknown"),
        "release: %d" % s["installed_sequence"],
        "support until: " + (s["support_end"] or "unknown"),
        "device id: " + device_id(cfg)))


def _text(b, at, n):
    # A NUL-padded field of n bytes as printable text.
    end = at
    while end < at + n and 0x20 <= b[end] < 0x7F:
        end += 1
    return bytes(b[at:end]).decode()

