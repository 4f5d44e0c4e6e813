# ota: signed, power-safe over-the-air updates for MicroPython on ESP32.
# MIT license; Copyright (c) 2026 otakit contributors
__version__ = "0.1.0"
