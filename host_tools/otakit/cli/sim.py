"""otakit CLI: sim commands (being built)."""

from __future__ import annotations

COMMANDS: list = []
