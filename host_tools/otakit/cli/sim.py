"""otakit CLI: ``sim flash|run|inspect`` (the simulated ESP32 board, docs/simulator.md)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit.cli._output import echo_json, json_option

from otakit.boards import available_boards
from otakit.errors import OtakitError
from otakit.sim import flash as sim_flash
from otakit.sim import inspect as sim_inspect
from otakit.sim import runner as sim_runner


def _env_pair(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict:
    out = {}
    for item in value:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        out[key] = val
    return out


def _heapsize(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        sim_runner.heap_bytes(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size such as 56K, 112K or 57344") from None
    return value


@click.group()
def sim() -> None:
    """The simulated ESP32 board: flash an image, run it across resets, inspect its state."""


@sim.command("flash")
@click.option("--board", default="esp32", show_default=True,
              type=click.Choice(available_boards()), help="Board definition (boards/NAME).")
@click.option("--app", "app", required=True, type=click.Path(dir_okay=False, exists=True),
              help="App image (micropython.bin / .app-bin) to put in the first app slot.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Flash image file to write (the board's flash size).")
@click.option("--sequence", type=click.IntRange(0, 0x7FFFFFFF),
              help="The release sequence the flashed firmware is (its frozen ota_origin, as "
                   "`otakit build --sequence`): with empty NVS the agent refuses anything older.")
@click.option("--security-version", type=click.IntRange(0, 0x7FFFFFFF),
              help="Its security version (ota_origin): the board's born floor.")
def flash_cmd(board: str, app: str, out: str, sequence: int | None,
              security_version: int | None) -> None:
    """Write a fresh flash image, as esptool leaves a board after flashing the full firmware.

    Binary partition table at 0x8000, blank otadata, nvs and vfs, the app in ota_0. With
    --sequence/--security-version the firmware has the frozen module ota_origin (a release
    build); without them it has none (a development build: 0, 0).
    """
    origin = None
    if sequence is not None or security_version is not None:
        origin = (sequence or 0, security_version or 0)
    path = sim_flash.create_flash(board, Path(app).read_bytes(), out, origin=origin)
    born = f", born at sequence {origin[0]} security version {origin[1]}" if origin else ""
    click.echo(f"wrote {path} (board {board}, app in the first app slot, otadata blank{born})")


@sim.command("run")
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.argument("script", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--app-dir", type=click.Path(file_okay=False, exists=True),
              help="Directory with boot.py/main.py and app modules [default: firmware/].")
@click.option("--max-boots", default=10, show_default=True, type=click.IntRange(1),
              help="Stop after this many boots.")
@click.option("--cut-at", type=click.IntRange(1), envvar="OTAKIT_SIM_CUT_AT_RUN",
              help="Cut power at this mutating flash operation (1-based, whole run).")
@click.option("--no-restart", is_flag=True, help="After a power cut, stay off.")
@click.option("--heapsize", default=sim_runner.DEFAULT_HEAPSIZE, show_default=True,
              callback=_heapsize,
              help="Free MicroPython heap for device code (an ESP32 starts with ~56K).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds allowed per boot.")
@click.option("--env", "env", multiple=True, callback=_env_pair, metavar="KEY=VALUE",
              help="Environment variable for the device (os.getenv); repeatable.")
def run_cmd(image: str, script: str | None, app_dir: str | None, max_boots: int,  # noqa: PLR0913
            cut_at: int | None, no_restart: bool, heapsize: str, timeout: float,
            env: dict) -> None:
    """Power on IMAGE and run it across resets; print the boot log.

    Each boot runs the simulated bootloader, mounts the vfs at /flash, then boot.py and main.py
    (or SCRIPT instead of main.py). Give SCRIPT after `--`. The run ends when the script returns
    or raises, at --max-boots, in a boot loop, or on a timeout.
    """
    result = sim_runner.run(image, script=script, app_dir=app_dir, max_boots=max_boots,
                            cut_at=cut_at, heapsize=heapsize, env=env, timeout=timeout,
                            restart_after_cut=not no_restart,
                            on_boot=lambda b: click.echo(
                                f"--- boot {b.index} ({b.reason}) ---\n{b.log}", nl=False))
    click.echo(f"--- {result.ended}: {len(result.boots)} boot(s), {result.ops} mutating flash "
               f"operation(s){', power cut' if result.cut else ''} ---")
    if result.ended == "timeout":
        raise OtakitError("a boot timed out", reason="TIMEOUT")
    if result.error:
        raise OtakitError("the device script ended with an exception", reason="DEVICE_ERROR")


@sim.command("inspect")
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@json_option
def inspect_cmd(image: str, as_json: bool) -> None:
    """Show IMAGE's partitions, otadata entries, the next boot slot, app slots and NVS keys."""
    st = sim_inspect.read_state(image)
    if as_json:
        echo_json(st.to_dict())
        return
    click.echo(f"board: {st.board or '?'}   partition table MD5: "
               f"{'ok' if st.table_md5_ok else 'BAD'}")
    for p in st.partitions:
        click.echo(f"  {p.label:<10} type {p.type} subtype 0x{p.subtype:02x} "
                   f"0x{p.offset:06x} +0x{p.size:06x}")
    for e in st.otadata:
        if e.blank:
            click.echo(f"otadata[{e.index}]: blank (erased) -> invalid")
            continue
        click.echo(f"otadata[{e.index}]: seq={e.seq} {e.state_name} crc "
                   f"{'ok' if e.crc_ok else 'bad'} -> {'valid' if e.valid else 'invalid'}")
    click.echo(f"active entry: {st.active}   next hard reset boots: {st.next_boot}")
    for s in st.slots:
        what = (f"app {s.version or '(no version)'}" + (f" [{s.behaviour}]" if s.behaviour else "")
                if s.image else "empty")
        click.echo(f"slot {s.label}: {what}")
    for ns, keys in st.nvs.items():
        for k, v in keys.items():
            click.echo(f"nvs {ns}.{k} = {v.hex() if isinstance(v, bytes) else v}")


COMMANDS = [sim]


def _add_campaign() -> None:
    from otakit.cli.sim_campaign import campaign_cmd  # noqa: PLC0415

    sim.add_command(campaign_cmd)


_add_campaign()
