"""`otakit sim inspect` tells what is there: blank otadata as blank, a MicroPython build's version
from its banner when its app descriptor has none."""

from __future__ import annotations

from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.sim.inspect import micropython_version


def test_blank_otadata_is_shown_as_blank(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    app = tmp_path / "app.bin"
    app.write_bytes(make_app_image("1.1.0"))
    img = tmp_path / "f.img"
    assert main(["sim", "flash", "--app", str(app), "--out", str(img)]) == 0
    capsys.readouterr()
    assert main(["sim", "inspect", str(img)]) == 0
    out = capsys.readouterr().out
    assert "otadata[0]: blank (erased) -> invalid" in out and "crc bad" not in out
    assert "slot ota_0: app 1.1.0" in out


def test_version_from_the_banner_when_the_descriptor_has_none() -> None:
    image = bytes(make_app_image("")) + b"\0MicroPython v1.25.0 on 2025-04-15; Generic ESP32\0"
    assert micropython_version(image) == "v1.25.0 (2025-04-15)"
    assert micropython_version(make_app_image("")) == ""


def test_the_official_image_shows_its_version(real_firmware_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    app = real_firmware_dir / "ESP32_GENERIC-OTA-20250415-v1.25.0.app.bin"
    if not app.is_file():
        pytest.skip("../shared/firmware has no ESP32_GENERIC-OTA v1.25.0 app image")
    img = tmp_path / "f.img"
    assert main(["sim", "flash", "--app", str(app), "--out", str(img)]) == 0
    capsys.readouterr()
    assert main(["sim", "inspect", str(img)]) == 0
    assert "slot ota_0: app v1.25.0 (2025-04-15)" in capsys.readouterr().out
