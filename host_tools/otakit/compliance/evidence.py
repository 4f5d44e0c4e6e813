"""The evidence record: what ran, where, on which commit, and whether a results file can be
traced to that run.

`facts` gathers the record's fixed part (date, git commit and dirty flag, otakit, Python and
MicroPython versions, simulator or hardware). `run_tests` runs pytest over the mapped tests with
`otakit.compliance.junitprops` loaded, which writes the run id and commit into the JUnit XML's
testsuite properties, then writes a sidecar ``<junit>.run.json`` with the same run id, the
commands and the file's SHA-256. `verify_results` accepts a results file only when the sidecar
exists, its hash matches the file, its run id matches the one inside the XML and the commit is
the checkout's: anything else (a hand-written XML, an edited one, one from another commit) is
UNVERIFIED and no verdict resting on it is PASS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET  # noqa: N817
from dataclasses import dataclass, field
from pathlib import Path

from otakit import __version__
from otakit.errors import OtakitError
from otakit.paths import ROOT

PLUGIN = "otakit.compliance.junitprops"
SIDECAR = ".run.json"


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state() -> tuple[str, bool | None]:
    """``(commit, dirty)`` of the checkout; ``("unknown (not a git checkout)", None)``."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return "unknown (not a git checkout)", None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def micropython_version() -> str:
    """The MicroPython unix port the device tests run on, as it reports itself."""
    from otakit.mpy import micropython_binary  # noqa: PLC0415

    try:
        exe = micropython_binary()
        proc = subprocess.run([exe, "-c", "import sys; print(sys.version.split('; ')[-1])"],
                              capture_output=True, text=True, check=False, timeout=30)
    except (OtakitError, OSError, subprocess.TimeoutExpired) as e:
        return f"not available ({e})"
    return proc.stdout.strip() or f"unknown (exit {proc.returncode})"


def facts() -> dict[str, object]:
    """The fixed part of the evidence record."""
    commit, dirty = git_state()
    hil = os.environ.get("OTAKIT_HIL_PORT")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit, "dirty": dirty, "otakit": __version__,
        "python": platform.python_version(), "micropython": micropython_version(),
        "platform": platform.platform(),
        "target": (f"hardware on {hil} (tests/hw) and the simulated ESP32" if hil else
                   "simulated ESP32: the MicroPython unix port with boards/unix (no hardware)"),
    }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def read_junit(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``({"tests/x.py::test_name[param]": "passed" | "failed" | "skipped"}, properties)``
    from JUnit XML; properties are the testsuite ``<property>`` values."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise OtakitError(f"{path} is not JUnit XML: {e}", reason="BAD_JUNIT") from e
    out: dict[str, str] = {}
    props = {p.get("name", ""): p.get("value", "") for p in root.iter("property")}
    for case in root.iter("testcase"):
        cls, name = case.get("classname", ""), case.get("name", "")
        node = cls.replace(".", "/") + ".py::" + name
        if case.find("failure") is not None or case.find("error") is not None:
            out[node] = "failed"
        elif case.find("skipped") is not None:
            out[node] = "skipped"
        else:
            out[node] = "passed"
    return out, props


@dataclass
class Results:
    """The results of one test run and how far they can be trusted."""

    cases: dict[str, str]
    path: Path
    sha256: str
    verified: bool
    why: str
    run: dict[str, object] = field(default_factory=dict)


def verify_results(path: Path) -> Results:
    """Read ``path`` and decide whether it is traceable to a run of this checkout."""
    cases, props = read_junit(path)
    digest = sha256_file(path)
    side = Path(str(path) + SIDECAR)
    commit, _ = git_state()

    def unverified(why: str, run: dict[str, object] | None = None) -> Results:
        return Results(cases, path, digest, False, why, run or {})

    if not side.is_file():
        return unverified(f"no run record {side.name} beside it: not produced by "
                          "`otakit compliance report`")
    try:
        run = json.loads(side.read_text())
        assert isinstance(run, dict)
    except (ValueError, AssertionError, OSError):
        return unverified(f"{side.name} is not a run record")
    if run.get("junit_sha256") != digest:
        return unverified("its SHA-256 differs from the one its run recorded (edited after "
                          "the run)", run)
    if not props.get("otakit_run_id") or props.get("otakit_run_id") != run.get("run_id"):
        return unverified("the run id inside the XML is not the run record's", run)
    if props.get("otakit_commit") != run.get("commit"):
        return unverified("the commit inside the XML is not the run record's", run)
    if run.get("commit") != commit:
        return unverified(f"the run was of commit {run.get('commit')}, the checkout is at "
                          f"{commit}", run)
    return Results(cases, path, digest, True, "run id, commit and SHA-256 match its run record",
                   run)


def run_tests(tests: list[str], junit: Path, record: dict[str, object],
              jobs: str | None = None) -> Results:
    """Run ``tests`` with pytest (cwd: the checkout), writing ``junit`` and its run record."""
    run_id = uuid.uuid4().hex
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", PLUGIN,
           f"--junitxml={junit}"]
    if jobs:
        cmd += ["-n", jobs]
    cmd += tests
    env = {k: v for k, v in os.environ.items()  # a run of its own, also when called from a test
           if not k.startswith(("PYTEST_XDIST_", "PYTEST_CURRENT_TEST"))}
    env.update(OTAKIT_RUN_ID=run_id, OTAKIT_RUN_COMMIT=str(record["commit"]))
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if not junit.is_file():
        last = ([ln.strip() for ln in proc.stdout.splitlines() if ln.strip()] or ["-"])[-1]
        raise OtakitError(f"pytest wrote no results (exit {proc.returncode}): {last}",
                          reason="BAD_JUNIT")
    run = {"run_id": run_id, "commit": record["commit"], "dirty": record["dirty"],
           "started": started,
           "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           # the command as a reader reruns it: from the checkout, the results file by its name
           # (the absolute paths are in cwd and the sidecar's own place)
           "cwd": str(ROOT), "command": _shell(["python", *cmd[1:]]).replace(
               f"--junitxml={junit}", f"--junitxml={junit.name}"),
           "pytest_exit": proc.returncode, "junit_sha256": sha256_file(junit)}
    Path(str(junit) + SIDECAR).write_text(json.dumps(run, indent=1) + "\n")
    return verify_results(junit)


def _shell(argv: list[str]) -> str:
    import shlex  # noqa: PLC0415

    return " ".join(shlex.quote(a) for a in argv)


def count(cases: dict[str, str], test: str) -> dict[str, int]:
    """Passed / failed / skipped cases of one test id (its parametrised cases counted)."""
    out = {"passed": 0, "failed": 0, "skipped": 0}
    for k, v in cases.items():
        if k == test or k.startswith(test + "["):
            out[v] += 1
    return out
