"""Board definitions (boards/<name>): tables, metadata, frozen manifests, and the simulated board
reading the same tables. The firmware build itself is not run here (tests/host/test_build.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.boards import (
    available_boards, load_board, parse_partition_table, partition_table_bin,
)
from otakit.frozen import manifest_calls, stage_sources
from otakit.cli import main
from otakit.keys import export_keyring, generate_key
from otakit.paths import FIRMWARE_DIR
from otakit.sim.flash import make_firmware_bin

TARGETS = ["esp32", "esp32s3", "esp32c3", "esp32-8mb"]
# board -> (chip, chip id, flash size, bootloader offset, MicroPython board)
EXPECTED = {
    "esp32": ("esp32", 0, 4 << 20, 0x1000, "ESP32_GENERIC"),
    "esp32s3": ("esp32s3", 9, 8 << 20, 0x0, "ESP32_GENERIC_S3"),
    "esp32c3": ("esp32c3", 5, 4 << 20, 0x0, "ESP32_GENERIC_C3"),
    "esp32-8mb": ("esp32", 0, 8 << 20, 0x1000, "ESP32_GENERIC"),
}


def test_target_boards_are_defined() -> None:
    assert set(TARGETS) <= set(available_boards())


@pytest.mark.parametrize("name", TARGETS)
def test_board_metadata(name: str) -> None:
    b = load_board(name)
    assert (b.chip, b.chip_id, b.flash_size, b.bootloader_offset,
            b.micropython_board) == EXPECTED[name]


@pytest.mark.parametrize("name", TARGETS)
def test_partition_table_is_a_valid_ota_layout(name: str) -> None:
    b = load_board(name)
    labels = [p.label for p in b.partitions]
    assert {"nvs", "otadata", "phy_init", "ota_0", "ota_1"} <= set(labels)
    assert "factory" not in labels  # rollback needs ota_0/ota_1 and no factory
    assert b.partition("otadata").size == 0x2000
    assert [p.subtype for p in b.ota_slots] == [0x10, 0x11]
    assert b.ota_slots[0].size == b.ota_slots[1].size
    spans = sorted((p.offset, p.offset + p.size) for p in b.partitions)
    assert spans[0][0] >= 0x9000  # after the table at 0x8000
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, f"overlap in {name}"
    assert spans[-1][1] <= b.flash_size
    for p in b.partitions:
        assert p.offset % 0x1000 == 0
        if p.type == 0:
            assert p.offset % 0x10000 == 0  # gen_esp32part.py app alignment
    parts, md5_ok = parse_partition_table(partition_table_bin(b.partitions))
    assert md5_ok and tuple(parts) == b.partitions


def test_esp32_layout_is_micropythons_ota_table() -> None:
    b = load_board("esp32")
    assert [(p.label, p.offset, p.size) for p in b.partitions] == [
        ("nvs", 0x9000, 0x4000), ("otadata", 0xD000, 0x2000), ("phy_init", 0xF000, 0x1000),
        ("ota_0", 0x10000, 0x180000), ("ota_1", 0x190000, 0x180000)]


def test_esp32s3_has_an_explicit_vfs() -> None:
    vfs = load_board("esp32s3").partition("vfs")
    assert (vfs.type, vfs.subtype, vfs.offset + vfs.size) == (1, 0x81, 8 << 20)


@pytest.mark.parametrize("name", TARGETS)
def test_manifest_freezes_agent_keyring_origin_app_boot_and_main_on_the_stock_manifest(name: str,
                                                                       tmp_path: Path) -> None:
    calls = manifest_calls(load_board(name))
    assert calls[0] == ("include", ("$(PORT_DIR)/boards/manifest.py",), {})
    frozen = {(c[0], c[1][0]) for c in calls[1:]}
    assert frozen == {("package", "ota"), ("module", "doorlock.py"), ("module", "lockui.py"),
                      ("module", "ota_keys.py"),
                      ("module", "ota_origin.py"), ("module", "boot.py"), ("module", "main.py")}
    # Every path resolves in the tree `otakit build` stages (relative to the manifest's dir).
    keyring = tmp_path / "ota_keys.py"
    keyring.write_text(export_keyring([generate_key("ed25519")]))
    staged = stage_sources(load_board(name), keyring, tmp_path / "stage")
    for kind, (what,), kw in calls[1:]:
        target = (staged.parent / kw["base_path"] / what).resolve()
        assert target.is_dir() if kind == "package" else target.is_file(), target
    assert (staged.parent / "../../firmware/ota/agent.py").resolve().is_file()


@pytest.mark.parametrize("name", TARGETS)
def test_board_manifest_freezes_the_agent_through_firmware_manifest(name: str,
                                                                    tmp_path: Path) -> None:
    # The agent comes in as a product's own manifest brings it: include() of the
    # micropython-lib style firmware/manifest.py, never a package() of the board's own.
    raw = manifest_calls(load_board(name), follow=False)
    assert ("include", ("../../firmware/manifest.py",), {}) in raw
    assert all(kind != "package" for kind, _, _ in raw)
    keyring = tmp_path / "ota_keys.py"
    keyring.write_text(export_keyring([generate_key("ed25519")]))
    staged = stage_sources(load_board(name), keyring, tmp_path / "stage")
    assert (staged.parent / "../../firmware/manifest.py").resolve().read_text() == \
        (FIRMWARE_DIR / "manifest.py").read_text()


@pytest.mark.parametrize("name", ["esp32s3", "esp32c3"])
def test_simulated_board_reads_the_same_table(name: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    b = load_board(name)
    app = tmp_path / "app.bin"
    app.write_bytes(make_app_image("1.0.0", chip=b.chip))
    img = tmp_path / "flash.img"
    assert main(["sim", "flash", "--board", name, "--app", str(app), "--out", str(img)]) == 0
    assert img.stat().st_size == b.flash_size
    assert main(["sim", "inspect", str(img), "--json"]) == 0
    out = capsys.readouterr().out
    assert f'"board": "{name}"' in out and '"table_md5_ok": true' in out
    data = img.read_bytes()
    parts, md5_ok = parse_partition_table(data[0x8000:0x8C00])
    assert md5_ok and tuple(parts) == b.partitions
    assert data[b.bootloader_offset] == 0xE9 and data[b.bootloader_offset + 12] == b.chip_id


def test_simulated_c3_boots_its_app(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    app = tmp_path / "app.bin"
    app.write_bytes(make_app_image("1.0.0", chip="esp32c3"))
    img = tmp_path / "flash.img"
    assert main(["sim", "flash", "--board", "esp32c3", "--app", str(app), "--out", str(img)]) == 0
    appdir = tmp_path / "appdir"
    appdir.mkdir()
    (appdir / "boot.py").write_text("")
    (appdir / "probe.py").write_text(
        "import esp32\nprint('RUN', esp32.Partition(esp32.Partition.RUNNING).info()[4])\n")
    assert main(["sim", "run", str(img), "--app-dir", str(appdir), str(appdir / "probe.py")]) == 0
    assert "RUN ota_0" in capsys.readouterr().out


@pytest.mark.parametrize("name", TARGETS)
def test_firmware_bin_layout_per_board(name: str) -> None:
    b = load_board(name)
    fw = make_firmware_bin(b, make_app_image("1.0.0", chip=b.chip))
    pt = 0x8000 - b.bootloader_offset
    parts, md5_ok = parse_partition_table(fw[pt:pt + 0xC00])
    assert md5_ok and tuple(parts) == b.partitions
    assert fw[0x10000 - b.bootloader_offset] == 0xE9
