"""otakit CLI: ``sim flash|image|run|inspect`` (the simulated ESP32 board, docs/simulator.md)."""

from __future__ import annotations

from pathlib import Path

import click

from otakit import cacert
from otakit.appimage import make_app_image
from otakit.boards import available_boards, load_board
from otakit.cli._output import echo_json, json_option
from otakit.errors import ImageError, OtakitError
from otakit.image import check_app_image
from otakit.project import Project
from otakit.sim import flash as sim_flash
from otakit.sim import inspect as sim_inspect
from otakit.sim import provision as sim_provision
from otakit.sim import runner as sim_runner

# `sim run`'s heap: an ESP32 development board with the agent and the example app as .mpy. The
# GC heap starts at 56 KB and grows on demand; MicroPython sizes it to grow once (double) and
# still leave internal RAM for Wi-Fi and a TLS connection (docs/simulator.md "Heap settings").
DEV_BOARD_HEAPSIZE = "112K"


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


class _SimGroup(click.Group):
    # `sim campaign` (otakit.sim.campaign and the lab's server with it) is loaded when it is
    # named or listed (or a name is not known: click's suggestions), not for every `sim` command.
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_all()
        return super().list_commands(ctx)


@click.group(cls=_SimGroup)
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
@click.option("--keyring", type=click.Path(dir_okay=False),
              help="The keyring module to freeze into the firmware with the agent and the "
                   "example app (`otakit key export` writes it) [default: the project's].")
@click.option("--url", help="The update URL for the device's ota_config.json [default: the "
                            "project's].")
@click.option("--product", help="The product for ota_config.json [default: the project's].")
@click.option("--channel", default="stable", show_default=True,
              help="The channel for ota_config.json.")
@click.option("--checks", default=1, show_default=True, type=click.IntRange(0, 1000000),
              help="The example app ends after this many update checks per boot (0: never), "
                   "so that `sim run` ends.")
@click.option("--model", help="The model designation on the label (e.g. DL-100) for "
                              "ota_config.json: the device info shows it.")
@click.option("--ca", type=click.Path(dir_okay=False),
              help="The CA certificate (PEM) for an https update URL: written onto the board "
                   "as ota_ca.der, named by ota_config.json [default: the project's].")
@click.option("--local-port", type=click.IntRange(1, 65535),
              help="The example app's local interface (device info, update settings) listens "
                   "on this port [default: none].")
@click.option("--product-build", is_flag=True,
              help="A product build (its frozen ota_origin says so): the device takes only "
                   "https update URLs. Without it the simulated firmware is a development build.")
@click.option("--bare", is_flag=True,
              help="Only write the flash image: no firmware, no ota_config.json.")
@click.option("--content-key", type=click.Path(dir_okay=False),
              help="A content key file (`otakit key content`): written onto the board as "
              "ota_content.key, so that it installs releases encrypted with it.")
