"""The ``otakit`` command line: one click group, one module per top-level command.

Each module under ``otakit.cli`` is named after the command or command group it defines
(``sim campaign`` in ``sim_campaign.py``; ``_keyfile.py`` holds the shared key arguments) and
registers it here. Library code raises
`OtakitError`; `main` prints ``otakit: REASON: message`` to stderr and exits 1 for those and for
every other failure (usage errors exit 2; ``_errors.py``).
"""

from __future__ import annotations

import sys

import click

from otakit import __version__
from otakit.cli._errors import run

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="otakit")
def cli() -> None:
    """otakit: signed, power-safe OTA updates for MicroPython on ESP32.

    Make keys, sign releases into a release repository, serve it, and try it all on a simulated
    ESP32 board; build firmware with the agent and keys frozen in, check partition layouts, flash
    and deploy real boards. Run `otakit COMMAND --help` for each command.
    """


def _register() -> None:
    from otakit.cli import (  # noqa: PLC0415
        build, compliance, deploy, flash, inspect, key, keygen, keyring, layout, publish,
        refresh, release, rollout, serve, sim, support, verify,
    )

    for module in (keygen, key, keyring, refresh, release, verify, inspect, serve, sim, build,
                   flash, deploy, layout, support, compliance, rollout, publish):
        for command in module.COMMANDS:
            cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    _register()
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
