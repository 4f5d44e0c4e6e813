"""otakit CLI: ``build`` (MicroPython firmware with the agent, app and keyring frozen in)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit import build as fwbuild
from otakit.boards import available_boards, load_board


@click.command()
@click.option("--board", required=True, type=click.Choice(available_boards()),
              help="Board definition (boards/NAME).")
@click.option("--micropython", "micropython", type=click.Path(file_okay=False),
              help="MicroPython checkout [default: $MICROPY_DIR].")
@click.option("--idf", "idf", type=click.Path(file_okay=False),
              help="ESP-IDF checkout to build with [default: $IDF_PATH].")
@click.option("--docker", is_flag=True, help="Build in docker through mpbuild instead.")
@click.option("--keyring", default="ota_keys.py", show_default=True,
              type=click.Path(dir_okay=False),
              help="Keyring module to freeze (otakit key export --micropython).")
@click.option("--out", default="build/firmware", show_default=True,
              type=click.Path(file_okay=False), help="Where micropython.bin and firmware.bin go.")
@click.option("--sequence", default=0, show_default=True, type=click.IntRange(0, 0x7FFFFFFF),
              help="The release sequence this firmware is (frozen as ota_origin: a board with "
                   "empty NVS refuses anything older).")
@click.option("--security-version", default=0, show_default=True,
              type=click.IntRange(0, 0x7FFFFFFF),
              help="Its security version (frozen as ota_origin: the board's born floor).")
@click.option("--dev", "development", is_flag=True,
              help="A development build: its devices also take http:// update URLs (a product "
                   "build takes only https).")
@click.option("--dry-run", is_flag=True, help="Stage the sources and print the commands only.")
def build(board: str, micropython: str | None, idf: str | None, docker: bool,  # noqa: PLR0913
          keyring: str, out: str, sequence: int, security_version: int, development: bool,
          dry_run: bool) -> None:
    """Build MicroPython firmware for BOARD with the agent, app and keyring frozen in.

    Runs MicroPython's own make (local ESP-IDF, or mpbuild in docker) with a generated board
    directory: the stock board's settings plus boards/BOARD/partitions.csv, and
    boards/BOARD/manifest.py as the frozen manifest; --sequence and --security-version are frozen
    beside the keyring as the module ota_origin (0 and 0 when not given), with --dev as
    DEVELOPMENT: without it a product build, whose devices take only https update URLs.
    Prints every command before it runs.
    Outputs: OUT/micropython.bin (the app image, for `otakit release`) and OUT/firmware.bin
    (bootloader + partition table + app, for `otakit flash`).
    """
    b = load_board(board)
    tc = fwbuild.find_toolchain(micropython, idf, docker)
    plan = fwbuild.plan_build(b, tc, Path(keyring), Path(out), sequence=sequence,
                              security_version=security_version, development=development)
    click.echo("a development build: http:// update URLs allowed" if development else
               "a product build: https:// update URLs only (--dev for a development build)")
    click.echo(f"staged {plan.stage} (board dir {plan.board_dir.name}, toolchain {tc.kind})")
    for line in plan.shell_lines():
        click.echo(f"$ (cd {tc.micropython} && {line})")
    if dry_run:
        click.echo("dry run: nothing built")
        return
    res = fwbuild.run_build(plan)
    click.echo(f"app image: {res.app_image} ({res.app_size} bytes, OTA slot {res.slot_size}, "
               f"{res.slot_size - res.app_size} spare)")
    click.echo(f"firmware:  {res.firmware_bin}")


COMMANDS = [build]
