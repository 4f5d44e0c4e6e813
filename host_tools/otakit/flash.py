"""Flash a board over serial with esptool's Python API, after checking what is about to be written.

Accepted inputs (`plan_flash`):
- a full ``firmware.bin`` (MicroPython's makeimg.py output: file offset 0 = the bootloader
  offset) -> written whole at the board's bootloader offset;
- a build directory holding ``bootloader/bootloader.bin``, ``partition_table/partition-table.bin``
  and ``micropython.bin`` -> the three at the bootloader offset, 0x8000 and the first app slot;
- an app image (``micropython.bin`` / ``.app-bin``) -> the first OTA slot only (the board must
  already carry this board's bootloader and partition table).

Invariants: nothing is written until the whole plan has passed its checks (chip id of every image,
the partition table equals the board's, the app fits the slot). ``--erase-otadata`` adds an
erase of the otadata partition, so the next boot starts from ota_0 with blank otadata (what a
full firmware.bin does anyway: its 0xFF padding covers otadata). esptool itself then refuses a
connected chip that is not ``--chip`` (``This chip is ESP32 not ESP32-C3``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from otakit.boards import PT_ADDR, PT_SIZE, Board, parse_partition_table
from otakit.build import check_firmware_bin, table_differences
from otakit.errors import ImageError, ToolError
from otakit.image import APP_DESC_MAGIC, check_app_image

EsptoolMain = Callable[[list[str]], object]
DEFAULT_BAUD = 460800
_PORT_PREFIXES = ("rfc2217://", "socket://", "loop://")


@dataclass
class FlashPlan:
    """What will be written where: ``writes`` is ``[(flash offset, file)]``."""

    board: Board
    kind: str
    writes: list[tuple[int, Path]] = field(default_factory=list)
    erase: list[tuple[int, int]] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [f"0x{off:06x}  {path}" for off, path in self.writes]
        lines += [f"0x{off:06x}  erase 0x{size:x} bytes (otadata)" for off, size in self.erase]
        return lines


def first_app_offset(board: Board) -> int:
    return min(p.offset for p in board.partitions if p.type == 0)


def _check_bootloader(data: bytes, board: Board, what: str) -> None:
    if len(data) < 0x24 or data[0] != 0xE9:
        raise ImageError(f"{what} is not an ESP image", reason="BAD_IMAGE")
    chip_id = int.from_bytes(data[12:14], "little")
    if chip_id != board.chip_id:
        raise ImageError(f"{what} is for chip id {chip_id}; board {board.name} is {board.chip} "
                         f"(chip id {board.chip_id})", reason="BAD_IMAGE")


def _check_table(data: bytes, board: Board, what: str) -> None:
    parts, md5_ok = parse_partition_table(data[:PT_SIZE])
    if not md5_ok:
        raise ImageError(f"{what} has no valid MD5 entry", reason="BAD_IMAGE")
    problems = table_differences(parts, board)
    if problems:
        raise ImageError(f"{what} is not board {board.name}'s partition table "
                         f"(boards/{board.name}/partitions.csv): {'; '.join(problems)}",
                         reason="BAD_IMAGE")


def plan_flash(board: Board, firmware: Path, erase_otadata: bool = False) -> FlashPlan:
    """Check ``firmware`` against ``board`` and return what to write.

    Raises:
        ImageError: ``BAD_IMAGE`` for an image of another chip, a partition table other than the
            board's, a firmware.bin given where an app image is expected or the reverse; or
            ``PAYLOAD_TOO_LARGE`` for an app that does not fit the slot.
    """
    if firmware.is_dir():
        plan = _plan_build_dir(board, firmware)
    else:
        data = firmware.read_bytes()
        if len(data) > 0x24 and data[0x20:0x24] == APP_DESC_MAGIC:
            check_app_image(data, board)
            plan = FlashPlan(board, "app", [(first_app_offset(board), firmware)])
        else:
            check_firmware_bin(data, board)
            plan = FlashPlan(board, "firmware", [(board.bootloader_offset, firmware)])
    if erase_otadata:
        ota = board.partition("otadata")
        plan.erase.append((ota.offset, ota.size))
    return plan


def _plan_build_dir(board: Board, d: Path) -> FlashPlan:
    boot = d / "bootloader" / "bootloader.bin"
    table = d / "partition_table" / "partition-table.bin"
    app = d / "micropython.bin"
    missing = [str(p) for p in (boot, table, app) if not p.is_file()]
    if missing:
        raise ImageError(f"{d} is not an ESP-IDF build directory: missing {', '.join(missing)}",
                         reason="BAD_IMAGE")
    _check_bootloader(boot.read_bytes(), board, str(boot))
    if len(boot.read_bytes()) > PT_ADDR - board.bootloader_offset:
        raise ImageError(f"{boot} overflows into the partition table", reason="BAD_IMAGE")
    _check_table(table.read_bytes(), board, str(table))
    check_app_image(app.read_bytes(), board)
    return FlashPlan(board, "parts", [(board.bootloader_offset, boot), (PT_ADDR, table),
                                      (first_app_offset(board), app)])


PORT_ENV = "ESPTOOL_PORT"
BAUD_ENV = "ESPTOOL_BAUD"


def usb_serial_ports() -> list[str]:
    """The USB serial ports present (where a development board shows up), sorted."""
    from serial.tools import list_ports  # noqa: PLC0415  (pyserial, an esptool dependency)

    return sorted(p.device for p in list_ports.comports() if p.vid is not None)


def resolve_port(port: str | None, *, dry_run: bool = False) -> str:
    """The serial port to use: ``port`` (--port), else ``$ESPTOOL_PORT``, else the one USB serial
    port present (for a dry run with none or several: the placeholder ``PORT``).

    Raises:
        ToolError: ``NO_PORT`` (none present) or ``PORT_AMBIGUOUS`` (several: they are listed).
    """
    if port:
        return port
    env = os.environ.get(PORT_ENV, "")
    if env:
        return env
    ports = usb_serial_ports()
    if len(ports) == 1:
        return ports[0]
    if dry_run:
        return "PORT"
    if not ports:
        raise ToolError(f"no serial port found: plug the board in (USB), or give --port or set "
                        f"{PORT_ENV}", reason="NO_PORT")
    raise ToolError(f"{len(ports)} serial ports found, give one with --port (or {PORT_ENV}): "
                    f"{', '.join(ports)}", reason="PORT_AMBIGUOUS")


def check_port(port: str) -> None:
    """Refuse a serial port that does not exist, before esptool or mpremote try to open it.

    Raises:
        ToolError: ``NO_PORT``.
    """
    if port.startswith(_PORT_PREFIXES):
        return
    if not os.path.exists(port):
        raise ToolError(f"serial port {port} not found: is the board plugged in? (e.g. "
                        "/dev/ttyUSB0 or /dev/ttyACM0 on Linux, /dev/cu.usbserial-* on macOS, "
                        "COM3 on Windows)", reason="NO_PORT")


def esptool_commands(plan: FlashPlan, port: str, baud: int = DEFAULT_BAUD) -> list[list[str]]:
    """The esptool argument lists for ``plan`` (erase first, then one write-flash)."""
    base = ["--chip", plan.board.chip, "--port", port, "--baud", str(baud)]
    cmds = [[*base, "--after", "no-reset", "erase-region", hex(off), hex(size)]
            for off, size in plan.erase]
    writes = [x for off, path in plan.writes for x in (hex(off), str(path))]
    cmds.append([*base, "write-flash", "--flash-size", "keep", *writes])
    return cmds


def _esptool_main(argv: list[str]) -> object:
    import esptool  # noqa: PLC0415 - only when flashing for real

    return esptool.main(argv)


def run_esptool(cmds: list[list[str]], main: EsptoolMain | None = None) -> None:
    """Run each esptool command through its Python API (``esptool.main(argv)``).

    Raises:
        ToolError: ``FLASH_FAILED`` with esptool's message.
    """
    main = main or _esptool_main
    for argv in cmds:
        try:
            main(argv)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - esptool raises FatalError, ...
            raise ToolError(f"esptool {' '.join(argv)} failed: {e}", reason="FLASH_FAILED") from e
