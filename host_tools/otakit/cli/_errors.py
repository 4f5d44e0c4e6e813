"""How the ``otakit`` command line ends: one ``otakit: REASON: message`` line, never a traceback.

Not a command module: `run` runs the click group and turns every failure into one line on stderr
and an exit code (docs/release.md "Exit codes"):

- 0: done.
- 1: a refusal or a failure: an `OtakitError` (its ``reason``), an input file that does not
  exist or is not a file (``NOT_FOUND``, ``BAD_PATH``), an OS error reading or writing a path
  (``NOT_FOUND``, ``PERMISSION_DENIED``, ``READ_ONLY``, ``NO_SPACE``, ``NOT_A_DIRECTORY``,
  ``IS_A_DIRECTORY``, ``OS_ERROR``), Ctrl-C at a prompt (``ABORTED``), and, should one escape, a
  bug (``INTERNAL``; ``OTAKIT_DEBUG=1`` shows its traceback).
- 2: a usage error (``USAGE``: an unknown option, a missing required one, a bad value), with the
  command's ``--help`` named.
"""

from __future__ import annotations

import errno
import os

import click

from otakit.cli import _output
from otakit.errors import OtakitError

EXIT_FAILURE = 1
EXIT_USAGE = 2

_ERRNO_REASONS = {
    errno.ENOENT: "NOT_FOUND",
    errno.EACCES: "PERMISSION_DENIED",
    errno.EPERM: "PERMISSION_DENIED",
    errno.EROFS: "READ_ONLY",
    errno.ENOSPC: "NO_SPACE",
    errno.EDQUOT: "NO_SPACE",
    errno.ENOTDIR: "NOT_A_DIRECTORY",
    errno.EISDIR: "IS_A_DIRECTORY",
    errno.EEXIST: "EXISTS",
}


def report(reason: str, message: str) -> None:
    """Print the one error line (and, for a command given --json, the JSON failure object)."""
    _output.json_failure(reason, message)
    click.echo(f"otakit: {reason}: {message}", err=True)


def os_error_reason(e: OSError) -> str:
    """The reason code for an OS error (``OS_ERROR`` when no closer one applies)."""
    return _ERRNO_REASONS.get(e.errno or 0, "OS_ERROR")


def os_error_message(e: OSError) -> str:
    """``strerror: path`` (both paths of a rename), without Python's ``[Errno N]``."""
    what = e.strerror or str(e)
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{what}: {' -> '.join(os.fsdecode(p) for p in paths)}" if paths else what


def _command_path(ctx: click.Context | None) -> str:
    return ctx.command_path if ctx is not None else "otakit"


def _usage(e: click.UsageError) -> int:
    if (isinstance(e, click.BadParameter) and not isinstance(e, click.MissingParameter)
            and isinstance(getattr(e.param, "type", None), click.Path)):
        # click.Path(exists=True, ...): the input file is missing or of the wrong kind
        name = e.param.get_error_hint(e.ctx) if e.ctx and e.param else "a path"
        reason = "NOT_FOUND" if "does not exist" in e.message else "BAD_PATH"
        report(reason, f"{name}: {e.message}")
        return EXIT_FAILURE
    report("USAGE", f"{e.format_message()} (see `{_command_path(e.ctx)} --help`)")
    return EXIT_USAGE


def run(group: click.Group, argv: list[str] | None) -> int:
    """Run ``group`` on ``argv``; return the exit code, having printed at most one error line."""
    _output.reset()
    try:
        group.main(args=argv, prog_name="otakit", standalone_mode=False)
    except OtakitError as e:
        report(e.reason, str(e))
        return EXIT_FAILURE
    except click.exceptions.Abort:
        report("ABORTED", "aborted")
        return EXIT_FAILURE
    except click.UsageError as e:
        return _usage(e)
    except click.ClickException as e:
        report("ERROR", e.format_message())
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except OSError as e:
        report(os_error_reason(e), os_error_message(e))
        return EXIT_FAILURE
    except Exception as e:
        if os.environ.get("OTAKIT_DEBUG"):
            raise
        report("INTERNAL", f"{type(e).__name__}: {e} (a bug in otakit; OTAKIT_DEBUG=1 shows "
               "where)")
        return EXIT_FAILURE
    return 0
