# ota/ident.py: the device's pseudonymous id (rollout bucket, telemetry reports).
# MIT license; Copyright (c) 2026 otakit contributors
#
# Loaded only when the id is first needed (when the agent is made, or by ota.report), then
# released: Config.device_id is filled in once.


# cfg.device_id, computed on first use when the configuration gave none: the first 12 bytes of
# SHA-256(b"otakit-device-id\0" + product + b"\0" + machine.unique_id()) in hex (docs/format.md
# section 2.3). The MAC cannot be read back from it.
def device_id(cfg):
    if cfg.device_id is None:
        import binascii
        import hashlib

        import machine

        h = hashlib.sha256(b"otakit-device-id\x00" + cfg.product.encode() + b"\x00"
                           + machine.unique_id())
        cfg.device_id = binascii.hexlify(h.digest()[:12]).decode()
    return cfg.device_id
