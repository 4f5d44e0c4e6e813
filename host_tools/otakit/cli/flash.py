"""otakit CLI: ``flash`` (esptool; the firmware checked against the board first)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit import flash as dev_flash
from otakit.boards import available_boards, load_board


@click.command()
@click.option("--board", required=True, type=click.Choice(available_boards()),
              help="Board definition (boards/NAME): chip, offsets, partition table.")
@click.option("--port", help="Serial port, e.g. /dev/ttyUSB0 [default: $ESPTOOL_PORT, else the "
              "one USB serial port present].")
@click.option("--baud", default=dev_flash.DEFAULT_BAUD, show_default=True,
              type=click.IntRange(300), envvar=dev_flash.BAUD_ENV,
              help="Baud rate for writing [also $ESPTOOL_BAUD].")
@click.option("--erase-otadata", is_flag=True,
              help="Also erase otadata, so the next boot starts from ota_0 with no OTA history.")
@click.option("--dry-run", is_flag=True, help="Check and print the esptool commands only.")
@click.argument("firmware", type=click.Path(exists=True))
def flash(board: str, port: str | None, baud: int, erase_otadata: bool,  # noqa: PLR0913
          dry_run: bool, firmware: str) -> None:
    """Write FIRMWARE to the board with esptool, after checking it against the board.

    FIRMWARE is a full firmware.bin (written at the bootloader offset), an ESP-IDF build
    directory (bootloader, partition table and micropython.bin at the board's offsets) or an
    app image (written to ota_0). Images for another chip, or a partition table not compatible
    with boards/BOARD/partitions.csv (the same partitions; an extra filesystem partition such as
    MicroPython's vfs is fine), are refused, each difference named, before anything is written.
    """
    b = load_board(board)
    plan = dev_flash.plan_flash(b, Path(firmware), erase_otadata)
    port = dev_flash.resolve_port(port, dry_run=dry_run)
    cmds = dev_flash.esptool_commands(plan, port, baud)
    click.echo(f"flash plan for board {board} ({b.chip}, {plan.kind}):")
    for line in plan.describe():
        click.echo(f"  {line}")
    for argv in cmds:
        click.echo("$ esptool " + " ".join(argv))
    if dry_run:
        click.echo("dry run: nothing written")
        return
    dev_flash.check_port(port)
    dev_flash.run_esptool(cmds)
    click.echo(f"flashed {firmware} to {port}")


COMMANDS = [flash]