@click.pass_context
def flash_cmd(ctx: click.Context, board: str, app: str, out: str, sequence: int | None,  # noqa: PLR0913
              security_version: int | None, keyring: str | None, url: str | None,
              product: str | None, channel: str, checks: int, model: str | None,
              ca: str | None, local_port: int | None, product_build: bool, bare: bool,
              content_key: str | None) -> None:
    """Write a flash image as esptool leaves a board after flashing the full firmware, and
    provision it as a factory would.

    Binary partition table at 0x8000, blank otadata, nvs and vfs, the app in ota_0; the app
    image is checked as `otakit release` checks it (a full firmware.bin or an image for another
    chip is refused). With a keyring (--keyring or the project's), the firmware gets the agent,
    the example app and the keyring frozen in (OUT.firmware/, what `sim run` runs); with an
    update URL (--url or the project's), one boot writes ota_config.json (url, product, board,
    channel) onto the board's filesystem. With --sequence/--security-version the firmware has
    the frozen module ota_origin (born at that release); without them it has none (0, 0).
    The simulated firmware is a development build, which takes the http:// URL of a loopback
    server, unless --product-build (https only, with --ca).
    """
    data = Path(app).read_bytes()
    if data[:1] != b"\xe9":
        raise ImageError("not an ESP app image (magic byte is not 0xE9)", reason="BAD_IMAGE")
    check_app_image(data, load_board(board))  # as `otakit release` checks it
    ck = None
    if content_key:  # checked before anything is written
        from otakit.contentkey import key_file_text  # noqa: PLC0415

        ck = key_file_text(content_key)
    origin = None
    if sequence is not None or security_version is not None:
        origin = (sequence or 0, security_version or 0)
    if not bare and url and not keyring:
        named = ctx.obj.get("keyring") if isinstance(ctx.obj, Project) else None
        raise OtakitError(f"no keyring module {named} to freeze: write it with `otakit key "
                          "export --micropython KEY.pub.pem`" if named else
                          "provisioning an update URL needs the keyring to freeze: give "
                          "--keyring ota_keys.py (or keyring in otakit.toml), or --bare",
                          reason="NO_KEYRING")
    ca_der = cacert.der(ca) if ca and not bare else None
    path = sim_flash.create_flash(board, data, out, origin=origin, product=product_build)
    born = f", born at sequence {origin[0]} security version {origin[1]}" if origin else ""
    click.echo(f"wrote {path} (board {board}, app in the first app slot, otadata blank{born})")
    click.echo("a product build: https update URLs only" if product_build else
               "a development build: http update URLs allowed (--product-build: https only)")
    if bare or not keyring:
        return
    frozen = sim_provision.freeze_firmware(path, keyring)
    click.echo(f"froze the agent, the example app and {keyring} into {frozen}/")
    if not url:
        click.echo("no update URL (--url, or url in otakit.toml): the device has no "
                   "ota_config.json and runs without updates")
        return
    cfg = sim_provision.DeviceConfig(url=url, product=product or "doorlock", board=board,
                                     channel=channel, checks=checks, model=model, ca=ca_der,
                                     local_port=local_port, content_key=ck)
    sim_provision.write_config(path, cfg)
    click.echo(f"provisioned ota_config.json: {url} {cfg.product}/{board}/{channel}, "
               f"{checks or 'unlimited'} check(s) per boot")
    if ck:
        click.echo(f"provisioned ota_content.key (the content key of {content_key})")


@sim.command("image")
@click.option("--version", "version", required=True, help="The app descriptor's version.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The app image file to write.")
@click.option("--board", default="esp32", show_default=True,
              type=click.Choice(available_boards()), help="Its chip comes from the board.")
@click.option("--size", default=256 * 1024, show_default=True,
              type=click.IntRange(4096, 16 * 1024 * 1024), help="About this many bytes.")
@click.option("--crash", is_flag=True,
              help="A firmware that panics at boot on the simulated board (to see a rollback).")
def image_cmd(version: str, out: str, board: str, size: int, crash: bool) -> None:
    """Write a synthetic app image for the simulated board.

    A valid ESP app image (header, segments, checksum, appended SHA-256, app descriptor with
    VERSION) of the board's chip, as `otakit release` and the bootloader check it. The
    simulated board runs the firmware's frozen code (the agent and the example app) whatever
    the image's bytes; the image decides the version the device reports, and --crash makes it
    panic before boot.py.
    """
    data = make_app_image(version, chip=load_board(board).chip, size=size,
                          behaviour="crash" if crash else "")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(data)
    click.echo(f"wrote {out} (app {version} for {board}, {len(data)} bytes"
               f"{', crashes at boot' if crash else ''})")


@sim.command("run")
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.argument("script", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--app-dir", type=click.Path(file_okay=False, exists=True),
              help="Directory with boot.py/main.py and app modules (the firmware's frozen "
                   "code) [default: IMAGE.firmware/ that `sim flash` wrote, else firmware/].")
@click.option("--max-boots", default=10, show_default=True, type=click.IntRange(1),
              help="Stop after this many boots.")
@click.option("--cut-at", type=click.IntRange(1), envvar="OTAKIT_SIM_CUT_AT_RUN",
              help="Cut power at this mutating flash operation (1-based, whole run).")
