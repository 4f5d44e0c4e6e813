"""otakit CLI: ``deploy`` (mpremote; the agent as .mpy files on a stock MicroPython board, or a
bundle file installed on a board that runs the agent)."""

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
@click.option("--ca", type=click.Path(dir_okay=False),
              help="The CA certificate (PEM or DER) of an https update server: copied as DER "
              "to the file the config's ca names (default ota_ca.der). Required for an https url "
              "unless the config names a CA file already on the board.")
@click.option("--content-key", type=click.Path(dir_okay=False),
              help="A content key file (`otakit key content`): copied as ota_content.key, so "
              "that the board installs releases encrypted with it.")
@click.option("--dry-run", is_flag=True, help="Stage the files and print the mpremote command.")
@click.option("--bundle", "bundle_file", type=click.Path(dir_okay=False, exists=True),
              help="Instead: send this bundle (otakit bundle) to a board that runs the agent and "
              "install it there (the agent checks it as a downloaded release), then reset.")
def deploy(board: str, port: str | None, config: str, keyring: str,  # noqa: PLR0913
           ca: str | None, content_key: str | None, dry_run: bool,
           bundle_file: str | None) -> None:
    """Copy the agent, the example app and the keyring to a board running stock MicroPython.

    Compiles firmware/ota and the app to .mpy with mpy-cross and copies them to :lib, with
    boot.py, main.py and the config at the root (and the CA and the content key when given),
    through mpremote; then resets the board. For development only: the keyring and the content
    key end up on the writable filesystem; products freeze the keyring into the firmware with
    `otakit build`.

    With --bundle FILE: an offline install. The board's free space is checked, the file is
    copied to :bundle.otab and the agent installs it with the board's ota_config.json (every
    check of a network install: signature, board, channel, revision, sequence, floor, expiry);
    a refusal is reported with the device's reason code. After an install the board is reset
    and boots the release on trial. `otakit sim install` does the same on a simulated board.
    """
    if bundle_file is not None:
        _deploy_bundle(Path(bundle_file), port, dry_run)
        return
    b = load_board(board)
    port = dev_flash.resolve_port(port, dry_run=dry_run)
    plan = dev_deploy.plan_deploy(b, port, Path(config), Path(keyring),
                                  ca=Path(ca) if ca else None,
                                  content_key=Path(content_key) if content_key else None)
    click.echo(f"staged {len(plan.files)} file(s) in {plan.staging}: {', '.join(plan.files)}")
    click.echo(f"$ (cd {plan.staging} && mpremote {' '.join(plan.argv)})")
    click.echo("note: development deploy: the keyring"
               + (" and the content key are files" if content_key else " is a file")
               + " on the board's filesystem")
    if dry_run:
        click.echo("dry run: nothing copied")
        return
    dev_flash.check_port(port)
    dev_deploy.run_mpremote(plan)
    click.echo(f"deployed to {port}")


def _deploy_bundle(path: Path, port: str | None, dry_run: bool) -> None:
    bundle = dev_deploy.check_bundle(path)
    click.echo(f"bundle {path}: {bundle.summary}")
    port = dev_flash.resolve_port(port, dry_run=dry_run)
    argv = dev_deploy.bundle_argv(port, bundle)
    click.echo(f"$ mpremote connect {port} exec <free space check> + cp {path} "
               f":{dev_deploy.BUNDLE_NAME} + exec <install_file>")
    if dry_run:
        click.echo(f"dry run: nothing copied ({len(argv)} mpremote arguments)")
        return
    dev_flash.check_port(port)
    out = dev_deploy.deploy_bundle(port, bundle)
    report_bundle(out, bundle.summary)
    if out["installed"]:
        click.echo(f"reset {port}: it boots the release on trial")


def report_bundle(out: dict, what: str) -> None:
    """Print the outcome of a bundle install (`otakit.deploy.bundle_outcome`); also for `otakit
    sim install`."""
    st = out["status"]
    if out["installed"]:
        click.echo(f"installed {what.split(',')[0]}")
    else:  # up to date, or held back by a staged rollout
        why = f": {st['detail']}" if st.get("detail") else ""
        click.echo(f"nothing installed: {st.get('state')}{why}")


COMMANDS = [deploy]
