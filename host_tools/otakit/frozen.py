"""What a firmware build freezes, staged: the tree the board's ``manifest.py`` reads.

`stage_sources` copies ``boards/<b>``, ``firmware/`` and the keyring into a stage directory in the
repository's relative layout (so the manifest's relative paths hold) and writes the firmware's
``ota_origin`` module beside the keyring; `manifest_calls` and `frozen_entries` read what the
board's manifest freezes without running MicroPython's tools. `otakit.build` stages through this
module and then runs the build.

Invariants:
- Nothing is staged without a keyring that lists at least one key: the firmware's trust anchor
  is frozen in or there is no firmware.
- Every stage has ``ota_origin`` beside ``ota_keys``: the firmware's own sequence and security
  version (`origin_module`; 0, 0 when not given) and whether it is a development build (only
  when asked: ``otakit build --dev``; a product build takes only https update URLs).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from otakit import keys
from otakit.boards import Board
from otakit.errors import BoardError, KeyFileError, ToolError
from otakit.paths import BOARDS_DIR, FIRMWARE_DIR


ORIGIN_MAX = 0x7FFFFFFF


def origin_module(sequence: int = 0, security_version: int = 0, *,
                  development: bool = False) -> str:
    """The text of the frozen module ``ota_origin``: the release this firmware is and whether
    it is a development build (docs/agent.md). ``DEVELOPMENT = True`` lets the example app
    take a plain ``http://`` update URL; a product build (False) takes only ``https://``
    (``ota.config.url_refusal``; `otakit.build.HTTP_POLICY`).

    Raises:
        ToolError: ``BAD_ARGUMENT`` for a value outside 0 - 2^31-1.
    """
    for name, v in (("sequence", sequence), ("security version", security_version)):
        if type(v) is not int or not 0 <= v <= ORIGIN_MAX:
            raise ToolError(f"{name} {v!r} is not an integer 0 - {ORIGIN_MAX}",
                            reason="BAD_ARGUMENT")
    return ("# ota_origin: written by otakit build; the release this firmware is (frozen).\n"
            f"SEQUENCE = {sequence}\nSECURITY_VERSION = {security_version}\n"
            f"DEVELOPMENT = {bool(development)}\n")


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def stage_sources(board: Board, keyring: Path, stage: Path, *,
                  boards_dir: Path = BOARDS_DIR, firmware_dir: Path = FIRMWARE_DIR,
                  sequence: int = 0, security_version: int = 0,
                  development: bool = False) -> Path:
    """Copy what the board's manifest freezes into ``stage``, in the repository's layout, and
    write the firmware's ``ota_origin`` module (``sequence``, ``security_version``,
    ``development``) beside the keyring.

    Returns:
        The staged ``manifest.py``.

    Raises:
        KeyFileError: the keyring is missing or is not a keyring module with at least one key.
        BoardError: the board has no ``manifest.py``.
        ToolError: ``BAD_ARGUMENT`` for a sequence or security version out of range.
    """
    origin = origin_module(sequence, security_version, development=development)
    if not keyring.is_file():
        raise KeyFileError(f"no keyring at {keyring}: write one with `otakit key export "
                           "--micropython KEY.pub.pem --out ota_keys.py` (firmware is never "
                           "built without its trusted keys)", reason="NO_KEYRING")
    if not keys.load_keyring_module(keyring):
        raise KeyFileError(f"keyring {keyring} lists no keys", reason="NO_KEYRING")
    src_board = boards_dir / board.name
    if not (src_board / "manifest.py").is_file():
        raise BoardError(f"board {board.name} has no manifest.py", reason="NO_MANIFEST")
    if stage.exists():
        shutil.rmtree(stage)
    for name in ("manifest.py", "partitions.csv", "board.json"):
        copy_file(src_board / name, stage / "boards" / board.name / name)
    copy_file(firmware_dir / "manifest.py", stage / "firmware" / "manifest.py")
    for src in sorted((firmware_dir / "ota").glob("*.py")):
        copy_file(src, stage / "firmware" / "ota" / src.name)
    for name in ("doorlock.py", "lockui.py", "boot.py", "main.py"):
        copy_file(firmware_dir / name, stage / "firmware" / name)
    copy_file(keyring, stage / "keyring" / "ota_keys.py")
    (stage / "keyring" / "ota_origin.py").write_text(origin)
    return stage / "boards" / board.name / "manifest.py"


def manifest_calls(board: Board, boards_dir: Path = BOARDS_DIR, *, follow: bool = True
                   ) -> list[tuple[str, tuple[object, ...], dict[str, object]]]:
    """The calls the board's frozen-module ``manifest.py`` makes, in order, as
    ``(function, args, kwargs)``: the functions of MicroPython's tools/manifestfile.py, recorded
    instead of run.

    With ``follow`` (the default), an ``include()`` of a manifest in this tree (not one under
    ``$(PORT_DIR)``, the port's own) is replaced by the freezing calls it makes (``package``,
    ``module``, ``require``, ``freeze``), their ``base_path`` made relative to the board
    manifest's directory, as MicroPython resolves them; its ``metadata()`` is dropped.

    Raises:
        BoardError: the board has no ``manifest.py`` (or an included manifest is missing).
    """
    path = boards_dir / board.name / "manifest.py"
    if not path.is_file():
        raise BoardError(f"board {board.name} has no manifest.py", reason="NO_MANIFEST")
    return _record(path, path.parent, follow)


def _record(path: Path, top: Path, follow: bool
            ) -> list[tuple[str, tuple[object, ...], dict[str, object]]]:
    calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []

    def record(kind: str) -> Callable[..., None]:
        return lambda *args, **kwargs: calls.append((kind, args, kwargs))

    def include(what: object, **kwargs: object) -> None:
        inc = str(what)
        if not follow or inc.startswith("$("):
            calls.append(("include", (what,), kwargs))
            return
        sub = path.parent / inc
        if sub.is_dir():
            sub = sub / "manifest.py"
        if not sub.is_file():
            raise BoardError(f"{path} includes {inc}, which does not exist", reason="NO_MANIFEST")
        for kind, args, kw in _record(sub, top, follow):
            if kind in ("package", "module", "require", "freeze"):
                base = sub.parent / str(kw.get("base_path", "."))
                calls.append((kind, args, {**kw, "base_path": os.path.relpath(base, top)}))
            elif kind == "include":
                calls.append((kind, args, kw))

    names = ("package", "module", "require", "freeze", "metadata", "add_library")
    env: dict[str, object] = {n: record(n) for n in names}
    env["include"] = include
    exec(compile(path.read_text(), str(path), "exec"), env)  # noqa: S102 - our own file
    return calls


def frozen_entries(board: Board, boards_dir: Path = BOARDS_DIR) -> list[tuple[str, str]]:
    """What the board's manifest freezes besides the port's stock manifest: ``(kind, name)``
    per ``package()``/``module()`` call, e.g. ``("package", "ota")``."""
    return [(kind, str(args[0])) for kind, args, _ in manifest_calls(board, boards_dir)
            if kind in ("package", "module")]
