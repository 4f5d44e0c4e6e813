"""Deploy the agent to a board running stock MicroPython, for development, with mpremote.

The agent (``firmware/ota/*.py``), the example app and the keyring are compiled to ``.mpy`` with
mpy-cross (so the board spends no heap compiling them) and copied to ``:lib``; boot.py, main.py
and the device configuration ``ota_config.json`` go to the filesystem root, with the CA
certificate an https update URL needs (DER, named by the configuration's ``ca``, by default
``ota_ca.der``) and the content key of encrypted releases (``ota_content.key``) when they are
given. A configuration with an https URL and no CA is refused before anything is staged: the app
would refuse it on the board. One mpremote invocation does it all (commands chained with ``+``),
then resets the board.

This is a development path: on stock firmware the keyring is a file on the writable filesystem,
which anyone with file access can replace. Products freeze it into the firmware
(`otakit build`), where the agent is meant to take it from.

A bundle (`otakit bundle`, docs/format.md §8) goes the same way to a board that runs the agent:
`check_bundle` reads its header and refuses a truncated or foreign file before anything is sent;
one mpremote invocation checks the board's free space, copies it to ``:bundle.otab`` and runs
the agent's ``install_file`` on it with the board's own ``ota_config.json`` (`bundle_argv`,
`BUNDLE_INSTALL`), which prints the agent's status on one ``OTAKIT-BUNDLE`` line and removes the
file; `deploy_bundle` reads that line and resets the board when a release was installed, so that
it boots it on trial. `otakit sim install` does the same on a simulated board
(`otakit.sim.bundle`, with these scripts).
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

from otakit import cacert, keys
from otakit.boards import Board
from otakit.bundle import HEADER, Header, read_header
from otakit.errors import KeyFileError, OtakitError, ToolError
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


def stage(board: Board, config: Path, keyring: Path, staging: Path, *,  # noqa: PLR0913
          firmware_dir: Path = FIRMWARE_DIR, ca: Path | None = None,
          content_key: Path | None = None) -> list[str]:
    """Compile and lay out the files to copy under ``staging``; return their device paths.

    Raises:
        KeyFileError: the keyring is missing or empty. ToolError: bad config, mpy-cross failure.
    """
    cfg = check_config(config, board)
    ca_name = _ca_name(cfg, config, ca)
    ca_der = cacert.der(ca) if ca else None  # both checked before anything is staged
    key_text = None
    if content_key:
        from otakit.contentkey import key_file_text  # noqa: PLC0415

        key_text = key_file_text(content_key)
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
    if ca_der is None:
        shutil.copyfile(config, staging / "ota_config.json")
    else:
        (staging / "ota_config.json").write_text(json.dumps({**cfg, "ca": ca_name}, indent=1))
        (staging / ca_name).write_bytes(ca_der)
    if key_text:
        from otakit.contentkey import DEVICE_FILE  # noqa: PLC0415

        (staging / DEVICE_FILE).write_text(key_text)
    return sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())


def _ca_name(cfg: dict, config: Path, ca: Path | None) -> str:
    """Where the CA goes on the board: the file ``ca`` names (one file name at the root),
    else ``ota_ca.der``.

    Raises:
        ToolError: ``BAD_CONFIG``: an https URL with no CA given or named, or a ``ca`` that is
        not a plain file name.
    """
    name = cfg.get("ca")
    if name is None:
        if ca is None and cfg["url"].startswith("https://"):
            raise ToolError(f"{config} has an https url but no CA certificate: give --ca FILE "
                            "(the device checks the server against it)", reason="BAD_CONFIG")
        return cacert.DEVICE_FILE
    if not isinstance(name, str) or not name or "/" in name or name.startswith(".") \
            or len(name) > 64:
        raise ToolError(f"{config}: ca must name one file at the board's root, not {name!r}",
                        reason="BAD_CONFIG")
    return name


def mpremote_argv(port: str, staging: Path) -> list[str]:
    """``mpremote connect PORT cp -r lib : + cp ... : + reset``, run with cwd = ``staging``:
    every file at the staging root goes to the board's root (boot.py, main.py and the
    configuration first)."""
    argv = ["connect", port, "cp", "-r", "lib", ":"]
    first = ["boot.py", "main.py", "ota_config.json"]
    rest = sorted(p.name for p in staging.iterdir() if p.is_file() and p.name not in first)
    for name in first + rest:
        argv += ["+", "cp", name, ":" + name]
    return [*argv, "+", "reset"]


def plan_deploy(board: Board, port: str, config: Path, keyring: Path,  # noqa: PLR0913
                staging: Path | None = None, *, ca: Path | None = None,
                content_key: Path | None = None) -> DeployPlan:
    """Stage everything and build the mpremote command (nothing touches the board yet)."""
    staging = staging or Path(tempfile.mkdtemp(prefix="otakit-deploy-"))
    files = stage(board, config, keyring, staging, ca=ca, content_key=content_key)
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


# --- a bundle file ---------------------------------------------------------------------------
BUNDLE_NAME = "bundle.otab"  # where a bundle lands on the board's filesystem (its cwd, "/")
_MARK = "OTAKIT-BUNDLE "
_NO_SPACE = "OTAKIT-NO-SPACE "
# Before the copy: the free space of the filesystem the app runs in (a bundle left by an earlier
# copy is replaced, so it counts).
BUNDLE_SPACE = """\
import os
s = os.statvfs(os.getcwd())
free = s[0] * s[3]
try:
    free += os.stat("bundle.otab")[6]
