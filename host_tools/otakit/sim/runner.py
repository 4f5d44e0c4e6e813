"""Power the simulated board on and keep it running across resets, like a board on a bench.

One boot is one `micropython -m _simboot` process (boards/unix/_simboot.py). The boot ends with
an exit record that says why; the runner starts the next boot accordingly: a hard reset, WDT
timeout or panic runs the full bootloader; a deep sleep wakes through the RTC fast-boot path; a
soft reset skips the bootloader; a power cut (``cut_at``) powers on again unless
``restart_after_cut`` is false. The run ends when the firmware finishes (main.py or the script
returns or raises), at ``max_boots``, in a boot loop, or when a boot times out.

Invariants: the flash image file is the only device state that survives a power cut; the RTC
record (deep sleep) lives in the run's state directory and is dropped at every power-on; the
firmware's frozen ``ota_origin`` module is compiled there from the image's board record at the
start of the run and put after the app directory (the frozen modules) on ``sys.path``; the
mutating-operation counter runs across all boots of a run, so ``RunResult.ops`` enumerates
every cut point of a scenario. With ``frozen=True`` the app directory's compiled modules are
packed into a ROMFS image at the start of the run and executed in place from it (`romfs_image`),
held outside the device's heap budget, as frozen code is on a board.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from otakit.errors import OtakitError
from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR
from otakit.sim.build import sim_module_dir
from otakit.sim.flash import frozen_origin

DEFAULT_HEAPSIZE = "56K"
# Reset causes as machine.reset_cause() reports them after each way a boot can end.
_RESET_CAUSE = {"poweron": 1, "cut": 1, "wdt": 3, "deepsleep": 4, "reset": 5, "panic": 5}
_NEXT_REASON = {"reset": "reset", "wdt": "wdt", "panic": "panic", "deepsleep": "deepsleep",
                "soft": "soft", "cut": "poweron", "nobootable": "reset"}


@dataclass(frozen=True)
class Boot:
    """One boot of the simulated board.

    Attributes:
        index: 1-based boot number within the run.
        reason: why it booted: poweron, reset, wdt, panic, deepsleep or soft.
        slot: label of the partition that booted (``RUNNING``), or None if nothing booted.
        version: the app descriptor's version of the booted image.
        behaviour: the image's simulator behaviour (``crash``, ``hang``) or "".
        ended: how it ended: done, error, reset, wdt, panic, deepsleep, soft, cut,
            nobootable or timeout.
        ops: mutating flash operations performed during this boot.
        log: this boot's console output.
        image_sha256: hex SHA-256 of the booted image's bytes (as its header lays them out),
            hashed by the simulated bootloader before the firmware ran; "" if none booted.
    """

    index: int
    reason: str
    slot: str | None
    version: str
    behaviour: str
    ended: str
    ops: int
    log: str
    image_sha256: str = ""


@dataclass
class RunResult:
    """What happened in a run.

    Attributes:
        boots: every boot, in order.
        ops: mutating flash operations in the whole run (the cut points are 1..ops).
        ended: finished (the firmware returned or raised), max_boots, boot_loop or timeout;
            power_cut when a cut ended the run (``restart_after_cut=False``).
        cut: whether a power cut happened.
        log: the whole console output, with one ``--- boot N (reason) ---`` line per boot.
    """

    boots: list[Boot] = field(default_factory=list)
    ops: int = 0
    ended: str = ""
    cut: bool = False
    log: str = ""

    @property
    def last(self) -> Boot:
        """The last boot."""
        return self.boots[-1]

    @property
    def error(self) -> bool:
        """Whether the firmware's script ended with an uncaught exception."""
        return bool(self.boots) and self.boots[-1].ended == "error"


