"""``--json`` for every command that reports something: one JSON object on stdout.

Not a command module: `json_option` adds the flag (as ``as_json``); `echo_json` prints the
object. When a command given --json fails, `otakit.cli._errors.run` also prints
``{"ok": false, "reason": REASON, "message": ...}`` on stdout (the one ``otakit:`` line still
goes to stderr), so a script reads stdout either way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_requested = {"json": False}


def _remember(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        _requested["json"] = True
    return value


def json_option(f: F) -> F:
    """The ``--json`` flag, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, callback=_remember,
                        help="Print one JSON object on stdout instead of text (on failure: "
                        '{"ok": false, "reason": ..., "message": ...}).')(f)


def echo_json(data: dict[str, Any]) -> None:
    """Print ``data`` (with ``"ok": true`` unless it says otherwise) as indented JSON."""
    click.echo(json.dumps({"ok": True, **data}, indent=2, ensure_ascii=False, default=str))


def reset() -> None:
    """Forget a --json seen by an earlier run (one process may run several)."""
    _requested["json"] = False


def json_failure(reason: str, message: str) -> None:
    """On a failure: the JSON object for a command that was given --json."""
    if _requested["json"]:
        click.echo(json.dumps({"ok": False, "reason": reason, "message": message}))
