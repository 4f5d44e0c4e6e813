"""docs/quickstart.md, run as written: its ``console`` blocks (the simulated board) are one shell
session in a fresh directory, through the real `otakit` command and the real MicroPython unix
port; the background server is stopped at the end.

Each ``$ command`` line runs in order (``set -e``: any failing command fails the test; after the
background server's line, the next waits for its ``serving ... on URL`` line in its log, as a
reader would see it there before going on); the lines
after it are the output the doc shows, and each of them must appear in the command's real output
once numbers and hex strings (key ids, sizes, times, device ids) are set aside (a ``...`` line
marks output the doc leaves out). The device ends up
running the released 1.1.0, confirmed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from otakit.paths import DOCS_DIR, ROOT

DOC = DOCS_DIR / "quickstart.md"
_BLOCK = re.compile(r"^```console\n(.*?)^```", re.M | re.S)
_VARIABLE = re.compile(r"[0-9a-f]{6,}|[0-9]+")
MARK = "@@quickstart-command@@"


def steps() -> list[tuple[str, list[str]]]:
    """(command, the output lines the doc shows) of every ``$`` line of the console blocks."""
    out: list[tuple[str, list[str]]] = []
    for block in _BLOCK.findall(DOC.read_text()):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out and line.strip():
                out[-1][1].append(line)
    return out


def _norm(line: str) -> str:
    return _VARIABLE.sub("#", line.strip())


def _otakit_on_path(bin_dir: Path) -> None:
    # `otakit` as the installed entry point would run it, from this checkout
    bin_dir.mkdir()
    exe = bin_dir / "otakit"
    exe.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m otakit \"$@\"\n")
    exe.chmod(0o755)


def test_the_doc_has_the_whole_simulated_path() -> None:
    commands = [c for c, _ in steps()]
    assert len(commands) <= 16, "the quick start is meant to be about ten commands"
    for needed in ("otakit init", "otakit keygen", "otakit key export", "otakit release",
                   "otakit serve", "otakit sim flash", "otakit sim run"):
        assert any(c.startswith(needed) for c in commands), needed


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    _otakit_on_path(tmp_path / "bin")
    work = tmp_path / "work"
    work.mkdir()
    todo = steps()
    script = ["set -e", "exec 2>&1", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for i, (command, _) in enumerate(todo):
        script += [f"echo {MARK}{i}", command]
        log = re.search(r">\s*(\S+).*&$", command)
        if log:  # the background server: on to the next command once it says it is serving,
            # as a reader sees it in its log (the board's one check per boot would find it down)
            script.append(f"for _ in $(seq 600); do grep -q '^serving ' {shlex.quote(log[1])}"
                          " 2>/dev/null && break; sleep 0.1; done")
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "HOME": str(tmp_path), "PYTHONPATH": str(ROOT / "host_tools")}
    env.pop("OTAKIT_PROJECT", None)
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    outputs = re.split(rf"^{MARK}\d+\n", proc.stdout, flags=re.M)[1:]
    assert proc.returncode == 0 and len(outputs) == len(todo), \
        f"rc {proc.returncode} after {len(outputs)} of {len(todo)} commands:\n" + proc.stdout + \
        proc.stderr
    for (command, shown), real in zip(todo, outputs, strict=True):
        got = {_norm(line) for line in real.splitlines()}
        missing = [line for line in shown if line.strip() != "..." and _norm(line) not in got]
        assert not missing, f"`{command}` printed:\n{real}\nnot the doc's lines {missing}"
    run = outputs[[c for c, _ in todo].index("otakit sim run flash.img")]
    assert "ota: sequence 1 confirmed in ota_1" in run and "app: boot confirmed ota_1" in run
    assert "--- finished: 2 boot(s)" in run