def _read_kv(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _read_exit(path: Path) -> tuple[str, int]:
    try:
        parts = path.read_text().split()
    except OSError:
        return "", -1
    return (parts[0], int(parts[1])) if len(parts) >= 2 else ("", -1)


@dataclass(frozen=True)
class _Setup:
    flash: Path
    state: Path
    script: str | None
    app_dir: str | None
    cut_at: tuple[int, ...]
    heapsize: str | int | None
    env: dict[str, str]
    timeout: float
    on_output: Callable[[str], None] | None = None
    frozen: str | None = None
    romfs: str | None = None


def _boot_once(s: _Setup, index: int, reason: str, ops_before: int) -> tuple[Boot, int]:
    for name in ("exit", "boot"):
        (s.state / name).unlink(missing_ok=True)
    env = dict(s.env)
    cut_at = next((c for c in s.cut_at if c > ops_before), 0)  # the next cut still to come
    env.update({"OTAKIT_SIM_FLASH": str(s.flash), "OTAKIT_SIM_STATE": str(s.state),
                "OTAKIT_SIM_OPS": str(ops_before), "OTAKIT_SIM_CUT_AT": str(cut_at),
                "OTAKIT_SIM_RESET": reason, "OTAKIT_SIM_BOOT": str(index),
                "OTAKIT_SIM_RESET_CAUSE": str(_RESET_CAUSE.get(reason, 5))})
    if s.script:
        env["OTAKIT_SIM_SCRIPT"] = s.script
    if s.app_dir:
        env["OTAKIT_SIM_APP_DIR"] = s.app_dir
    if s.romfs:
        env["OTAKIT_SIM_ROMFS"] = s.romfs
    # the frozen modules: the app directory (or its ROMFS image, mounted by _simboot in its
    # place), then the firmware's ota_origin (from the image)
    path = [sim_module_dir()] + ([s.app_dir] if s.app_dir and not s.romfs else []) + \
        ([s.frozen] if s.frozen else [])
    try:
        proc = run_micropython(["-m", "_simboot"], path=path, heapsize=s.heapsize, env=env,
                               timeout=s.timeout, on_line=s.on_output)
        log = (proc.stdout + proc.stderr).decode(errors="replace")
        event, total = _read_exit(s.state / "exit")
        if not event:
            event, total = "error", ops_before
            log += f"[sim] device process ended without an exit record (rc={proc.returncode})\n"
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"") + (e.stderr or b"")
        log = out.decode(errors="replace") + f"[sim] boot timed out after {s.timeout} s\n"
        event, total = "timeout", ops_before
    info = _read_kv(s.state / "boot")
    boot = Boot(index=index, reason=reason, slot=info.get("slot"),
                version=info.get("version", ""), behaviour=info.get("behaviour", ""),
                ended=event, ops=max(0, total - ops_before), log=log,
                image_sha256=info.get("sha256", ""))
    return boot, max(total, ops_before)


def _next(boot: Boot, result: RunResult, restart_after_cut: bool) -> str | None:
    # The reason for the next boot, or None when the run ends (result.ended set).
    if boot.ended in ("done", "error"):
        result.ended = "finished"
        return None
    if boot.ended == "timeout":
        result.ended = "timeout"
        return None
    if boot.ended == "cut":
        result.cut = True
        if not restart_after_cut:
            result.ended = "power_cut"
            return None
    if boot.ended in ("panic", "nobootable") and boot.ops == 0:
        result.ended = "boot_loop"  # nothing changed in flash: every next boot is the same
        return None
    return _NEXT_REASON.get(boot.ended, "reset")


