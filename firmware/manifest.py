# firmware/manifest.py: the update agent for MicroPython's frozen-module manifests, in the style
# of micropython-lib. A product's own board manifest freezes the agent with
#     include("PATH/TO/otakit/firmware/manifest.py")
# and freezes its keyring itself (module("ota_keys.py", base_path=...), written by
# `otakit key export`): frozen, the trusted keys never come from the writable filesystem
# (docs/quickstart.md). A development board installs the same files with mip instead
# (firmware/package.json). otakit's own boards (boards/*/manifest.py) include this file the same
# way, and freeze the example app, the keyring and the origin module beside it.
# metadata() and package() are defined by MicroPython's tools/manifestfile.py, which runs this:
# pyright: reportUndefinedVariable=false
metadata(description="otakit: signed, power-safe OTA updates for ESP32", version="0.1.0")

package("ota")
