"""`otakit build`: toolchain choice, staging, the MicroPython board directory and the exact
commands. NOT EXERCISED HERE: the real firmware build. This machine has no ESP-IDF, no docker
engine and no MicroPython checkout, so the commands are checked as text and the step after them
(checking and copying the outputs) is fed test doubles made by otakit.appimage, never presented as
a build. test_real_build runs one when MICROPY_DIR and IDF_PATH point at real checkouts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from otakit import build as fwbuild
from otakit.appimage import make_app_image
from otakit.boards import load_board
from otakit.cli import main
from otakit.errors import ImageError, KeyFileError, ToolError
from otakit.frozen import origin_module
from otakit.keys import export_keyring, generate_key
from otakit.sim.flash import make_firmware_bin

NOT_HERE = ("the real firmware build is not exercised on this machine (no ESP-IDF, docker or "
            "MicroPython checkout): set MICROPY_DIR and IDF_PATH to run it")


@pytest.fixture
def trees(tmp_path: Path) -> dict[str, Path]:
    """Stand-in checkouts: only the files find_toolchain looks for (nothing can build here)."""
    mpy, idf = tmp_path / "micropython", tmp_path / "esp-idf"
    (mpy / "ports" / "esp32").mkdir(parents=True)
    (mpy / "ports" / "esp32" / "Makefile").write_text("# stand-in\n")
    idf.mkdir()
    (idf / "export.sh").write_text("# stand-in\n")
    keyring = tmp_path / "ota_keys.py"
    keyring.write_text(export_keyring([generate_key("ed25519")]))
    return {"mpy": mpy, "idf": idf, "keyring": keyring, "out": tmp_path / "out"}


def _none(_: str) -> str | None:
    return None


def test_no_toolchain_is_a_clear_error(trees: dict[str, Path]) -> None:
    with pytest.raises(ToolError) as e:
        fwbuild.find_toolchain(str(trees["mpy"]), None, False, env={}, which=_none)
    assert e.value.reason == "NO_TOOLCHAIN" and "--idf PATH" in str(e.value)
    assert "--docker" in str(e.value)


def test_docker_without_docker_or_mpbuild(trees: dict[str, Path]) -> None:
    with pytest.raises(ToolError, match="docker and mpbuild") as e:
        fwbuild.find_toolchain(str(trees["mpy"]), None, True, env={}, which=_none)
    assert e.value.reason == "NO_TOOLCHAIN"


def test_missing_micropython_checkout(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="--micropython PATH") as e:
        fwbuild.find_toolchain(str(tmp_path), None, False, env={}, which=_none)
    assert e.value.reason == "NO_MICROPYTHON_SRC"


def test_idf_from_environment_and_docker_fallback(trees: dict[str, Path]) -> None:
    tc = fwbuild.find_toolchain(None, None, False, which=_none,
                                env={"MICROPY_DIR": str(trees["mpy"]),
                                     "IDF_PATH": str(trees["idf"])})
    assert (tc.kind, tc.idf) == ("idf", trees["idf"].resolve())
    tc = fwbuild.find_toolchain(str(trees["mpy"]), None, False, env={},
                                which=lambda t: f"/usr/bin/{t}")
    assert (tc.kind, tc.mpbuild) == ("docker", "/usr/bin/mpbuild")


def test_idf_plan_stages_sources_and_prints_exact_commands(trees: dict[str, Path]) -> None:
    b = load_board("esp32c3")
    tc = fwbuild.find_toolchain(str(trees["mpy"]), str(trees["idf"]), False, env={})
    plan = fwbuild.plan_build(b, tc, trees["keyring"], trees["out"])
    stage, mpy = trees["out"].resolve() / "stage", trees["mpy"].resolve()
    assert plan.stage == stage and plan.board_dir == stage / "OTAKIT_ESP32C3"
    assert plan.build_dir == mpy / "ports/esp32/build-OTAKIT_ESP32C3"
    make_vars = (f"BOARD_DIR={stage}/OTAKIT_ESP32C3 BUILD=build-OTAKIT_ESP32C3 "
                 f"FROZEN_MANIFEST={stage}/boards/esp32c3/manifest.py")
    assert plan.commands == [["bash", "-c", (
        f". {trees['idf'].resolve()}/export.sh >/dev/null"
        f" && make -C {mpy}/mpy-cross"
        f" && make -C {mpy}/ports/esp32 {make_vars} submodules"
        f" && make -C {mpy}/ports/esp32 {make_vars} all")]]
    for rel in ("boards/esp32c3/manifest.py", "boards/esp32c3/partitions.csv",
                "firmware/ota/agent.py", "firmware/doorlock.py", "keyring/ota_keys.py"):
        assert (stage / rel).is_file(), rel
    assert (stage / "keyring/ota_keys.py").read_text() == trees["keyring"].read_text()
    assert _origin(stage) == {"SEQUENCE": 0, "SECURITY_VERSION": 0}  # born at no release
    cmake = (plan.board_dir / "mpconfigboard.cmake").read_text()
    assert "include(boards/ESP32_GENERIC_C3/mpconfigboard.cmake)" in cmake
    assert "${MICROPY_BOARD_DIR}/sdkconfig.otakit" in cmake
    sdk = (plan.board_dir / "sdkconfig.otakit").read_text()
    assert f'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="{stage}/boards/esp32c3/partitions.csv"' in sdk
    assert "CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y" in sdk
    assert "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y" in sdk
    header = (plan.board_dir / "mpconfigboard.h").read_text()
    assert f'#include "{mpy}/ports/esp32/boards/ESP32_GENERIC_C3/mpconfigboard.h"' in header


def test_docker_plan_stages_inside_the_checkout(trees: dict[str, Path]) -> None:
    b = load_board("esp32s3")
    tc = fwbuild.Toolchain("docker", trees["mpy"].resolve(), None, "mpbuild")
    plan = fwbuild.plan_build(b, tc, trees["keyring"], trees["out"])
    stage = trees["mpy"].resolve() / "otakit-stage" / "esp32s3"
    assert plan.stage == stage  # mpbuild mounts only the MicroPython checkout
    assert plan.commands == [[
        "mpbuild", "build", "ESP32_GENERIC_S3", "", f"BOARD_DIR={stage}/OTAKIT_ESP32S3",
        "BUILD=build-OTAKIT_ESP32S3", f"FROZEN_MANIFEST={stage}/boards/esp32s3/manifest.py"]]
    assert "CONFIG_ESPTOOLPY_FLASHSIZE_8MB=y" in (plan.board_dir / "sdkconfig.otakit").read_text()


def test_no_build_without_a_keyring(trees: dict[str, Path], tmp_path: Path) -> None:
    tc = fwbuild.Toolchain("idf", trees["mpy"], trees["idf"])
    with pytest.raises(KeyFileError, match="otakit key export") as e:
        fwbuild.plan_build(load_board("esp32"), tc, tmp_path / "missing.py", trees["out"])
    assert e.value.reason == "NO_KEYRING"
    empty = tmp_path / "empty_keys.py"
    empty.write_text("# generated by otakit key export; do not edit\nKEYS = {\n}\n")
    with pytest.raises(KeyFileError, match="no keys"):
        fwbuild.plan_build(load_board("esp32"), tc, empty, trees["out"])


def _plan(trees: dict[str, Path], board: str = "esp32") -> fwbuild.BuildPlan:
    tc = fwbuild.Toolchain("idf", trees["mpy"].resolve(), trees["idf"].resolve())
    return fwbuild.plan_build(load_board(board), tc, trees["keyring"], trees["out"])


def _runner(returncode: int = 0, outputs: tuple[bytes, bytes] | None = None,
            build_dir: Path | None = None, calls: list | None = None):  # noqa: ANN202
    def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
        if calls is not None:
            calls.append((cmd, kw))
        if outputs and build_dir:
            # Test doubles standing in for a build's outputs (otakit.appimage), not a build.
            build_dir.mkdir(parents=True, exist_ok=True)
            (build_dir / "micropython.bin").write_bytes(outputs[0])
            (build_dir / "firmware.bin").write_bytes(outputs[1])
        return subprocess.CompletedProcess(cmd, returncode, b"", b"")
    return run


def test_failed_build_command(trees: dict[str, Path]) -> None:
    with pytest.raises(ToolError, match="exit code 2") as e:
        fwbuild.run_build(_plan(trees), run=_runner(2))
    assert e.value.reason == "BUILD_FAILED"


def test_build_that_leaves_no_output(trees: dict[str, Path]) -> None:
    with pytest.raises(ToolError, match="left no") as e:
        fwbuild.run_build(_plan(trees), run=_runner(0))
    assert e.value.reason == "NO_OUTPUT"


def test_outputs_are_checked_and_copied(trees: dict[str, Path]) -> None:
    plan = _plan(trees, "esp32c3")
    app = make_app_image("1.0.0", chip="esp32c3")
    calls: list = []
    res = fwbuild.run_build(plan, run=_runner(0, (app, make_firmware_bin("esp32c3", app)),
                                              plan.build_dir, calls))
    assert calls == [(plan.commands[0], {"cwd": plan.toolchain.micropython, "check": False})]
    assert res.app_image.read_bytes() == app and res.firmware_bin.name == "firmware.bin"
    assert (res.app_size, res.slot_size) == (len(app), 0x1D0000)


def test_outputs_with_another_table_are_refused(trees: dict[str, Path]) -> None:
    plan = _plan(trees, "esp32")
    app = make_app_image("1.0.0")
    fw = make_firmware_bin("esp32-8mb", app)  # the 8 MB board's table, not esp32's
    with pytest.raises(ImageError, match="partition table differs"):
        fwbuild.run_build(plan, run=_runner(0, (app, fw), plan.build_dir))


def test_cli_dry_run_prints_commands(trees: dict[str, Path],
                                     capsys: pytest.CaptureFixture) -> None:
    argv = ["build", "--board", "esp32", "--micropython", str(trees["mpy"]), "--idf",
            str(trees["idf"]), "--keyring", str(trees["keyring"]), "--out", str(trees["out"]),
            "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "toolchain idf" in out and "dry run: nothing built" in out
    assert "make -C" in out and "BOARD_DIR=" in out and "OTAKIT_ESP32" in out


def _origin(stage: Path) -> dict[str, int]:
    # The frozen ota_origin module as the device reads it (its module-level names).
    ns: dict[str, int] = {}
    exec((stage / "keyring/ota_origin.py").read_text(), ns)  # noqa: S102 - our own output
    return {k: ns[k] for k in ("SEQUENCE", "SECURITY_VERSION")}


def test_cli_freezes_the_firmwares_own_sequence_and_security_version(
        trees: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    argv = ["build", "--board", "esp32", "--micropython", str(trees["mpy"]), "--idf",
            str(trees["idf"]), "--keyring", str(trees["keyring"]), "--out", str(trees["out"]),
            "--sequence", "10", "--security-version", "3", "--dry-run"]
    assert main(argv) == 0
    assert _origin(trees["out"].resolve() / "stage") == {"SEQUENCE": 10, "SECURITY_VERSION": 3}
    assert main([*argv[:-3], "--security-version=-1", "--dry-run"]) == 2  # usage error
    assert "Invalid value for '--security-version'" in capsys.readouterr().err
    with pytest.raises(ToolError) as e:
        origin_module(2**31, 0)
    assert e.value.reason == "BAD_ARGUMENT"


def test_a_build_is_a_product_build_unless_asked_for_a_development_build(
        trees: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    # A product build's devices take only https update URLs (ota.buildinfo.url_refusal); --dev
    # freezes DEVELOPMENT = True, which lets them take http too.
    argv = ["build", "--board", "esp32", "--micropython", str(trees["mpy"]), "--idf",
            str(trees["idf"]), "--keyring", str(trees["keyring"]), "--out", str(trees["out"]),
            "--dry-run"]
    ns: dict[str, object] = {}
    for extra, development in (([], False), (["--dev"], True)):
        assert main([*argv, *extra]) == 0
        exec((trees["out"].resolve() / "stage/keyring/ota_origin.py").read_text(), ns)  # noqa: S102
        assert ns["DEVELOPMENT"] is development
        assert fwbuild.http_allowed(development) is development
    out = capsys.readouterr().out
    assert "a product build: https:// update URLs only" in out
    assert "a development build: http:// update URLs allowed" in out
    assert "product build" in fwbuild.HTTP_POLICY and "development build" in fwbuild.HTTP_POLICY


def test_cli_without_toolchain(trees: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("IDF_PATH", raising=False)
    monkeypatch.setattr(fwbuild.shutil, "which", _none)
    assert main(["build", "--board", "esp32", "--micropython", str(trees["mpy"]),
                 "--keyring", str(trees["keyring"])]) == 1
    assert "otakit: NO_TOOLCHAIN: no toolchain to build firmware" in capsys.readouterr().err


@pytest.mark.skipif(not (os.environ.get("MICROPY_DIR") and os.environ.get("IDF_PATH")),
                    reason=NOT_HERE)
def test_real_build(trees: dict[str, Path], tmp_path: Path) -> None:  # pragma: no cover
    tc = fwbuild.find_toolchain(None, None, False)
    plan = fwbuild.plan_build(load_board("esp32"), tc, trees["keyring"], tmp_path / "fw")
    res = fwbuild.run_build(plan)
    assert res.app_size <= res.slot_size
