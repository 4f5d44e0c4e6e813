# ota/info.py: what the agent and the device report: Agent.status(), Agent.device_info(), and
# the agent's status after a failure (fail()).
# MIT license; Copyright (c) 2026 otakit contributors
#
# Called as methods of an ota.agent.Agent (through Agent.__getattr__, as ota.agentops), loaded
# only when one is called, then released.
from . import release
from .errors import FetchError, FlashError, OTAError


def status(a):
    s = dict(a._status)
    try:
        a.state.status_fields(s, a.cfg.support_end, a.cfg.channel)  # what the saved records say
    except MemoryError:  # no room for ota.stateops now: what the agent knows in RAM
        release()
    if s["state"] not in ("checking", "downloading", "verifying"):
        release()  # not inside a phase (e.g. on_progress): drop this and ota.stateops again
    return s


def fail(a, e, what="the update"):
    # The agent's status after OTAError e, or after a MemoryError in `what` (a phase, whose code
    # is released by now): FlashError NO_MEMORY, so that it never ends the app. The last failure
    # is saved unless the network was at fault (that is retried, not worth a flash write).
    # Returns the OTAError.
    if not isinstance(e, OTAError):
        release()  # and collect: the heap free once the phase is gone
        import gc
        e = FlashError("NO_MEMORY", "%s ran out of heap (%d bytes free after it)"
                       % (what, gc.mem_free()))
    a._set("failed", e.reason, e.detail)
    a._status["retry_after"] = _seconds(getattr(e, "retry_after", None))
    a._status["transient"] = isinstance(e, FetchError)
    if not isinstance(e, FetchError):
        a.state.set_last(e.reason, e.detail)
        a.state.commit()
    return e


def _seconds(text):
    # Retry-After as delta-seconds (an HTTP date is ignored), bounded to a day; 0 if absent.
    if not text or not text.isdigit() or len(text) > 6:
        return 0
    n = int(text)
    return n if n < 86400 else 86400


def device_info(a):
    # What this device is, as plain text for a local interface.
    try:
        return _text_info(a.esp32, a.cfg, status(a))
    finally:
        release()


# Plain text for a local interface (ETSI EN 303 645 5.3-16, the model designation): the model
# on the product's label (Config.model, "not set" without one), the product name the manifests
# carry, the hardware (board, chip id), the firmware the board runs, read from the running image
# (its app descriptor's version and project name when the build set them, else the MicroPython
# banner inside the image, e.g. "MicroPython v1.25.0 on 2025-04-15"; its build date and ESP-IDF
# version; its slot), the installed release, the end of support and the device id
# (s: Agent.status()). One "name: value" line each.
def _text_info(esp32, cfg, s):
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
        version = _banner(part)
    if not version:
        import sys
        version = sys.version.split("; ")[-1]
    return "\n".join((
        "model: " + (cfg.model or "not set"),
        "product: " + cfg.product,
        "hardware: %s (chip id %s)" % (cfg.board, cfg.chip_id),  # None: no image header
        "firmware: %s (%s)" % (version, part.info()[4]),
        "built: " + (built or "unknown"),
        "release: %d" % s["installed_sequence"],
        "support until: " + (s["support_end"] or "unknown"),
        "device id: " + device_id(cfg)))


def _banner(part):
    # "MicroPython vX.Y.Z on YYYY-MM-DD" from MicroPython's banner inside the image in part, read
    # a 4 KB block at a time into one buffer after the previous block's last 64 bytes (so that a
    # banner cut by a block boundary is whole); "" when there is none.
    buf = bytearray(4160)
    mv = memoryview(buf)
    for i in range(part.info()[3] // 4096):
        mv[0:64] = mv[4096:4160]
        part.readblocks(i, mv[64:])
        at = buf.find(b"MicroPython v")
        if 0 <= at <= 4096:
            end = at
            while end < at + 64 and 0x20 <= buf[end] < 0x7F and buf[end] != 0x3B:  # ";"
                end += 1
            return bytes(mv[at:end]).decode()
    return ""


def _text(b, at, n):
    # A NUL-padded field of n bytes as printable text.
    end = at
    while end < at + n and 0x20 <= b[end] < 0x7F:
        end += 1
    return bytes(b[at:end]).decode()

