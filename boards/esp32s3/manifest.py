# boards/esp32s3/manifest.py: what `otakit build --board esp32s3` freezes into the firmware.
# Paths are relative to this file (MicroPython's manifest rules). `otakit build` stages a copy
# of this tree (boards/, firmware/, keyring/) beside the build, so they hold there too.

# The port's stock frozen modules: _boot, asyncio, mip, requests, ntptime, webrepl, ...
include("$(PORT_DIR)/boards/manifest.py")

# The update agent: the package `ota`.
package("ota", base_path="../../firmware")

# The example app (main.py on the filesystem only starts it).
module("doorlock.py", base_path="../../firmware")

# The keyring: the top-level module `ota_keys` written by
# `otakit key export --micropython KEY.pub.pem --out keyring/ota_keys.py` (docs/format.md §3).
# Frozen, so the device never takes its trusted keys from the writable filesystem.
module("ota_keys.py", base_path="../../keyring")
