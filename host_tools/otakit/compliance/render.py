"""The report's renderings: one document model (sections of paragraphs and tables), written as
markdown, as a standalone HTML page, and as PDF through a real renderer (headless Chromium's
``--print-to-pdf``, the browser scripts/install-system-deps.sh installs)."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from otakit.errors import OtakitError

TITLE = "otakit: EN 303 645 §5.3 evidence report"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: Table | None = None
    markdown: str = ""  # a block kept as markdown (the IXIT drafts)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def markdown(sections: list[Section]) -> str:
    out = [f"# {TITLE}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for p in s.paragraphs:
            out += [p, ""]
        if s.table:
            out.append("| " + " | ".join(s.table.headers) + " |")
            out.append("|" + "---|" * len(s.table.headers))
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in s.table.rows]
            out.append("")
        if s.markdown:
            out += [s.markdown.rstrip(), ""]
    return "\n".join(out)


_CSS = """
body{font-family:sans-serif;font-size:10pt;margin:1.5em}
table{border-collapse:collapse;width:100%;margin-bottom:1em}
th,td{vertical-align:top;border:1px solid #999;padding:3px 5px;text-align:left}
th{background:#eee} td.id{white-space:nowrap} code{font-size:9pt;word-break:break-all}
.PASS{color:#060;font-weight:bold} .FAIL{color:#b00;font-weight:bold}
.INCONCLUSIVE{color:#a60;font-weight:bold} .UNVERIFIED{color:#b00;font-weight:bold}
.NA{color:#555} h2{page-break-after:avoid} tr{page-break-inside:avoid}
@page{size:A4 landscape;margin:12mm}
"""


def _inline(text: str) -> str:
    """Escape, then show `code` spans and **bold** as the markdown does."""
    out, parts = [], html.escape(text).split("`")
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
        else:
            bits = part.split("**")
            out.append("".join(f"<b>{b}</b>" if j % 2 else b for j, b in enumerate(bits)))
    return "".join(out).replace("\n", "<br>")


def _cell(text: str) -> str:
    cls = {"PASS": "PASS", "FAIL": "FAIL", "INCONCLUSIVE": "INCONCLUSIVE",
           "UNVERIFIED": "UNVERIFIED", "N/A": "NA"}.get(text.strip("*"))
    if cls:
        return f'<td class="{cls}">{html.escape(text.strip("*"))}</td>'
    if len(text) < 24 and text.startswith("**") and text.endswith("**"):
        return f'<td class="id">{_inline(text)}</td>'  # an id: kept on one line
    return f"<td>{_inline(text)}</td>"


def _md_block(text: str) -> str:
    """The IXIT drafts' markdown subset: headings, bullets, paragraphs."""
    out, items = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("- "):
            items.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 4)
            out.append(f"<h{level}>{_inline(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    return "\n".join(out)


def html_page(sections: list[Section]) -> str:
    body = []
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [f"<p>{_inline(p)}</p>" for p in s.paragraphs]
        if s.table:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in s.table.headers)
            rows = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in s.table.rows)
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        if s.markdown:
            body.append(_md_block(s.markdown))
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(TITLE)}</title><style>{_CSS}</style></head><body>\n"
            f"<h1>{html.escape(TITLE)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")


def find_browser() -> str | None:
    """A headless-capable Chromium: ``$OTAKIT_CHROMIUM``, else the first on PATH."""
    env = os.environ.get("OTAKIT_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def pdf(html_file: Path, out: Path) -> None:
    """Print ``html_file`` to ``out`` with headless Chromium."""
    browser = find_browser()
    if browser is None:
        raise OtakitError("no Chromium to print the PDF with (install chromium, e.g. "
                          "scripts/install-system-deps.sh, or set OTAKIT_CHROMIUM)",
                          reason="NO_RENDERER")
    with tempfile.TemporaryDirectory(prefix="otakit-pdf-") as profile:
        cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
               f"--user-data-dir={profile}", "--no-pdf-header-footer",
               f"--print-to-pdf={out}", html_file.resolve().as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  timeout=180)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise OtakitError(f"{browser} did not print the PDF: {e}",
                              reason="NO_RENDERER") from e
    if not out.is_file() or not out.read_bytes()[:5] == b"%PDF-":
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OtakitError(f"{browser} wrote no PDF (exit {proc.returncode}): {last}",
                          reason="NO_RENDERER")
