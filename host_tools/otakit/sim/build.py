"""Compile the simulated board's modules (boards/unix/*.py) to .mpy once per source change.

Device processes import the board from this cache: loading .mpy does not compile source on the
device heap, so the simulator's own footprint stays small and constant (docs/simulator.md).
Viper functions need the native architecture, hence ``-march=x64``. If mpy-cross is missing or
fails, the source directory is used instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from otakit.errors import ToolError
from otakit.mpy import mpy_cross_binary
from otakit.paths import ROOT, SIM_BOARD_DIR

CACHE_DIR = ROOT / "build" / "sim-mpy"


def _digest(sources: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sources:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def sim_module_dir() -> str:
    """The directory to put first on the device's module path (compiled cache or source)."""
    sources = sorted(SIM_BOARD_DIR.glob("*.py"))
    target = CACHE_DIR / _digest(sources)
    if target.is_dir():
        return str(target)
    try:
        exe = mpy_cross_binary()
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=CACHE_DIR, prefix=".build-"))
        for src in sources:
            subprocess.run([exe, "-march=x64", "-o", str(tmp / (src.stem + ".mpy")), str(src)],
                           check=True, capture_output=True, timeout=60)
        try:
            os.replace(tmp, target)
        except OSError:
            pass  # another process won the race; its copy is identical
    except (ToolError, OSError, subprocess.SubprocessError):
        return str(SIM_BOARD_DIR)
    return str(target) if target.is_dir() else str(SIM_BOARD_DIR)
