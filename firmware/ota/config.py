# ota/config.py: what the agent needs to know about its product, board and server.
# MIT license; Copyright (c) 2026 otakit contributors


class Config:
    # url        base URL of the release repository, e.g. "https://updates.example.com/repo"
    # product    product name as in the signed manifests
    # model      the model designation on the product's label (e.g. "DL-100"), shown by
    #            device_info() (EN 303 645 5.3-16); None: not set
    # board      board name as in the signed manifests (boards/<board> on the host)
    # chip_id    the chip id app images for this board carry (ESP32 0, C3 5, S3 9); default
    #            (None): the running image's, from its header (bytes 12-13, running_chip_id),
    #            read at the first check; unreadable: stays None and every release is refused
    #            (WRONG_BOARD)
    # channel    release channel ("stable"); a user setting may override it
    # keys       keyring {key_id: (alg, public_key)}; default (None): the frozen module
    #            ota_keys, imported only while a manifest is verified
    # device_id  stable pseudonymous id (rollout bucket, telemetry); default (None): derived from
    #            machine.unique_id() on first use by ota.ident, never the MAC itself
    # ca         DER bytes of the CA certificate for https (required for https URLs); an app
    #            checks its URL with ota.buildinfo.url_refusal() first (a product build takes
    #            only https)
    # timeout_ms per network operation
    # health_timeout_ms  deadline for the health checks of a trial boot
    # max_wbits  the largest DEFLATE window (2**max_wbits bytes of RAM) this device decodes;
    #            representations needing more are skipped (docs/format.md §2.2)
    # support_end  "YYYY-MM-DD": the end of the support period the firmware was sold with,
    #            reported by status() until a signed manifest tells a (never earlier) date
    # telemetry  report update events to the fleet server (setting "telemetry"; False opts out)
    # report_url where reports go; default (None): url + "/.otakit/events" (docs/fleet.md)
    # deadline_s, min_rate  every payload download must be done within deadline_s + size /
    #            min_rate seconds (size in bytes, min_rate in bytes per second), else it stops
    #            with FetchError DEADLINE (docs/format.md §5); a resumed download gets a new
    #            deadline for the bytes it still needs
    url: str  # (set by ota.make.config, as every attribute; for the type checker only)

    def __init__(self, *args, **kw):
        # (url, product, board, chip_id=None, channel="stable", keys=None, device_id=None,
        # ca=None, timeout_ms=15000, health_timeout_ms=30000, max_wbits=12, support_end=None,
        # telemetry=True, report_url=None, deadline_s=30, min_rate=4096, model=None): the
        # attributes above, set by ota.make.config (released when the Agent is made)
        from .make import config
        config(self, *args, **kw)

    # (The manifest's and the keyring's URLs are built where they are fetched, ota.check and
    # ota.trusted, so that this resident class does not carry them.)
    def payload_url(self, path):
        return self.url + "/" + path


def running_chip_id():
    # The chip id in the running app image's header (esp_image_header_t.chip_id, bytes 12-13),
    # as the bootloader checked it; None when the running partition holds no image header.
    import esp32
    b = bytearray(16)
    part = esp32.Partition
    part(part.RUNNING).readblocks(0, b)  # pyright: ignore[reportArgumentType] - an int id
    return b[12] | (b[13] << 8) if b[0] == 0xE9 else None
