"""Benchmarks: measured figures, as ratios against a baseline in the same run."""

from __future__ import annotations

import re
from pathlib import Path

from otakit.paths import DOCS_DIR


PERFORMANCE = DOCS_DIR / "performance.md"


def write_section(heading: str, text: str, doc: Path = PERFORMANCE) -> None:
    """Replace the ``## heading`` section of ``doc`` with ``text`` (which starts with it), or
    append it when the document has no such section yet. Every bench module writes its section
    of docs/performance.md through here."""
    current = doc.read_text() if doc.exists() else "# Performance\n"
    pattern = re.compile(rf"## {re.escape(heading)}\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(current):
        current = pattern.sub(lambda _: text.rstrip("\n") + "\n", current)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    doc.write_text(current if current.endswith("\n") else current + "\n")
