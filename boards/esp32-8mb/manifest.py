# boards/esp32-8mb/manifest.py: what `otakit build --board esp32-8mb` freezes into the firmware.
# Paths are relative to this file (MicroPython's manifest rules). `otakit build` stages a copy
# of this tree (boards/, firmware/, keyring/) beside the build, so they hold there too.

# The port's stock frozen modules: _boot, asyncio, mip, requests, ntptime, webrepl, ...
include("$(PORT_DIR)/boards/manifest.py")

# The update agent: the package `ota`, through its micropython-lib style manifest, as a
# product's own board manifest freezes it (docs/quickstart.md).
include("../../firmware/manifest.py")

# The example app, and the boot.py and main.py that start it. Frozen, they run instead of any
# boot.py or main.py on the filesystem (MicroPython runs a frozen one first), and boot.py takes
# the filesystem off sys.path, so no module written there is ever imported (docs/security.md).
module("doorlock.py", base_path="../../firmware")
module("lockui.py", base_path="../../firmware")  # its local interface
module("boot.py", base_path="../../firmware")
module("main.py", base_path="../../firmware")

# The keyring: the top-level module `ota_keys` written by
# `otakit key export --micropython KEY.pub.pem --out keyring/ota_keys.py` (docs/format.md §3).
# Frozen, so the device never takes its trusted keys from the writable filesystem.
module("ota_keys.py", base_path="../../keyring")

# The release this firmware is: the module `ota_origin` (SEQUENCE, SECURITY_VERSION) that
# `otakit build --sequence N --security-version S` writes beside the keyring. Frozen, so that a
# board with empty NVS refuses anything older than the firmware it was flashed with.
module("ota_origin.py", base_path="../../keyring")
