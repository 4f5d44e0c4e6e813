"""Build MicroPython firmware for a board with the agent, the example app and the keyring frozen.

Two toolchains, chosen by `find_toolchain`:
- ``idf``: a local ESP-IDF checkout (its ``export.sh`` is sourced) and a MicroPython checkout;
- ``docker``: mpbuild, which runs MicroPython's make inside the ``espressif/idf`` container with
  the MicroPython checkout mounted at the same path.

Either way the build is MicroPython's own ``make -C ports/esp32`` with a custom board directory
(``BOARD_DIR``) that reuses the stock board's settings (``micropython_board`` in board.json) and
adds the board's partition table, plus ``FROZEN_MANIFEST`` pointing at the board's
``manifest.py``. Everything the build reads is first *staged* by `otakit.frozen`: a copy of
``boards/<b>``, ``firmware/`` and the keyring in the same relative layout, so the manifest's
relative paths hold (inside the MicroPython checkout for docker, which mounts nothing else).

Invariants:
- Nothing is built without a keyring: the firmware's trust anchor is frozen in or there is no
  firmware.
- Every build freezes ``ota_origin`` beside ``ota_keys``: the firmware's own sequence and security
  version (`otakit.frozen.origin_module`), so that a board with empty NVS refuses anything older
  (0, 0 when not given), and ``DEVELOPMENT``: a build is a product build, whose example app takes
  only ``https://`` update URLs, unless it is asked for as a development build (``--dev``);
  `HTTP_POLICY` says so in words (the compliance report reads it).
- `plan_build` only writes the stage; `run_build` runs the commands through an injectable runner
  and then checks the outputs (the app image with `check_app_image`, the firmware's partition
  table against the board's) before copying them to the output directory.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from otakit.boards import PT_ADDR, PT_SIZE, Board, parse_partition_table
from otakit.errors import BoardError, ImageError, ToolError
from otakit.frozen import copy_file, stage_sources
from otakit.image import check_app_image

Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]

# Which update URLs a build's devices take (ETSI EN 303 645 5.5-1): the device side is
# ota.config.url_refusal, called by the example app's config validation (BAD_CONFIG).
HTTP_POLICY = ("https required for update URLs on a product build: the device refuses an http:// "
               "update URL (BAD_CONFIG) unless its firmware is a development build (`otakit "
               "build --dev`, or no frozen ota_origin: a development board with the agent "
               "installed by mip or `otakit deploy`); the simulator's boards are development "
               "builds, serving http on loopback, unless flashed with --product")


def http_allowed(development: bool) -> bool:
    """Whether a build's devices take a plain ``http://`` update URL: only a development
    build's (`HTTP_POLICY`)."""
    return bool(development)
APP_IMAGE = "micropython.bin"
FIRMWARE_BIN = "firmware.bin"
DOCKER_STAGE = "otakit-stage"
# The flash size names ESP-IDF's Kconfig uses (CONFIG_ESPTOOLPY_FLASHSIZE_*).
_FLASH_SIZES = {1 << 20: "1MB", 2 << 20: "2MB", 4 << 20: "4MB", 8 << 20: "8MB",
                16 << 20: "16MB", 32 << 20: "32MB"}


@dataclass(frozen=True)
class Toolchain:
    """How to build: ``kind`` is ``idf`` (``idf`` is the ESP-IDF checkout) or ``docker``."""

    kind: str
    micropython: Path
    idf: Path | None = None
    mpbuild: str = "mpbuild"


@dataclass(frozen=True)
class BuildPlan:
    """A staged build: the commands to run and where their outputs appear."""

    board: Board
    toolchain: Toolchain
    stage: Path
    board_dir: Path
    build_dir: Path
    out: Path
    commands: list[list[str]] = field(default_factory=list)

    def shell_lines(self) -> list[str]:
        """The commands as they would be typed in a shell."""
        return [shlex.join(c) for c in self.commands]


def mp_board_name(board: Board) -> str:
    """The name of the generated MicroPython board directory, e.g. ``OTAKIT_ESP32C3``."""
    return "OTAKIT_" + board.name.upper().replace("-", "_")


