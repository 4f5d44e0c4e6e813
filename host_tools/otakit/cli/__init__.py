"""The ``otakit`` command line: one click group, one module per top-level command.

Each module under ``otakit.cli`` is named after the command or command group it defines
(``sim campaign`` in ``sim_campaign.py``; ``_keyfile.py`` holds the shared key arguments) and
registers it here; `main` imports only the module of the command it runs (every one for
``--help`` and for a command it does not know). The group reads the project file (``otakit.toml``, `otakit.project`) and
makes its settings every command's option defaults (click's ``default_map``): a flag overrides
them, an ``OTAKIT_*`` environment variable overrides the file. Library code raises
`OtakitError`; `main` prints ``otakit: REASON: message`` to stderr and exits 1 for those and for
every other failure (usage errors exit 2; ``_errors.py``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from otakit import __version__
from otakit.project import PROJECT_ENV, Project, default_map
from otakit.project import load as load_project
from otakit.cli._errors import run

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="otakit")
@click.option("--project", metavar="FILE", envvar=PROJECT_ENV,
              help="The project file [default: ./otakit.toml when present; env OTAKIT_PROJECT].")
@click.pass_context
def cli(ctx: click.Context, project: str | None) -> None:
    """otakit: signed, power-safe OTA updates for MicroPython on ESP32.

    Make keys, sign releases into a release repository, serve it, and try it all on a simulated
    ESP32 board; build firmware with the agent and keys frozen in, check partition layouts, flash
    and deploy real boards. Run `otakit COMMAND --help` for each command.

    `otakit init` writes the project file otakit.toml (product, boards, channel, repository,
    key, keyring, update URL, CA); every command takes its defaults from it. A flag overrides
    the file, and so do OTAKIT_PRODUCT, OTAKIT_BOARD, OTAKIT_CHANNEL, OTAKIT_REPO, OTAKIT_KEY,
    OTAKIT_KEYRING, OTAKIT_URL, OTAKIT_CA (and ESPTOOL_PORT, ESPTOOL_BAUD for flash and deploy).
    """
    if ctx.invoked_subcommand == "init":  # init writes the file: a bad one must not stop it
        ctx.obj = Project(path=Path(project) if project else None)
        return
    ctx.obj = load_project(project)
    ctx.default_map = default_map(cli, ctx.obj)


# The command modules, each named after the one command (or group) it registers.
MODULES = ("init", "keygen", "key", "keyring", "refresh", "release", "verify", "inspect", "serve",
           "sim", "build", "flash", "deploy", "layout", "support", "compliance", "rollout",
           "publish", "revert", "bundle", "latency")


def _register(names: Sequence[str] = MODULES) -> None:
    """Add the commands of the modules ``names`` (default: every one) to the group."""
    for name in names:
        module = importlib.import_module(f"otakit.cli.{name}")
        for command in module.COMMANDS:
            cli.add_command(command)
        if names is MODULES and hasattr(module, "load_all"):
            module.load_all()


def _invoked(argv: Sequence[str]) -> list[str] | None:
    # The command module a command line names (after --project FILE), or None: the whole
    # group is needed (--help, --version, an unknown command and its suggestions).
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--project":
            i += 2
        elif arg.startswith("--project="):
            i += 1
        else:
            return [arg] if arg in MODULES else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code. Only the invoked command's module is imported
    (a process that runs one command does not load the others' dependencies)."""
    names = _invoked(sys.argv[1:] if argv is None else argv)
    _register(MODULES if names is None else names)
    return run(cli, argv)


if __name__ == "__main__":
    sys.exit(main())
