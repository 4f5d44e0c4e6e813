"""The project file ``otakit.toml``: the settings every command would otherwise repeat.

``otakit init`` writes it; the CLI's group reads it (from the working directory, or ``--project
FILE`` / ``$OTAKIT_PROJECT``) and turns it into click's ``default_map``, so each command's
``--repo``, ``--product``, ``--board``, ``--channel``, ``--key``, ``--keyring`` and ``--url``
default to the project's value. Precedence, highest first: a flag on the command line, an
environment variable (`ENV`; ``ESPTOOL_PORT``/``ESPTOOL_BAUD`` for ``flash`` and ``deploy``), the
project file, the command's own default.

Relative paths in the file are relative to the file's directory. Every refusal is an
`OtakitError` with reason ``BAD_PROJECT``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click

from otakit.boards import available_boards
from otakit.errors import OtakitError

FILE_NAME = "otakit.toml"
PROJECT_ENV = "OTAKIT_PROJECT"

# setting -> (type, what it is); the order is the order `otakit init` writes them in.
FIELDS: dict[str, tuple[type, str]] = {
    "product": (str, "the product name devices and manifests carry"),
    "boards": (list, "the boards of the product (boards/NAME); the first is the default --board"),
    "channel": (str, "the release channel devices follow"),
    "repository": (str, "the release repository directory (release, serve, verify, publish)"),
    "key": (str, "the signing key: a private key PEM file or a pkcs11: URI (an HSM)"),
    "keyring": (str, "the device keyring module (key export writes it; build, deploy and "
                     "sim flash freeze it)"),
    "url": (str, "the update URL devices fetch releases from"),
    "ca": (str, "the CA certificate (PEM) devices trust for an https url (\"\" for http); "
                "`sim flash` writes it onto the board for the example app"),
}
PATH_FIELDS = ("repository", "key", "keyring", "ca")

# Environment variables, one per setting (board: the default board).
ENV = {"product": "OTAKIT_PRODUCT", "board": "OTAKIT_BOARD", "channel": "OTAKIT_CHANNEL",
       "repository": "OTAKIT_REPO", "key": "OTAKIT_KEY", "keyring": "OTAKIT_KEYRING",
       "url": "OTAKIT_URL", "ca": "OTAKIT_CA"}

# A command option (its click parameter name) -> the setting that gives its default.
OPTION_SETTING = {"repo": "repository", "product": "product", "board": "board",
                  "channel": "channel", "key_file": "key", "keyring": "keyring", "url": "url",
                  "update_url": "url", "ca": "ca"}
# esptool's own variables, for the commands that talk to a serial port.
SERIAL_COMMANDS = ("flash", "deploy")
SERIAL_ENV = {"port": "ESPTOOL_PORT", "baud": "ESPTOOL_BAUD"}


@dataclass
class Project:
    """The settings in force: the project file's, overridden by the environment.

    Attributes:
        path: the project file, or None when there is none.
        settings: setting name -> value (``board`` is the first of ``boards``); only the
            settings given somewhere are present.
        serial: ``port``/``baud`` from ``ESPTOOL_PORT``/``ESPTOOL_BAUD``.
    """

    path: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)
    serial: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        """A setting's value, or ``default``."""
        return self.settings.get(name) or default


def _bad(path: Path, detail: str) -> OtakitError:
    return OtakitError(f"{path}: {detail}", reason="BAD_PROJECT")