def find_toolchain(micropython: str | None, idf: str | None, docker: bool, *,
                   env: Mapping[str, str] | None = None,
                   which: Callable[[str], str | None] = shutil.which) -> Toolchain:
    """Choose the toolchain from the options, else from ``$IDF_PATH`` or docker + mpbuild.

    Args:
        micropython: the MicroPython checkout (else ``$MICROPY_DIR``).
        idf: an ESP-IDF checkout (else ``$IDF_PATH`` when ``docker`` is False).
        docker: build with mpbuild in docker.
        env: the environment to read (default: ``os.environ``).
        which: finds an executable (default: `shutil.which`).

    Raises:
        ToolError: ``NO_TOOLCHAIN`` when neither toolchain is there, ``NO_MICROPYTHON_SRC`` when
            the MicroPython checkout is missing.
    """
    env = os.environ if env is None else env
    if idf and docker:
        raise ToolError("give --idf PATH or --docker, not both", reason="NO_TOOLCHAIN")
    mpy = micropython or env.get("MICROPY_DIR")
    if not mpy or not (Path(mpy) / "ports" / "esp32" / "Makefile").is_file():
        raise ToolError(f"no MicroPython checkout at {mpy or '(not given)'}: pass --micropython "
                        "PATH (a clone of github.com/micropython/micropython with "
                        "ports/esp32/Makefile) or set MICROPY_DIR", reason="NO_MICROPYTHON_SRC")
    mpy_path = Path(mpy).resolve()
    if docker:
        return _docker_toolchain(mpy_path, which)
    idf_dir = idf or env.get("IDF_PATH")
    if idf_dir:
        if not (Path(idf_dir) / "export.sh").is_file():
            raise ToolError(f"no ESP-IDF at {idf_dir} (export.sh is missing): pass --idf with an "
                            "ESP-IDF v5.x checkout", reason="NO_TOOLCHAIN")
        return Toolchain("idf", mpy_path, Path(idf_dir).resolve())
    if which("docker") and which("mpbuild"):
        return _docker_toolchain(mpy_path, which)
    raise ToolError("no toolchain to build firmware: pass --idf PATH (an ESP-IDF v5.x checkout, "
                    "or set IDF_PATH) or --docker (needs docker and `pip install mpbuild`)",
                    reason="NO_TOOLCHAIN")


def _docker_toolchain(mpy: Path, which: Callable[[str], str | None]) -> Toolchain:
    missing = [t for t in ("docker", "mpbuild") if not which(t)]
    if missing:
        raise ToolError(f"--docker needs {' and '.join(missing)} on PATH (mpbuild: "
                        "`pip install mpbuild`; docker: a running Docker engine)",
                        reason="NO_TOOLCHAIN")
    return Toolchain("docker", mpy, None, which("mpbuild") or "mpbuild")


def mp_board_files(board: Board, micropython: Path, stage: Path) -> dict[str, str]:
    """The files of the generated MicroPython board directory (name -> text)."""
    if not board.micropython_board:
        raise BoardError(f"board {board.name} names no micropython_board in board.json",
                         reason="NO_MICROPYTHON_BOARD")
    stock = micropython / "ports" / "esp32" / "boards" / board.micropython_board
    size = _FLASH_SIZES.get(board.flash_size)
    if size is None:
        raise BoardError(f"board {board.name}: flash size {board.flash_size} is not one ESP-IDF "
                         "knows", reason="BAD_BOARD")
    csv = stage / "boards" / board.name / "partitions.csv"
    return {
        "mpconfigboard.cmake": (
            f"# Generated by otakit build for board {board.name}: the stock "
            f"{board.micropython_board}\n# settings plus the board's OTA partition table.\n"
            f"include(boards/{board.micropython_board}/mpconfigboard.cmake)\n"
            "list(APPEND SDKCONFIG_DEFAULTS ${MICROPY_BOARD_DIR}/sdkconfig.otakit)\n"),
        "mpconfigboard.h": (
            f"// Generated by otakit build for board {board.name}.\n"
            f'#include "{stock / "mpconfigboard.h"}"\n'),
        "sdkconfig.otakit": (
            f"# Generated by otakit build for board {board.name}.\n"
            "CONFIG_PARTITION_TABLE_CUSTOM=y\n"
            f'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="{csv}"\n'
            f"CONFIG_ESPTOOLPY_FLASHSIZE_{size}=y\n"
            f'CONFIG_ESPTOOLPY_FLASHSIZE="{size}"\n'
            "# Rollback needs the bootloader and the app built with it (ground truth 6).\n"
            "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y\n"
            "# As MicroPython's sdkconfig.ota: a smaller app for the OTA slots.\n"
            "CONFIG_COMPILER_OPTIMIZATION_SIZE=y\n"
            "CONFIG_COMPILER_OPTIMIZATION_PERF=n\n"
            "CONFIG_COMPILER_OPTIMIZATION_CHECKS_SILENT=y\n"),
    }


