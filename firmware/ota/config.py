# ota/config.py: what the agent needs to know about its product, board and server.
# MIT license; Copyright (c) 2026 otakit contributors


class Config:
    # url        base URL of the release repository, e.g. "https://updates.example.com/repo"
    # product    product name as in the signed manifests
    # board      board name as in the signed manifests (boards/<board> on the host)
    # chip_id    the chip id app images for this board carry (ESP32 0, C3 5, S3 9)
    # channel    release channel ("stable"); a user setting may override it
    # keys       keyring {key_id: (alg, public_key)}; default (None): the frozen module
    #            ota_keys, imported only while a manifest is verified
    # device_id  stable pseudonymous id (rollout bucket, telemetry); default: the first 12 bytes
    #            of SHA-256(b"otakit-device-id\0" + product + b"\0" + machine.unique_id()) in hex,
    #            never the MAC itself (docs/format.md section 2.2)
    # ca         DER bytes of the CA certificate for https (required for https URLs)
    # timeout_ms per network operation
    # health_timeout_ms  deadline for the health checks of a trial boot
    # telemetry  report update events to the fleet server (setting "telemetry"; False opts out)
    # report_url where reports go; default: url + "/.otakit/events" (docs/fleet.md)
    def __init__(self, url, product, board, chip_id=0, channel="stable", keys=None,
                 device_id=None, ca=None, timeout_ms=15000, health_timeout_ms=30000,
                 telemetry=True, report_url=None):
        self.url = url.rstrip("/")
        self.product = product
        self.board = board
        self.chip_id = chip_id
        self.channel = channel
        self.keys = keys
        if device_id is None:
            import machine
            device_id = pseudonym(product, machine.unique_id())
        self.device_id = device_id
        self.telemetry = telemetry
        self.report_url = report_url or self.url + "/.otakit/events"
        self.ca = ca
        self.timeout_ms = timeout_ms
        self.health_timeout_ms = health_timeout_ms

    def manifest_url(self):
        return "%s/%s/%s/%s/manifest" % (self.url, self.product, self.board, self.channel)

    def payload_url(self, path):
        return self.url + "/" + path


# The default device id: pseudonymous, stable, 24 hex digits; the MAC cannot be read back from it.
def pseudonym(product, uid):
    import binascii
    import hashlib
    h = hashlib.sha256(b"otakit-device-id\x00" + product.encode() + b"\x00" + uid)
    return binascii.hexlify(h.digest()[:12]).decode()