except OSError:
    pass
if free < {size}:
    print("OTAKIT-NO-SPACE %d" % free)
    raise SystemExit(1)
"""
# After the copy: the agent installs it as the example app configures the agent (firmware/
# doorlock.py); the file is removed whatever the outcome (a second deploy resumes a cut install).
BUNDLE_INSTALL = """\
import json, os, ota
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg.get("product", "doorlock"), cfg.get("board", "esp32"),
                             channel=cfg.get("channel", "stable")))
installed = agent.install_file_sync("bundle.otab")
os.remove("bundle.otab")
print("OTAKIT-BUNDLE " + json.dumps({"installed": installed, "status": agent.status()}))
"""


@dataclass(frozen=True)
class BundleFile:
    """A bundle checked on the host: its path, header and what it installs (for the user)."""

    path: Path
    header: Header
    summary: str


def check_bundle(path: Path) -> BundleFile:
    """Read a bundle's header and manifest (not its signature: the device checks that).

    Raises:
        OtakitError: ``SHORT_READ`` (a truncated file), ``BAD_BUNDLE``, ``TOO_LARGE``.
    """
    from otakit.manifest import parse_unverified  # noqa: PLC0415

    with path.open("rb") as f:
        head = f.read(HEADER)
        h = read_header(head)
        keyring_doc = f.read(h.keyring_len)
        manifest = f.read(h.manifest_len)
    size = path.stat().st_size
    if size < h.size:
        raise OtakitError(f"{path} is {size} bytes, its header announces {h.size} (a truncated "
                          "copy?)", reason="SHORT_READ")
    if size > h.size:
        raise OtakitError(f"{path} has {size - h.size} bytes after its payload",
                          reason="BAD_BUNDLE")
    try:
        b = parse_unverified(manifest).body
    except OtakitError as e:
        raise OtakitError(f"{path}: its manifest is unreadable ({e})", reason="BAD_BUNDLE") from e
    summary = (f"{b.product}/{b.board}/{b.channel} {b.version} (sequence {b.sequence}), "
               f"{h.payload_len} payload bytes")
    if keyring_doc:
        summary += ", with a keyring document"
    return BundleFile(path, h, summary)


def bundle_argv(port: str, bundle: BundleFile) -> list[str]:
    """``mpremote connect PORT exec SPACE + cp FILE :bundle.otab + exec INSTALL``."""
    return ["connect", port, "exec", BUNDLE_SPACE.format(size=bundle.header.size), "+",
            "cp", str(bundle.path), ":" + BUNDLE_NAME, "+", "exec", BUNDLE_INSTALL]


def bundle_outcome(output: str) -> dict:
    """The ``OTAKIT-BUNDLE`` line's ``{"installed", "status"}``.

    Raises:
        OtakitError: ``NO_SPACE`` (the board's filesystem cannot hold the file), the agent's
            reason code when it refused the bundle, ``DEPLOY_FAILED`` without the line.
    """
    for line in output.splitlines():
        if line.startswith(_NO_SPACE):
            raise OtakitError(f"the board's filesystem has {line[len(_NO_SPACE):].strip()} bytes "
                              "free, not enough for the bundle", reason="NO_SPACE")
        if line.startswith(_MARK):
            try:
                out = json.loads(line[len(_MARK):])
            except ValueError:
                break
            st = out["status"]
            if st.get("state") == "failed":
                raise OtakitError(f"the device refused the bundle: {st.get('detail') or ''}",
                                  reason=st.get("reason") or "DEPLOY_FAILED")
            return out
    raise ToolError("the board did not report the install (no OTAKIT-BUNDLE line)",
                    reason="DEPLOY_FAILED")


def deploy_bundle(port: str, bundle: BundleFile, run: Runner = subprocess.run) -> dict:
    """Copy the bundle to the board and install it there; reset the board after an install.
    Returns the outcome (`bundle_outcome`).

    Raises:
        OtakitError: as `bundle_outcome`; ToolError ``DEPLOY_FAILED`` when mpremote fails.
    """
    cmd = [sys.executable, "-m", "mpremote", *bundle_argv(port, bundle)]
    try:
        proc = run(cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        raise ToolError(f"cannot run mpremote: {e}", reason="DEPLOY_FAILED") from e
    output = (proc.stdout or b"").decode("utf-8", "replace")
    try:
        out = bundle_outcome(output)
    except ToolError:
        if proc.returncode:
            tail = " | ".join(output.strip().splitlines()[-2:])
            raise ToolError(f"mpremote failed with exit code {proc.returncode}: {tail}",
                            reason="DEPLOY_FAILED") from None
        raise
    if out["installed"]:
        proc = run([sys.executable, "-m", "mpremote", "connect", port, "reset"], check=False)
        if proc.returncode:
            raise ToolError("installed, but the reset failed: reset the board to try it",
                            reason="DEPLOY_FAILED")
    return out