def build_commands(board: Board, tc: Toolchain, board_dir: Path,
                   manifest: Path) -> list[list[str]]:
    """The exact commands that build the firmware (run with cwd = the MicroPython checkout)."""
    port = tc.micropython / "ports" / "esp32"
    make_vars = [f"BOARD_DIR={board_dir}", f"BUILD=build-{board_dir.name}",
                 f"FROZEN_MANIFEST={manifest}"]
    if tc.kind == "docker":
        # mpbuild build BOARD VARIANT EXTRA_MAKE_ARGS...; "" is no variant. The stock board name
        # selects the container's ESP-IDF version; BOARD_DIR then replaces its settings.
        return [[tc.mpbuild, "build", board.micropython_board, "", *make_vars]]
    assert tc.idf is not None
    steps = [
        f". {shlex.quote(str(tc.idf / 'export.sh'))} >/dev/null",
        shlex.join(["make", "-C", str(tc.micropython / "mpy-cross")]),
        shlex.join(["make", "-C", str(port), *make_vars, "submodules"]),
        shlex.join(["make", "-C", str(port), *make_vars, "all"]),
    ]
    return [["bash", "-c", " && ".join(steps)]]


def plan_build(board: Board, tc: Toolchain, keyring: Path, out: Path, *, sequence: int = 0,
               security_version: int = 0, development: bool = False) -> BuildPlan:
    """Stage the sources and the MicroPython board directory; return the commands to run.

    ``sequence`` and ``security_version`` are the release this firmware is, ``development``
    whether it is a development build (http update URLs allowed): frozen as ``ota_origin``
    (`otakit.frozen.origin_module`).

    Raises:
        KeyFileError: no usable keyring.
        ToolError: ``BAD_ARGUMENT`` for a sequence or security version out of range.
        BoardError: the board cannot be built (no manifest, no stock board, odd flash size).
    """
    out = out.resolve()
    if tc.kind == "docker":
        stage = tc.micropython / DOCKER_STAGE / board.name  # docker mounts only the checkout
    else:
        stage = out / "stage"
    manifest = stage_sources(board, keyring, stage, sequence=sequence,
                             security_version=security_version, development=development)
    board_dir = stage / mp_board_name(board)
    board_dir.mkdir(parents=True, exist_ok=True)
    for name, text in mp_board_files(board, tc.micropython, stage).items():
        (board_dir / name).write_text(text)
    build_dir = tc.micropython / "ports" / "esp32" / f"build-{board_dir.name}"
    return BuildPlan(board, tc, stage, board_dir, build_dir, out,
                     build_commands(board, tc, board_dir, manifest))


@dataclass(frozen=True)
class BuildOutputs:
    """What a finished build left in the output directory."""

    app_image: Path
    firmware_bin: Path
    app_size: int
    slot_size: int


def check_firmware_bin(data: bytes, board: Board) -> None:
    """Check a full ``firmware.bin`` carries the board's partition table and a fitting app.

    Raises:
        ImageError: ``BAD_IMAGE`` for a table that differs from the board's, a bad MD5 entry, a
            bootloader for another chip, or an app that fails `check_app_image`.
    """
    pt = PT_ADDR - board.bootloader_offset
    if len(data) < pt + PT_SIZE or data[0] != 0xE9:
        raise ImageError(f"not a full firmware image for {board.name} (too short or no "
                         "bootloader at its start)", reason="BAD_IMAGE")
    chip_id = int.from_bytes(data[12:14], "little")
    if chip_id != board.chip_id:
        raise ImageError(f"firmware's bootloader is for chip id {chip_id}; board {board.name} is "
                         f"{board.chip} (chip id {board.chip_id})", reason="BAD_IMAGE")
    parts, md5_ok = parse_partition_table(data[pt:pt + PT_SIZE])
    if not md5_ok:
        raise ImageError("firmware's partition table has no valid MD5 entry", reason="BAD_IMAGE")
    problems = table_differences(parts, board)
    if problems:
        raise ImageError(f"firmware's partition table differs from board {board.name}'s "
                         f"partitions.csv: {'; '.join(problems)}", reason="BAD_IMAGE")
    app_off = min(p.offset for p in board.partitions if p.type == 0) - board.bootloader_offset
    check_app_image(data[app_off:], board)