def run(flash_path: str | os.PathLike[str], *, script: str | os.PathLike[str] | None = None,
        app_dir: str | os.PathLike[str] | None = None, max_boots: int = 10,
        cut_at: int | Sequence[int] | None = None, heapsize: str | int | None = DEFAULT_HEAPSIZE,
        env: dict[str, str] | None = None, timeout: float = 60,
        restart_after_cut: bool = True,
        on_boot: Callable[[Boot], None] | None = None,
        on_output: Callable[[str], None] | None = None, frozen: bool = False) -> RunResult:
    """Power on the simulated board and run it until the firmware finishes.

    Args:
        flash_path: the flash image (see `otakit.sim.flash.create_flash`); modified in place.
        script: run this file at every boot instead of main.py (boot.py still runs first).
        app_dir: the directory with boot.py/main.py and the app's modules (also on sys.path);
            default ``firmware/`` when it exists.
        max_boots: stop after this many boots.
        cut_at: cut power at this mutating flash operation (1-based, counted over the run), or
            at each of several (a second cut during the recovery from the first).
        heapsize: the MicroPython heap for device code (``-X heapsize``, e.g. ``"56K"``); the
            simulator's own modules are added on top (docs/simulator.md); None = port default.
        env: extra environment variables for the device process (``os.getenv`` on the device).
        timeout: seconds one boot may take before it is killed (the run then ends "timeout").
        restart_after_cut: power on again after a cut (default), or end the run there.
        on_boot: called with each `Boot` as soon as it ends.
        on_output: called with each line the device prints, as it prints it.
        frozen: the frozen-code mode: the app directory's ``.mpy`` modules (the agent, the app,
            the keyring) go into a ROMFS image that the device mounts at ``/rom`` and imports
            from in place of the app directory; their bytecode is executed in place, and the
            image is held in the process's heap outside the budget (added on top of it), as a
            board's frozen code is in flash (docs/simulator.md).

    Returns:
        A `RunResult`.

    Raises:
        OtakitError: the flash image does not exist.
    """
    flash = Path(flash_path).resolve()
    if not flash.is_file():
        raise OtakitError(f"no flash image at {flash}", reason="NO_IMAGE")
    if app_dir is None and FIRMWARE_DIR.is_dir():
        app_dir = FIRMWARE_DIR
    if frozen and not app_dir:
        raise OtakitError("the frozen-code mode needs an app directory", reason="NO_APP_DIR")
    image = romfs_image(Path(app_dir)) if frozen and app_dir else None
    state = Path(tempfile.mkdtemp(prefix="otakit-sim-"))
    romfs = None
    if image is not None:
        romfs = state / "app.romfs"
        romfs.write_bytes(image)
    extra = len(image) + ROMFS_HEADROOM if image is not None else 0
    setup = _Setup(flash=flash, state=state,
                   script=str(Path(script).resolve()) if script else None,
                   app_dir=str(Path(app_dir).resolve()) if app_dir else None,
                   cut_at=_cut_points(cut_at),
                   heapsize=heap_bytes(heapsize) + SIM_HEAP_HEADROOM + extra
                   if heapsize else None,
                   env={**(env or {}), "OTAKIT_SIM_HEAP_BUDGET":
                        str(heap_bytes(heapsize)) if heapsize else ""},
                   timeout=timeout, on_output=on_output,
                   frozen=_frozen_dir(flash, state), romfs=str(romfs) if romfs else None)
    result = RunResult()
    reason: str | None = "poweron"
    ops = 0
    logs = []
    try:
        for index in range(1, max_boots + 1):
            if reason == "poweron":
                (state / "rtc").unlink(missing_ok=True)
            boot, ops = _boot_once(setup, index, reason, ops)
            result.boots.append(boot)
            logs.append(f"--- boot {index} ({reason}) ---\n{boot.log}")
            if on_boot:
                on_boot(boot)
            reason = _next(boot, result, restart_after_cut)
            if reason is None:
                break
        else:
            result.ended = "max_boots"
    finally:
        shutil.rmtree(state, ignore_errors=True)
    result.ops = ops
    result.log = "".join(logs) + f"--- {result.ended}: {len(result.boots)} boot(s), {ops} " \
                                 f"mutating flash operation(s) ---\n"
    return result


def _frozen_dir(flash: Path, state: Path) -> str | None:
    # The firmware's ota_origin module, when the image's board record has one (docs/simulator.md).
    d = frozen_origin(flash, state / "frozen")
    return str(d) if d else None


def romfs_image(app_dir: Path) -> bytes:
    """A ROMFS image (MicroPython's ``vfs.VfsRom`` format, built with mpremote's writer) of
    the ``.mpy`` files under ``app_dir``, in their directories: the frozen-code mode's
    modules."""
    try:
        from mpremote.romfs import VfsRomWriter
    except ImportError as e:  # pragma: no cover - mpremote is a dependency
        raise OtakitError(f"the frozen-code mode needs mpremote: {e}",
                          reason="NO_MPREMOTE") from e
    writer = VfsRomWriter()

    def add(d: Path) -> None:
        for p in sorted(d.iterdir()):
            if p.is_dir() and any(p.rglob("*.mpy")):
                writer.opendir(p.name)
                add(p)
                writer.closedir()
            elif p.suffix == ".mpy":
                writer.mkfile(p.name, p.read_bytes())

    add(app_dir)
    return bytes(writer.finalise())


def _cut_points(cut_at: int | Sequence[int] | None) -> tuple[int, ...]:
    if not cut_at:
        return ()
    return tuple(sorted({cut_at} if isinstance(cut_at, int) else set(cut_at)))


def heap_bytes(heapsize: str | int) -> int:
    """``56K`` / ``1M`` / ``57344`` as a number of bytes."""
    text = str(heapsize).strip().upper()
    mult = 1024 if text.endswith("K") else (1024 * 1024 if text.endswith("M") else 1)
    return int(text.rstrip("KM")) * mult


# The simulator's own modules live on the MicroPython heap (on a board they are C code); the
# process gets this much more, and _simboot pins the excess so device code sees its budget in
# one piece. Generous: what the simulator's boot leaves behind must not split the budget.
SIM_HEAP_HEADROOM = 160 * 1024
# In the frozen-code mode the process also gets the ROMFS image's size and this much more: the
# read buffer, the mounted filesystem object, and the names of the image's modules with the
# qstr pools they fill (interned before the budget is set aside, as a board has them in flash).
ROMFS_HEADROOM = 64 * 1024