def read_file(path: Path) -> dict[str, object]:
    """The checked settings of a project file (``boards`` as a list, the rest strings, paths
    made relative to the working directory when they are relative to the file's).

    Raises:
        OtakitError: ``BAD_PROJECT``: unreadable, not TOML, an unknown setting, a wrong type,
            an unknown board.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise _bad(path, f"cannot read it ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise _bad(path, f"not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise _bad(path, "not UTF-8 text") from None
    out: dict[str, object] = {}
    for name, value in data.items():
        if name not in FIELDS:
            raise _bad(path, f"unknown setting {name!r} (known: {', '.join(FIELDS)})")
        kind = FIELDS[name][0]
        if kind is list:
            if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
                raise _bad(path, f"{name} must be a non-empty list of strings")
            unknown = [v for v in value if v not in available_boards()]
            if unknown:
                raise _bad(path, f"unknown board {unknown[0]!r} (known: "
                                 f"{', '.join(available_boards())})")
        elif not isinstance(value, str):
            raise _bad(path, f"{name} must be a string")
        elif name in PATH_FIELDS and value and not value.startswith("pkcs11:"):
            value = _relative(path, value)
        out[name] = value
    return out


def _relative(project: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else project.parent / p)


def load(path: str | os.PathLike[str] | None = None,
         environ: Mapping[str, str] | None = None) -> Project:
    """The project in force: ``path``, else ``$OTAKIT_PROJECT``, else ``./otakit.toml`` when it
    exists (else no file), with the environment's overrides (`ENV`, `SERIAL_ENV`).

    Raises:
        OtakitError: ``BAD_PROJECT``: a named project file is missing or bad (`read_file`).
    """
    environ = os.environ if environ is None else environ
    named = path or environ.get(PROJECT_ENV) or None
    file: Path | None = Path(named) if named else None
    if file is not None and not file.is_file():
        raise _bad(file, "no such project file")
    if file is None and Path(FILE_NAME).is_file():
        file = Path(FILE_NAME)
    project = Project(path=file)
    if file is not None:
        data = read_file(file)
        boards = data.pop("boards", None)
        if isinstance(boards, list):
            project.settings["board"] = boards[0]
        project.settings.update({k: str(v) for k, v in data.items() if v})
    for name, var in ENV.items():
        if environ.get(var):
            project.settings[name] = environ[var]
    for name, var in SERIAL_ENV.items():
        if environ.get(var):
            project.serial[name] = environ[var]
    return project


def default_map(group: click.Group, project: Project) -> dict[str, object]:
    """click's ``default_map`` for ``group``: for every command below it, each option named in
    `OPTION_SETTING` defaults to its setting (and ``--port``/``--baud`` of `SERIAL_COMMANDS` to
    esptool's variables). An optional path option is left alone while the setting names no
    existing file (``verify --keyring`` before ``key export``)."""
    out: dict[str, object] = {}
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            sub = default_map(cmd, project)
        else:
            sub = _command_defaults(name, cmd, project)
        if sub:
            out[name] = sub
    return out


def _command_defaults(name: str, cmd: click.Command, project: Project) -> dict[str, object]:
    out: dict[str, object] = {}
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.multiple or p.name is None:
            continue
        if name in SERIAL_COMMANDS and p.name in SERIAL_ENV:
            if p.name in project.serial:
                out[p.name] = project.serial[p.name]
            continue
        value = project.settings.get(OPTION_SETTING.get(p.name, ""))
        if not value:
            continue
        if isinstance(p.type, click.Path) and not p.required \
                and not value.startswith("pkcs11:") and not Path(value).exists():
            continue  # an optional input the project names but nobody has written yet
        out[p.name] = value
    return out


def render(settings: Mapping[str, object]) -> str:
    """The text of an ``otakit.toml`` with ``settings`` (`FIELDS` order, a comment on each)."""
    lines = ["# otakit.toml: the project's settings. Every otakit command takes its defaults from",
             "# here; a flag on the command line overrides them, and so does an environment",
             "# variable (OTAKIT_PRODUCT, OTAKIT_BOARD, OTAKIT_CHANNEL, OTAKIT_REPO, OTAKIT_KEY,",
             "# OTAKIT_KEYRING, OTAKIT_URL, OTAKIT_CA). Paths are relative to this file.", ""]
    for name, (_, what) in FIELDS.items():
        if name not in settings:
            continue
        value = settings[name]
        text = ("[" + ", ".join(_quote(v) for v in value) + "]" if isinstance(value, list)
                else _quote(str(value)))
        lines.append(f"# {what}")
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
