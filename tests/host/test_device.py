"""`otakit flash` and `otakit deploy`: the checks before anything is written, and the exact
esptool / mpremote arguments. NOT EXERCISED HERE: talking to a board. There is no ESP32 and no
serial port on this machine; esptool's Python API and mpremote are replaced by recorders
injected into otakit.flash.run_esptool and otakit.deploy.run_mpremote. The real thing is
`make hil PORT=...` (tests/hw)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hosthelpers import write_ca_pem

from otakit import deploy as dev_deploy
from otakit import flash as dev_flash
from otakit.appimage import make_app_image
from otakit.boards import load_board, partition_table_bin
from otakit.cli import main
from otakit.errors import ImageError, KeyFileError, ToolError
from otakit.keys import export_keyring, generate_key
from otakit.sim.flash import bootloader_image, make_firmware_bin

PORT = "/dev/ttyUSB-otakit-test-absent"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_firmware_bin_goes_at_the_bootloader_offset(tmp_path: Path) -> None:
    for name, off in (("esp32", 0x1000), ("esp32c3", 0x0), ("esp32s3", 0x0)):
        b = load_board(name)
        fw = _write(tmp_path / f"{name}.bin",
                    make_firmware_bin(b, make_app_image("1", chip=b.chip)))
        plan = dev_flash.plan_flash(b, fw)
        assert (plan.kind, plan.writes) == ("firmware", [(off, fw)])
        assert dev_flash.esptool_commands(plan, PORT) == [[
            "--chip", b.chip, "--port", PORT, "--baud", "460800", "write-flash",
            "--flash-size", "keep", hex(off), str(fw)]]


def test_app_image_goes_to_ota_0_and_erase_otadata(tmp_path: Path) -> None:
    b = load_board("esp32")
    app = _write(tmp_path / "app.bin", make_app_image("1"))
    plan = dev_flash.plan_flash(b, app, erase_otadata=True)
    assert (plan.kind, plan.writes, plan.erase) == ("app", [(0x10000, app)], [(0xD000, 0x2000)])
    erase, write = dev_flash.esptool_commands(plan, PORT, 115200)
    assert erase == ["--chip", "esp32", "--port", PORT, "--baud", "115200", "--after",
                     "no-reset", "erase-region", "0xd000", "0x2000"]
    assert write[-2:] == ["0x10000", str(app)]


def test_build_directory_parts_at_the_boards_offsets(tmp_path: Path) -> None:
    b = load_board("esp32s3")
    (tmp_path / "bootloader").mkdir()
    (tmp_path / "partition_table").mkdir()
    boot = _write(tmp_path / "bootloader/bootloader.bin", bootloader_image("esp32s3"))
    table = _write(tmp_path / "partition_table/partition-table.bin",
                   partition_table_bin(b.partitions))
    app = _write(tmp_path / "micropython.bin", make_app_image("1", chip="esp32s3"))
    plan = dev_flash.plan_flash(b, tmp_path)
    assert plan.writes == [(0x0, boot), (0x8000, table), (0x10000, app)]
    table.write_bytes(partition_table_bin(load_board("esp32c3").partitions))
    with pytest.raises(ImageError, match="not board esp32s3's partition table"):
        dev_flash.plan_flash(b, tmp_path)


def test_refuses_an_app_for_another_chip(tmp_path: Path) -> None:
    app = _write(tmp_path / "app.bin", make_app_image("1", chip="esp32c3"))
    with pytest.raises(ImageError, match="chip id 5"):
        dev_flash.plan_flash(load_board("esp32"), app)


def test_refuses_a_firmware_bin_for_another_chip(tmp_path: Path) -> None:
    fw = _write(tmp_path / "fw.bin",
                make_firmware_bin("esp32c3", make_app_image("1", chip="esp32c3")))
    with pytest.raises(ImageError, match="chip id 5"):
        dev_flash.plan_flash(load_board("esp32s3"), fw)


def test_refuses_a_firmware_bin_whose_table_differs(tmp_path: Path) -> None:
    fw = _write(tmp_path / "fw.bin", make_firmware_bin("esp32-8mb", make_app_image("1")))
    with pytest.raises(ImageError, match="partition table differs"):
        dev_flash.plan_flash(load_board("esp32"), fw)


def test_refuses_an_app_too_big_for_the_slot(real_firmware_dir: Path) -> None:
    app = real_firmware_dir / "ESP32_GENERIC-20240602-v1.23.0.app.bin"
    if not app.is_file():
        pytest.skip("../shared/firmware has no v1.23.0 app image")
    with pytest.raises(ImageError, match="over by 99936") as e:
        dev_flash.plan_flash(load_board("esp32"), app)
    assert e.value.reason == "PAYLOAD_TOO_LARGE"


def test_esptool_is_called_through_its_python_api(tmp_path: Path) -> None:
    b = load_board("esp32")
    fw = _write(tmp_path / "fw.bin", make_firmware_bin(b, make_app_image("1")))
    cmds = dev_flash.esptool_commands(dev_flash.plan_flash(b, fw, True), "/dev/ttyUSB0")
    seen: list[list[str]] = []
    dev_flash.run_esptool(cmds, main=seen.append)
    assert seen == cmds

    def fail(argv: list[str]) -> None:
        raise RuntimeError("Failed to connect to ESP32: No serial data received.")
    with pytest.raises(ToolError, match="No serial data received") as e:
        dev_flash.run_esptool(cmds, main=fail)
    assert e.value.reason == "FLASH_FAILED"


def test_missing_port_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    def never(*a: object, **k: object) -> None:
        raise AssertionError("esptool must not run without a port")
    monkeypatch.setattr(dev_flash, "run_esptool", never)
    fw = _write(tmp_path / "fw.bin", make_firmware_bin("esp32", make_app_image("1")))
    assert main(["flash", "--board", "esp32", "--port", PORT, str(fw)]) == 1
    err = capsys.readouterr().err
    assert f"otakit: NO_PORT: serial port {PORT} not found" in err
    dev_flash.check_port("rfc2217://localhost:4000")  # network ports are esptool's to check


def test_flash_cli_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fw = _write(tmp_path / "fw.bin", make_firmware_bin("esp32c3",
                                                       make_app_image("1", chip="esp32c3")))
    assert main(["flash", "--board", "esp32c3", "--port", PORT, "--erase-otadata", "--dry-run",
                 str(fw)]) == 0
    out = capsys.readouterr().out
    assert f"$ esptool --chip esp32c3 --port {PORT} --baud 460800 write-flash" in out
    assert "erase-region 0xd000 0x2000" in out and "dry run: nothing written" in out


@pytest.fixture
def dev_files(tmp_path: Path) -> dict[str, Path]:
    keyring = tmp_path / "ota_keys.py"
    keyring.write_text(export_keyring([generate_key("ed25519")]))
    config = tmp_path / "ota_config.json"
    config.write_text('{"url": "http://192.168.1.10:8000/repo", "product": "doorlock", '
                      '"board": "esp32", "channel": "stable", "interval_s": 60}')
    return {"keyring": keyring, "config": config, "staging": tmp_path / "staging"}


def test_deploy_compiles_and_lays_out_the_files(dev_files: dict[str, Path]) -> None:
    plan = dev_deploy.plan_deploy(load_board("esp32"), "/dev/ttyUSB0", dev_files["config"],
                                  dev_files["keyring"], dev_files["staging"])
    assert {"boot.py", "main.py", "ota_config.json", "lib/doorlock.mpy", "lib/ota_keys.mpy",
            "lib/ota/__init__.mpy", "lib/ota/agent.mpy", "lib/ota/trial.mpy"} <= set(plan.files)
    assert not any(f.endswith(".py") and f.startswith("lib/") for f in plan.files)
    mpy = (dev_files["staging"] / "lib/ota/agent.mpy").read_bytes()
    assert mpy[0] == ord("M")  # a .mpy file
    assert plan.argv == ["connect", "/dev/ttyUSB0", "cp", "-r", "lib", ":",
                         "+", "cp", "boot.py", ":boot.py", "+", "cp", "main.py", ":main.py",
                         "+", "cp", "ota_config.json", ":ota_config.json", "+", "reset"]


def test_deploy_runs_mpremote_in_the_staging_dir(dev_files: dict[str, Path]) -> None:
    plan = dev_deploy.plan_deploy(load_board("esp32"), "/dev/ttyUSB0", dev_files["config"],
                                  dev_files["keyring"], dev_files["staging"])
    calls: list = []

    def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
        calls.append((cmd, kw))
        return subprocess.CompletedProcess(cmd, 0)
    dev_deploy.run_mpremote(plan, run=run)
    assert calls == [([sys.executable, "-m", "mpremote", *plan.argv],
                      {"cwd": plan.staging, "check": False})]
    with pytest.raises(ToolError, match="exit code 1") as e:
        dev_deploy.run_mpremote(plan, run=lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1))
    assert e.value.reason == "DEPLOY_FAILED"


def test_deploy_refusals(dev_files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="board 'esp32'"):
        dev_deploy.plan_deploy(load_board("esp32c3"), "p", dev_files["config"],
                               dev_files["keyring"], tmp_path / "s1")
    with pytest.raises(KeyFileError, match="otakit key export"):
        dev_deploy.plan_deploy(load_board("esp32"), "p", dev_files["config"],
                               tmp_path / "none.py", tmp_path / "s2")
    bad = tmp_path / "bad.json"
    bad.write_text('{"url": "http://x/repo"}')
    with pytest.raises(ToolError, match="lacks product, board"):
        dev_deploy.plan_deploy(load_board("esp32"), "p", bad, dev_files["keyring"],
                               tmp_path / "s3")


def test_deploy_cli_missing_port(dev_files: dict[str, Path],
                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["deploy", "--port", PORT, "--config", str(dev_files["config"]),
                 "--keyring", str(dev_files["keyring"])]) == 1
    captured = capsys.readouterr()
    assert f"serial port {PORT} not found" in captured.err
    assert "development deploy" in captured.out


def test_deploy_copies_the_ca_and_the_content_key(dev_files: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    # An https board needs its CA on the filesystem, named by ota_config.json (the app refuses
    # https without one), and an encrypted release needs ota_content.key: deploy sends both.
    import json

    config = tmp_path / "https.json"
    config.write_text('{"url": "https://updates.example.com/repo", "product": "doorlock", '
                      '"board": "esp32", "channel": "stable"}')
    der = write_ca_pem(tmp_path / "ca.pem")
    assert main(["key", "content", str(tmp_path / "product.key")]) == 0
    plan = dev_deploy.plan_deploy(load_board("esp32"), "/dev/ttyUSB0", config,
                                  dev_files["keyring"], tmp_path / "staged", ca=tmp_path / "ca.pem",
                                  content_key=tmp_path / "product.key")
    staged = tmp_path / "staged"
    assert json.loads((staged / "ota_config.json").read_text()) == {
        **json.loads(config.read_text()), "ca": "ota_ca.der"}
    assert (staged / "ota_ca.der").read_bytes() == der
    assert (staged / "ota_content.key").read_text() == \
        (tmp_path / "product.key").read_text()
    assert {"ota_ca.der", "ota_content.key"} <= set(plan.files)
    cps = [plan.argv[i + 1:i + 3] for i, a in enumerate(plan.argv) if a == "cp"]
    assert ["ota_ca.der", ":ota_ca.der"] in cps and ["ota_content.key", ":ota_content.key"] in cps
    assert plan.argv[-2:] == ["+", "reset"]
    # a config that names its CA file already: the certificate goes there
    named = tmp_path / "named.json"
    named.write_text(config.read_text()[:-1] + ', "ca": "fleet-ca.der"}')
    plan = dev_deploy.plan_deploy(load_board("esp32"), "p", named, dev_files["keyring"],
                                  tmp_path / "staged2", ca=tmp_path / "ca.pem")
    assert (tmp_path / "staged2" / "fleet-ca.der").read_bytes() == der
    assert "ota_ca.der" not in plan.files and "ota_content.key" not in plan.files
    # the CLI says what goes and warns about the key on the filesystem
    capsys.readouterr()
    assert main(["deploy", "--port", "/dev/null", "--dry-run", "--config", str(config),
                 "--keyring", str(dev_files["keyring"]), "--ca", str(tmp_path / "ca.pem"),
                 "--content-key", str(tmp_path / "product.key")]) == 0
    out = capsys.readouterr().out
    assert "ota_ca.der" in out and "ota_content.key" in out
    assert "the keyring and the content key are files on the board's filesystem" in out


def test_deploy_refuses_an_https_board_without_its_ca(dev_files: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "https.json"
    config.write_text('{"url": "https://updates.example.com/repo", "product": "doorlock", '
                      '"board": "esp32"}')
    args = ["deploy", "--port", "/dev/null", "--dry-run", "--config", str(config),
            "--keyring", str(dev_files["keyring"])]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otakit: BAD_CONFIG: ")
    assert "https url but no CA certificate: give --ca FILE" in err
    (tmp_path / "not-a-cert.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n")
    assert main([*args, "--ca", str(tmp_path / "not-a-cert.pem")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otakit: BAD_ARGUMENT: ") and "not an X.509 certificate" in err
    write_ca_pem(tmp_path / "ca.pem")
    (tmp_path / "bad.key").write_text("otakit-content-key 00\n")
    assert main([*args, "--ca", str(tmp_path / "ca.pem"), "--content-key",
                 str(tmp_path / "bad.key")]) == 1
    assert capsys.readouterr().err.startswith("otakit: ")
    config.write_text(config.read_text()[:-1] + ', "ca": "../etc/ca.der"}')
    assert main([*args, "--ca", str(tmp_path / "ca.pem")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otakit: BAD_CONFIG: ") and "one file at the board's root" in err


class _Port:
    def __init__(self, device: str, vid: int | None) -> None:
        self.device, self.vid = device, vid


def test_port_from_env_else_the_one_usb_port_else_a_clear_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from serial.tools import list_ports

    ran: list[list[list[str]]] = []
    monkeypatch.setattr(dev_flash, "run_esptool", ran.append)
    monkeypatch.delenv("ESPTOOL_PORT", raising=False)
    fw = _write(tmp_path / "fw.bin", make_firmware_bin("esp32", make_app_image("1")))
    # no USB serial port present (a legacy UART without a USB id does not count)
    monkeypatch.setattr(list_ports, "comports", lambda: [_Port("/dev/ttyS0", None)])
    assert main(["flash", "--board", "esp32", str(fw)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otakit: NO_PORT: no serial port found")
    assert "--port" in err and "ESPTOOL_PORT" in err and ran == []
    # several: listed, none chosen
    monkeypatch.setattr(list_ports, "comports", lambda: [_Port("/dev/ttyUSB1", 0x10C4),
                                                         _Port("/dev/ttyACM0", 0x303A)])
    assert main(["deploy", "--board", "esp32"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otakit: PORT_AMBIGUOUS: 2 serial ports found")
    assert "/dev/ttyACM0, /dev/ttyUSB1" in err
    # exactly one: used
    monkeypatch.setattr(list_ports, "comports", lambda: [_Port("/dev/null", 0x10C4)])
    assert main(["flash", "--board", "esp32", "--dry-run", str(fw)]) == 0
    assert "--port /dev/null" in capsys.readouterr().out
    # $ESPTOOL_PORT and $ESPTOOL_BAUD, as esptool reads them
    monkeypatch.setenv("ESPTOOL_PORT", "/dev/null")
    monkeypatch.setenv("ESPTOOL_BAUD", "115200")
    monkeypatch.setattr(list_ports, "comports", lambda: [])
    assert main(["flash", "--board", "esp32", str(fw)]) == 0
    assert ran and "/dev/null" in ran[0][0] and "115200" in ran[0][0]


def _with_table(board: str, parts: tuple) -> bytes:
    import dataclasses

    return make_firmware_bin(dataclasses.replace(load_board(board), partitions=parts),
                             make_app_image("1"))


def test_a_compatible_table_with_a_vfs_entry_is_accepted(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    from otakit.boards import PartitionEntry

    b = load_board("esp32")
    vfs = PartitionEntry("vfs", 1, 0x81, 0x310000, 0xF0000)
    fw = _write(tmp_path / "fw.bin", _with_table("esp32", (*b.partitions, vfs)))
    assert dev_flash.plan_flash(b, fw).kind == "firmware"
    # real differences are named, one per partition, on one line
    small = PartitionEntry("ota_1", 0, 0x11, 0x190000, 0x100000)
    app3 = PartitionEntry("factory", 0, 0x00, 0x310000, 0xF0000)
    big_vfs = PartitionEntry("vfs", 1, 0x81, 0x310000, 0x100000)
    cases = [
        ((*b.partitions[:4], small, vfs), "its ota_1 is ota_1@0x190000+0x100000, the board's "
         "ota_1@0x190000+0x180000"),
        ((*b.partitions, app3), "extra partition factory@0x310000+0xf0000 (type 0 subtype "
         "0x00) that is not a filesystem"),
        ((*b.partitions, big_vfs), "ends beyond the board's 4 MiB flash"),
        (b.partitions[:4], "it has no ota_1 partition"),
    ]
    for parts, why in cases:
        fw.write_bytes(_with_table("esp32", parts))
        assert main(["flash", "--board", "esp32", "--port", PORT, "--dry-run", str(fw)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("otakit: BAD_IMAGE: ") and why in err, err


def test_the_official_ota_image_with_vfs_is_accepted(real_firmware_dir: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    fw = real_firmware_dir / "ESP32_GENERIC-OTA-20250415-v1.25.0.bin"
    if not fw.is_file():
        pytest.skip("../shared/firmware has no ESP32_GENERIC-OTA v1.25.0 image")
    assert main(["flash", "--board", "esp32", "--port", PORT, "--dry-run", str(fw)]) == 0
    assert "0x1000 " in capsys.readouterr().out