DATA_TYPE = 1
FS_SUBTYPES = (0x81, 0x82, 0x83)  # fat, spiffs, littlefs: a filesystem partition (vfs)


def table_differences(parts: Sequence, board: Board) -> list[str]:
    """What makes partition table ``parts`` incompatible with ``board``'s (empty: compatible).

    Compatible: every partition of the board's table is there unchanged (label, type, subtype,
    offset, size), and any extra one is a filesystem data partition (``vfs``: fat, spiffs,
    littlefs) outside them and inside the flash, as MicroPython's own OTA tables add.
    """
    have = {p.label: p for p in parts}
    out = []
    for want in board.partitions:
        got = have.get(want.label)
        if got is None:
            out.append(f"it has no {want.label} partition (board: {_describe([want])})")
        elif got != want:
            kinds = ((got.type, got.subtype, got.flags) != (want.type, want.subtype, want.flags))
            out.append(f"its {want.label} is {_describe([got])}{_kind(got) if kinds else ''}, "
                       f"the board's {_describe([want])}{_kind(want) if kinds else ''}")
    labels = {p.label for p in board.partitions}
    for extra in (p for p in parts if p.label not in labels):
        overlaps = [b.label for b in board.partitions
                    if extra.offset < b.offset + b.size and b.offset < extra.offset + extra.size]
        if extra.type != DATA_TYPE or extra.subtype not in FS_SUBTYPES:
            out.append(f"it has an extra partition {_describe([extra])}{_kind(extra)} that is "
                       "not a filesystem")
        elif overlaps:
            out.append(f"its extra {_describe([extra])} overlaps {', '.join(overlaps)}")
        elif extra.offset + extra.size > board.flash_size:
            out.append(f"its extra {_describe([extra])} ends beyond the board's "
                       f"{board.flash_size >> 20} MiB flash")
    return out


def _kind(p: object) -> str:
    return (f" (type {p.type} subtype 0x{p.subtype:02x}"  # type: ignore[attr-defined]
            f"{f' flags {p.flags}' if p.flags else ''})")  # type: ignore[attr-defined]


def _describe(parts: Sequence) -> str:
    return ", ".join(f"{p.label}@0x{p.offset:x}+0x{p.size:x}" for p in parts)


def run_build(plan: BuildPlan, run: Runner = subprocess.run) -> BuildOutputs:
    """Run the plan's commands, check the outputs and copy them to ``plan.out``.

    Raises:
        ToolError: ``BUILD_FAILED`` when a command fails, ``NO_OUTPUT`` when the build left no
            ``micropython.bin``/``firmware.bin``.
        ImageError: the outputs do not match the board (chip, table, slot size).
    """
    for cmd in plan.commands:
        try:
            proc = run(cmd, cwd=plan.toolchain.micropython, check=False)
        except OSError as e:
            raise ToolError(f"cannot run {cmd[0]}: {e}", reason="BUILD_FAILED") from e
        if proc.returncode:
            raise ToolError(f"build command failed with exit code {proc.returncode}: "
                            f"{shlex.join(cmd)}", reason="BUILD_FAILED")
    app_src, fw_src = plan.build_dir / APP_IMAGE, plan.build_dir / FIRMWARE_BIN
    for p in (app_src, fw_src):
        if not p.is_file():
            raise ToolError(f"the build left no {p}", reason="NO_OUTPUT")
    app, fw = app_src.read_bytes(), fw_src.read_bytes()
    info = check_app_image(app, plan.board)
    check_firmware_bin(fw, plan.board)
    plan.out.mkdir(parents=True, exist_ok=True)
    copy_file(app_src, plan.out / APP_IMAGE)
    copy_file(fw_src, plan.out / FIRMWARE_BIN)
    return BuildOutputs(plan.out / APP_IMAGE, plan.out / FIRMWARE_BIN, info.size,
                        plan.board.ota_slot_size)
