"""`otakit layout check|suggest` with the real MicroPython images in ../shared/firmware (skipped
with a reason when absent) and synthetic ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.boards import load_board, parse_partitions_csv
from otakit.cli import main
from otakit.errors import ImageError
from otakit.layout import check_fit, parse_margin, parse_size, suggest_layout, to_csv
from otakit.sim.flash import make_firmware_bin

V121_OTA = "ESP32_GENERIC-OTA-v1.21.0.app.bin"
V123 = "ESP32_GENERIC-20240602-v1.23.0.app.bin"
C3_FULL = "ESP32_GENERIC_C3-20250415-v1.25.0.bin"


def _real(d: Path, name: str) -> Path:
    p = d / name
    if not p.is_file():
        pytest.skip(f"../shared/firmware/{name} is absent")
    return p


def test_v121_ota_app_fits_with_12512_bytes_to_spare(real_firmware_dir: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    app = _real(real_firmware_dir, V121_OTA)
    assert main(["layout", "check", "--board", "esp32", "--app", str(app)]) == 0
    assert "with 12512 bytes to spare" in capsys.readouterr().out
    assert check_fit(load_board("esp32"), app.read_bytes()).spare == 12512


def test_v123_non_ota_app_does_not_fit_0x180000(real_firmware_dir: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    app = _real(real_firmware_dir, V123)
    assert main(["layout", "check", "--board", "esp32", "--app", str(app)]) == 1
    err = capsys.readouterr().err
    assert "does not fit" in err and "over by 99936 bytes" in err  # 1,672,800 - 0x180000
    # ... and fits the 8 MB board's 3 MiB slots.
    assert main(["layout", "check", "--board", "esp32-8mb", "--app", str(app)]) == 0


def test_suggest_for_v123_on_4mb(real_firmware_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    app = _real(real_firmware_dir, V123)
    assert main(["layout", "suggest", "--flash", "4MB", "--app", str(app)]) == 0
    parts = parse_partitions_csv(capsys.readouterr().out)
    by = {p.label: p for p in parts}
    assert by["ota_0"].size == by["ota_1"].size >= 1672800 * 1.1
    assert by["ota_0"].offset == 0x10000 and by["ota_1"].offset % 0x10000 == 0
    assert by["vfs"].offset == by["ota_1"].offset + by["ota_1"].size
    assert by["vfs"].offset + by["vfs"].size == 4 << 20
    # The suggestion is the largest vfs for that margin: one 64 KiB step less would not hold it.
    assert by["ota_0"].size - 0x10000 < 1672800 * 1.1
    out = tmp_path / "partitions.csv"
    assert main(["layout", "suggest", "--flash", "4MB", "--app", str(app), "--out",
                 str(out)]) == 0
    assert parse_partitions_csv(out.read_text()) == parts


def test_real_c3_app_needs_the_c3_boards_bigger_slots(real_firmware_dir: Path,
                                                      tmp_path: Path) -> None:
    full = _real(real_firmware_dir, C3_FULL).read_bytes()
    app = full[0x10000:]  # makeimg.py: app at its flash offset, bootloader at 0x0
    fit = check_fit(load_board("esp32c3"), app)
    assert fit.fits and fit.size == 1770320
    assert fit.size > 0x180000  # it would not fit ESP32_GENERIC-OTA's slots
    with pytest.raises(ImageError, match="chip id 5"):
        check_fit(load_board("esp32"), app)


def test_firmware_bin_is_refused_with_a_hint(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    fw = tmp_path / "firmware.bin"
    fw.write_bytes(make_firmware_bin("esp32", make_app_image("1.0.0")))
    assert main(["layout", "check", "--board", "esp32", "--app", str(fw)]) == 1
    assert "full firmware.bin" in capsys.readouterr().err


def test_suggest_too_small_flash_says_by_how_much() -> None:
    with pytest.raises(ImageError, match="bytes more than the") as e:
        suggest_layout(2 << 20, 1_600_000)
    assert e.value.reason == "TOO_LARGE"


def test_suggest_is_aligned_and_round_trips_as_csv() -> None:
    parts = suggest_layout(8 << 20, 1_429_744, 0.25)
    assert parse_partitions_csv(to_csv(parts)) == parts
    assert [p.label for p in parts] == ["nvs", "otadata", "phy_init", "ota_0", "ota_1", "vfs"]
    assert all(p.offset % 0x10000 == 0 for p in parts if p.type == 0)


@pytest.mark.parametrize(("text", "value"), [("4MB", 4 << 20), ("8M", 8 << 20),
                                             ("4MiB", 4 << 20), ("0x400000", 4 << 20),
                                             ("512K", 512 << 10)])
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_parse_margin_and_bad_options(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert parse_margin("10%") == pytest.approx(0.1) and parse_margin("0.2") == 0.2
    app = tmp_path / "a.bin"
    app.write_bytes(make_app_image("1"))
    assert main(["layout", "suggest", "--flash", "four", "--app", str(app)]) == 2
    assert main(["layout", "suggest", "--flash", "4MB", "--margin", "150%", "--app",
                 str(app)]) == 2
