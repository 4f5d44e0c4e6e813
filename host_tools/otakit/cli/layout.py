"""otakit CLI: ``layout check|suggest`` (does an app image fit the OTA slots; what table would)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit.cli._output import echo_json, json_option

from otakit import layout
from otakit.boards import available_boards, load_board
from otakit.errors import ImageError


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return layout.parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


def _margin(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return layout.parse_margin(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


@click.group("layout")
def layout_group() -> None:
    """Check an app image against a board's OTA slots, or suggest a partition table."""


@layout_group.command("check")
@click.option("--board", required=True, type=click.Choice(available_boards()),
              help="Board definition (boards/NAME).")
@click.option("--app", "app", required=True, type=click.Path(dir_okay=False, exists=True),
              help="App image (micropython.bin / .app-bin).")
@json_option
def check_cmd(board: str, app: str, as_json: bool) -> None:
    """Say whether APP fits the board's smallest OTA slot; exit 1 (and by how much) if not."""
    b = load_board(board)
    fit = layout.check_fit(b, Path(app).read_bytes())
    if as_json and fit.fits:
        echo_json({"board": board, "app": app, "size": fit.size, "slot": fit.slot_label,
                   "slot_size": fit.slot_size, "spare": fit.spare, "fits": True})
        return
    if not fit.fits:
        raise ImageError(f"{app} ({fit.size} bytes) does not fit board {board}'s OTA slot "
                         f"{fit.slot_label} (0x{fit.slot_size:x} = {fit.slot_size} bytes): over "
                         f"by {-fit.spare} bytes; try `otakit layout suggest --flash "
                         f"{b.flash_size >> 20}MB --app {app}`", reason="PAYLOAD_TOO_LARGE")
    click.echo(f"ok: {app} ({fit.size} bytes) fits board {board}'s OTA slot {fit.slot_label} "
               f"(0x{fit.slot_size:x} = {fit.slot_size} bytes) with {fit.spare} bytes to spare "
               f"({fit.spare / fit.slot_size:.1%})")


@layout_group.command("suggest")
@click.option("--flash", "flash", required=True, callback=_size,
              help="Flash size, e.g. 4MB, 8MB, 0x400000.")
@click.option("--app", "app", required=True, type=click.Path(dir_okay=False, exists=True),
              help="App image (micropython.bin / .app-bin) the slots must hold.")
@click.option("--margin", default="10%", show_default=True, callback=_margin,
              help="Room for growth in each slot beyond the image (e.g. 10% or 0.1).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the CSV here instead of to stdout.")
@json_option
def suggest_cmd(flash: int, app: str, margin: float, out: str | None, as_json: bool) -> None:
    """Print a partition table (CSV) with two OTA slots for APP and the largest vfs.

    App partitions are 0x10000-aligned; the head (nvs, otadata, phy_init) is MicroPython's.
    """
    size = layout.app_size(Path(app).read_bytes())
    parts = layout.suggest_layout(flash, size, margin)
    slot, vfs = parts[3].size, parts[5].size
    text = (f"# Suggested by otakit layout suggest for a {size}-byte app image on {flash >> 20} "
            f"MiB flash:\n# two OTA slots of 0x{slot:x} ({slot - size} bytes spare each, "
            f"{margin:.0%} margin asked), vfs {vfs // 1024} KiB.\n" + layout.to_csv(parts))
    if out:
        Path(out).write_text(text)
    if as_json:
        echo_json({"flash": flash, "app_size": size, "margin": margin, "out": out,
                   "partitions": [{"label": p.label, "type": p.type, "subtype": p.subtype,
                                   "offset": p.offset, "size": p.size} for p in parts]})
    elif out:
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


COMMANDS = [layout_group]
