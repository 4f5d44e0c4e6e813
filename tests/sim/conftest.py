"""Fixtures for the simulated-board conformance suite (tests/sim): images, fresh flash, a runner.

Every test drives the real MicroPython unix port through `otakit.sim.runner.run`, with an empty
app directory so that only the test's own script runs after the simulated bootloader.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.sim.flash import create_flash, make_firmware_bin
from otakit.sim.runner import RunResult, run

from simhelpers import UID


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """App image files: v1, v2, v3, crash (v2 that panics before boot.py), fwbin (firmware.bin)."""
    d = tmp_path_factory.mktemp("images")
    out = {}
    for name, data in {
        "v1": make_app_image("1.0.0"),
        "v2": make_app_image("2.0.0"),
        "v3": make_app_image("3.0.0"),
        "crash": make_app_image("2.0.0", behaviour="crash"),
        "big": make_app_image("2.0.0", size=1536 * 1024 - 4096),
    }.items():
        (d / f"{name}.bin").write_bytes(data)
        out[name] = d / f"{name}.bin"
    (d / "fwbin.bin").write_bytes(make_firmware_bin("esp32", make_app_image("2.0.0")))
    out["fwbin"] = d / "fwbin.bin"
    return out


@pytest.fixture
def flash(tmp_path: Path, images: dict[str, Path]) -> Path:
    """A freshly flashed 4 MiB esp32 image with v1 in ota_0 and blank otadata."""
    return create_flash("esp32", images["v1"].read_bytes(), tmp_path / "flash.img", uid=UID)


# Device-side helpers prepended to every script: write an image file to a partition through
# 2-arg writeblocks in 4 KiB blocks (the way the agent does), and dump otadata.
PRELUDE = '''
import esp32, machine, struct, binascii
P = esp32.Partition
def write_image(part, path):
    buf = bytearray(4096)
    blk = 0
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            for i in range(n, 4096):
                buf[i] = 0xFF
            part.writeblocks(blk, buf)
            blk += 1
def otadata():
    od = P("otadata")
    out = []
    b = bytearray(32)
    for i in (0, 1):
        od.readblocks(i, b)
        seq, _, state, crc = struct.unpack("<I20sII", b)
        out.append(None if seq == 0xFFFFFFFF else (seq, state))
    return out
def R(*a):
    print("R:", repr(a[0] if len(a) == 1 else a))
def label(p):
    return p.info()[4]
'''


@pytest.fixture
def device(tmp_path: Path):
    """Run device code (a string) on a flash image; PRELUDE is prepended."""
    app_dir = tmp_path / "app"
    app_dir.mkdir(exist_ok=True)
    counter = iter(range(1000))

    def _run(flash_path: Path, code: str, **kw) -> RunResult:
        script = tmp_path / f"script{next(counter)}.py"
        script.write_text(PRELUDE + textwrap.dedent(code))
        kw.setdefault("app_dir", app_dir)
        kw.setdefault("timeout", 30)
        return run(flash_path, script=script, **kw)

    return _run
