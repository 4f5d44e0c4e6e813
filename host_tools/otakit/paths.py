"""Where the project's trees live, found from this file (the package is installed editable)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware"
BOARDS_DIR = ROOT / "boards"
SIM_BOARD_DIR = BOARDS_DIR / "unix"
DOCS_DIR = ROOT / "docs"