@click.option("--no-restart", is_flag=True, help="After a power cut, stay off.")
@click.option("--heapsize", default=DEV_BOARD_HEAPSIZE, show_default=True, callback=_heapsize,
              help="Free MicroPython heap for device code: 112K is an ESP32 development board "
                   "(56K at start, grown once), 56K the heap it starts with "
                   "(docs/simulator.md).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds allowed per boot.")
@click.option("--frozen", is_flag=True,
              help="Run the app directory's compiled modules in place, outside the heap, as a "
                   "product board runs its frozen code (docs/simulator.md).")
@click.option("--env", "env", multiple=True, callback=_env_pair, metavar="KEY=VALUE",
              help="Environment variable for the device (os.getenv); repeatable.")
def run_cmd(image: str, script: str | None, app_dir: str | None, max_boots: int,  # noqa: PLR0913
            cut_at: int | None, no_restart: bool, heapsize: str, timeout: float,
            frozen: bool, env: dict) -> None:
    """Power on IMAGE and run it across resets; print the boot log.

    Each boot runs the simulated bootloader, mounts the vfs at /flash, then boot.py and main.py
    (or SCRIPT instead of main.py). Give SCRIPT after `--`. The run ends when the script returns
    or raises, at --max-boots, in a boot loop, or on a timeout; it exits 1 when the script
    raised, a boot timed out or the board is in a boot loop.
    """
    if app_dir is None and sim_provision.firmware_dir(image).is_dir():
        app_dir = str(sim_provision.firmware_dir(image))
    result = sim_runner.run(image, script=script, app_dir=app_dir, max_boots=max_boots,
                            cut_at=cut_at, heapsize=heapsize, env=env, timeout=timeout,
                            restart_after_cut=not no_restart, frozen=frozen,
                            on_boot=lambda b: click.echo(
                                f"--- boot {b.index} ({b.reason}) ---\n{b.log}", nl=False))
    click.echo(f"--- {result.ended}: {len(result.boots)} boot(s), {result.ops} mutating flash "
               f"operation(s){', power cut' if result.cut else ''} ---")
    if result.ended == "timeout":
        raise OtakitError(f"a boot timed out after {timeout:g} s (the example app runs until "
                          "then when the board has no ota_config.json: provision it with "
                          "`otakit sim flash` in a project)", reason="TIMEOUT")
    if result.ended == "boot_loop":
        raise OtakitError(f"the board is in a boot loop (boot {result.last.index} ended "
                          f"{result.last.ended} without changing the flash)", reason="BOOT_LOOP")
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


def load_all() -> None:
    """Add ``sim campaign`` to the group (`_SimGroup` does when it is named or listed)."""
    if "campaign" not in sim.commands:
        from otakit.cli.sim_campaign import campaign_cmd  # noqa: PLC0415

        sim.add_command(campaign_cmd)


# --- otakit sim install: a bundle file on the simulated board (otakit.sim.bundle) -------------
@sim.command("install")
@click.argument("image", type=click.Path(dir_okay=False, exists=True))
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True))
@click.option("--app-dir", type=click.Path(file_okay=False, exists=True),
              help="The firmware's frozen code [default: IMAGE.firmware/ that `sim flash` "
              "wrote].")
def install_cmd(image: str, bundle: str, app_dir: str | None) -> None:
    """Install a bundle file (otakit bundle) on the simulated board IMAGE, as `otakit deploy
    --bundle` does on a USB board: the file is copied into the board's filesystem and the agent
    installs it (agent.install_file); after an install the board boots it (its trial)."""
    from otakit import deploy as dev_deploy  # noqa: PLC0415
    from otakit.cli.deploy import report_bundle  # noqa: PLC0415
    from otakit.sim.bundle import install_bundle  # noqa: PLC0415

    b = dev_deploy.check_bundle(Path(bundle))
    click.echo(f"bundle {bundle}: {b.summary}")
    out, versions = install_bundle(Path(image), b, Path(app_dir) if app_dir else None)
    report_bundle(out, b.summary)
    if versions:
        click.echo(f"rebooted: the board ran {' -> '.join(versions)}")
