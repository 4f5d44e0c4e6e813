"""The simulated ESP32 board: flash images, the boot runner and inspection.

- `otakit.sim.flash`: build a flash image (`create_flash`, `make_firmware_bin`).
- `otakit.sim.runner`: power on and run the board across resets (`run` -> `RunResult`).
- `otakit.sim.inspect`: read partitions, otadata, the next boot slot and NVS (`read_state`).
The device side lives in ``boards/unix`` (docs/simulator.md).
"""
