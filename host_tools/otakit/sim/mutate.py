"""Mutation testing (`make mutate`): does the test suite catch a broken agent or simulator?

Each mutant in `CATALOGUE` is a deliberate bug: text patches matched on exact source lines (each
``old`` must occur exactly once in its file, else the mutant is reported as NOT APPLIED and the
run exits 1: the catalogue has drifted from the code). Mutants are applied one at a time to a
COPY of the tree (the working tree is never modified), and the copy is tested in stages, each
stopping at its first failure:

1. the quick tests of `make test` (`QUICK_TESTS`: the simulator's fault tests, the manifest,
   trust-state and security tests; 2 pytest workers);
2. the reduced power-cut campaign (`otakit sim campaign`, the scenarios of `CAMPAIGN`, the
   mutant's own ``first`` scenario first);
3. the slower device and sim tests of `make test` (`SLOW_TESTS`: the agent's whole updates,
   the simulator's power-cut and partition tests);
4. for a mutant with its own scenario (``first``), that scenario's part of `make campaign`
   (every cut point; for ``chain`` also every distinct state the first update's cuts leave
   against every op of the second's install and trial);
5. with ``--full``, the full campaign (every cut point of every scenario) for survivors.

A mutant is caught by the first stage that fails (the report names the test or the campaign
run and its problem); it survives when every stage passes. Mutants marked ``equivalent`` are
listed with the reason they cannot be told apart from the correct code, and not run. The
unmutated copy runs first (the baseline): it must pass, or nothing is judged. The tree is
copied once at the start (a snapshot); every mutant starts from that snapshot.

    python -m otakit.sim.mutate [--only NAME ...] [--full] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from otakit.paths import ROOT

QUICK_TESTS = [
    "tests/sim/test_sim_faults.py", "tests/device/test_manifest.py",
    "tests/device/test_trust_state.py", "tests/device/test_trust_freshness.py",
    "tests/device/test_security.py",  # expiry with the clock set, the keyring's checks
    "-k", "not slow_drip",  # a deadline test: long, and its timing is no verdict on a mutant
]
SLOW_TESTS = [
    "tests/device/test_agent.py", "tests/sim/test_sim_power_cut.py",
    "tests/sim/test_sim_partition_api.py",
]
# the reduced campaign's scenarios, the most discriminating first (it stops at a failure)
CAMPAIGN = ["chain", "second", "rollback", "unhealthy", "small", "app"]
_COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", ".pytest_cache",
                                      "*.egg-info", ".mypy_cache", ".ruff_cache")


@dataclass(frozen=True)
class Mutant:
    """A deliberate bug: ``patches`` are (file, old text, new text); ``equivalent``: why it
    cannot change behaviour (then it is not run)."""

    name: str
    what: str
    patches: tuple[tuple[str, str, str], ...]
    equivalent: str = ""
    first: str = ""  # the campaign scenario to run first (the one meant to catch it)


def _m(name: str, what: str, *patches: tuple[str, str, str], equivalent: str = "",
       first: str = "") -> Mutant:
    return Mutant(name, what, tuple(patches), equivalent, first)


_AGENT, _VET, _TRIAL = "firmware/ota/agent.py", "firmware/ota/vet.py", "firmware/ota/trial.py"
_SLOT, _DL = "firmware/ota/slot.py", "firmware/ota/download.py"
_WR = "firmware/ota/writer.py"
_OPS, _MAN, _FLASH = "firmware/ota/stateops.py", "firmware/ota/manifest.py", \
    "boards/unix/_simflash.py"
_CHECK = "firmware/ota/check.py"
_VERIFY = "                    await f(slot, m.size, m.sha256, self.cfg.chip_id, self.buf)  # yields\n"

CATALOGUE: list[Mutant] = [
    _m("set-boot-before-readback", "set_boot() before the slot is read back",
       (_AGENT, _VERIFY, "                    slot.part.set_boot()\n" + _VERIFY), first="small"),
    _m("readback-removed", "the slot is never read back before set_boot(): each block is "
       "hashed as received, not as the flash holds it, and the final check is skipped",
       (_WR, "        self.slot.part.readblocks(self.block, buf)  # what is hashed is what the "
        "flash holds\n", ""),
       (_AGENT, _VERIFY, "                    pass\n")),
    _m("t-seq-first", "arm_trial writes the trial marker t_seq first instead of last",
       (_OPS, '    st.erase("t_seq")\n    st.nvs.set_i32("t_armed", 0)\n',
        '    st.erase("t_seq")\n    st.nvs.set_i32("t_seq", seq)\n'
        '    st.nvs.set_i32("t_armed", 0)\n'),
       (_OPS, '    st.nvs.set_i32("t_seq", seq)\n    from .finish import switch\n',
        "    from .finish import switch\n"), first="chain"),
    _m("progress-before-block", "the resume point is saved before its block is in flash",
       (_WR, "        self.slot.write_block(self.block, buf)\n",
        "        self.progress(self.done + n, self.size)\n"
        "        self.slot.write_block(self.block, buf)\n"),
       (_WR, "        self.o = 0\n        self.progress(self.done, self.size)\n",
        "        self.o = 0\n"), first="small"),
    _m("signature-ignored", "the manifest signature's result is ignored",
       (_CHECK, "        if not ok:\n            raise ManifestError(\"BAD_SIGNATURE\", \"\")\n",
        "        if not (ok or True):\n            raise ManifestError(\"BAD_SIGNATURE\", \"\")\n")),
    _m("floor-at-install", "the anti-rollback floor is raised at install, not at confirm",
       (_OPS, '    st.nvs.set_i32("t_sv", sv)\n',
        '    st.nvs.set_i32("t_sv", sv)\n    st.nvs.set_i32("floor", sv)\n'),
       first="rollback"),
    _m("valid-before-checks", "mark_app_valid before the health checks ran",
       (_TRIAL, "        failure = _run_checks(checks, timeout_ms)\n",
        "        part.mark_app_valid_cancel_rollback()\n"
        "        failure = _run_checks(checks, timeout_ms)\n"), first="unhealthy"),
    _m("wrong-slot-second", "the target is always ota_1 (the running slot on a second update)",
       (_SLOT, "            self.part = esp32.Partition(esp32.Partition.RUNNING).get_next_update()\n",
        "            self.part = esp32.Partition.find(esp32.Partition.TYPE_APP, "
        "label=\"ota_1\")[0]\n"), first="second"),
    _m("resume-off-by-a-block", "a download resumes one block past its saved point",
       (_DL, "    start = st.progress(tag, slot, size, buf)\n",
        "    start = st.progress(tag, slot, size, buf)\n"
        "    start = start + 4096 if start else 0\n"),
       first="small"),
    _m("resume-a-block-early", "a download resumes one block before its saved point",
       (_DL, "    start = st.progress(tag, slot, size, buf)\n",
        "    start = st.progress(tag, slot, size, buf)\n"
        "    start = start - 4096 if start >= 4096 else start\n"),
       equivalent="the block before the resume point is in the slot and is fetched and "
                  "written again, byte for byte the same: one block (4 KB) more on the link, "
                  "within the refetch bound; nothing a user can tell"),
    _m("expiry-ignored", "an expired manifest is accepted",
       (_VET, "    if m.expires is not None and now is not None and now > m.expires:\n",
        "    if False:\n")),
    _m("board-check-dropped", "a manifest for another board is accepted",
       (_MAN, "    if m.board != board or m.chip_id != chip_id:\n", "    if False:\n")),
    _m("erase-skipped", "blocks are programmed without erasing first (3-arg writeblocks)",
       (_SLOT, "            self.part.writeblocks(block_num, buf)\n",
        "            self.part.writeblocks(block_num, buf, 0)\n"), first="second"),
    _m("channel-check-dropped", "a manifest of another channel is accepted",
       (_VET, "    if m.channel != cfg.channel:\n", "    if False:\n")),
    _m("revision-not-persisted", "the accepted manifest revision is never stored",
       (_OPS, '        st.nvs.set_blob("rev", struct.pack("<i", rev) + channel.encode())\n',
        "        pass\n")),
    _m("known-bad-dropped", "a release that failed its trial is offered again",
       (_VET, "    if m.sequence in st.bad_sequences():\n", "    if False:\n")),
    _m("floor-not-raised", "confirm does not raise the floor",
       (_OPS, '        st.nvs.set_i32("floor", sv)\n', "        pass\n")),
    _m("power-loss-is-failure", "a trial cut by a power loss is taken as the image's failure",
       (_TRIAL, "    return cause in (machine.PWRON_RESET, machine.HARD_RESET,\n",
        "    return cause in (-99,\n")),
    _m("sim-torn-write-keeps-old", "simulator: a torn write stores nothing (weaker fault model)",
       (_FLASH, "        n //= 2\n", "        n = 0\n")),
    _m("sim-erase-noop", "simulator: a sector erase leaves the old bytes",
       (_FLASH, "        _f.seek(a)\n        _f.write(_ff)\n", "        _f.seek(a)\n")),
]


@dataclass
class Verdict:
    """What one mutant did."""

    name: str
    status: str  # caught, survived, equivalent, not-applied, baseline-failed
    stage: str = ""
    by: str = ""
    seconds: float = 0.0
    detail: list[str] = field(default_factory=list)


def _copy(dest: Path, src: Path = ROOT) -> None:
    shutil.copytree(src, dest, ignore=_COPY_IGNORE, symlinks=True)


def apply(mutant: Mutant, tree: Path) -> list[str]:
    """Apply the mutant's patches to ``tree``; the problems (a pattern not found exactly once)."""
    problems = []
    for rel, old, new in mutant.patches:
        path = tree / rel
        text = path.read_text()
        n = text.count(old)
        if n != 1:
            problems.append(f"{rel}: the pattern {old.strip()!r} occurs {n} times")
            continue
        path.write_text(text.replace(old, new))
    return problems


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree / "host_tools")
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def _pytest(tree: Path, tests: list[str], timeout: float, recheck: Path | None = None
            ) -> tuple[bool, str]:
    # recheck: the unmutated snapshot; a test that fails there too is flaky, not a catch (the
    # run goes on without it).
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-n", "2", "-p", "no:cacheprovider",
           *tests]
    try:
        p = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timeout (the fast tests hung)"
    if p.returncode == 0:
        return True, ""
    failed = re.findall(r"^FAILED (\S+)", p.stdout, re.M) or \
        re.findall(r"^ERROR (\S+)", p.stdout, re.M)
    if failed and recheck is not None:
        again = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                failed[0]], cwd=recheck, env=_env(recheck),
                               capture_output=True, text=True, timeout=timeout)
        if again.returncode != 0:  # fails unmutated too: rerun the stage without it
            print(f"  (flaky on the unmutated tree, ignored: {failed[0]})", flush=True)
            return _pytest(tree, [*tests, "--deselect", failed[0]], timeout, recheck)
    return False, failed[0] if failed else p.stdout[-300:]


def _campaign(tree: Path, full: bool, timeout: float, first: str = "", only: bool = False
              ) -> tuple[bool, str]:
    out = tree / "build" / "campaign.json"
    out.parent.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "otakit", "sim", "campaign", "--first-failure",
           "--workers", "2", "--doubles", "2", "--brownouts", "2", "--json", str(out)]
    order = [first] * bool(first) + [n for n in CAMPAIGN if n != first]
    if only:  # the full campaign of the mutant's own scenario (a part of `make campaign`)
        order = [first]
    cmd += ["--full"] * full + ([] if full and not only else
                                [a for n in order for a in ("--scenario", n)])
    try:
        p = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timeout (the campaign hung)"
    if p.returncode == 0:
        return True, ""
    try:
        f = json.loads(out.read_text())["failures"][0]
        return False, f"{f['command']}: {f['problems'][0]}"
    except (OSError, ValueError, KeyError, IndexError):
        m = re.search(r"the golden run of \w+ fails the oracle: .*", p.stderr + p.stdout)
        return False, m[0][:300] if m else (p.stderr or p.stdout)[-300:]


def judge(mutant: Mutant | None, work: Path, full: bool) -> Verdict:
    """Copy the snapshot (work/pristine), apply ``mutant`` (None: the baseline), run the
    stages."""
    name = mutant.name if mutant else "baseline"
    t0 = time.monotonic()
    tree = work / name
    shutil.rmtree(tree, ignore_errors=True)
    _copy(tree, work / "pristine")
    try:
        if mutant is not None:
            problems = apply(mutant, tree)
            if problems:
                return Verdict(name, "not-applied", detail=problems)
        first = mutant.first if mutant else ""
        pristine = work / "pristine"
        stages = [("quick tests", lambda: _pytest(tree, QUICK_TESTS, 1800, pristine)),
                  ("reduced campaign", lambda: _campaign(tree, False, 3600, first)),
                  ("slow tests", lambda: _pytest(tree, SLOW_TESTS, 3600, pristine))]
        if first:
            stages.append((f"full campaign of {first}",
                           lambda: _campaign(tree, True, 7200, first, only=True)))
        if full:
            stages.append(("full campaign", lambda: _campaign(tree, True, 7200)))
        for stage, run in stages:
            ok, by = run()
            if not ok:
                return Verdict(name, "caught", stage, by, time.monotonic() - t0)
        return Verdict(name, "survived", seconds=time.monotonic() - t0)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the catalogue; print one line per mutant and the score. Exit 1 if a non-equivalent
    mutant survived or did not apply, 2 if the baseline fails."""
    ap = argparse.ArgumentParser(prog="python -m otakit.sim.mutate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None, help="run only these mutants")
    ap.add_argument("--full", action="store_true", help="full campaign for survivors")
    ap.add_argument("--json", help="write the verdicts here")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    chosen = [m for m in CATALOGUE if args.only is None or m.name in args.only]
    work = Path(tempfile.mkdtemp(prefix="otakit-mutate-"))
    verdicts: list[Verdict] = []
    try:
        _copy(work / "pristine")  # the tree as it is now: later edits do not leak into a run
        if not args.no_baseline:
            base = judge(None, work, args.full)
            print(f"baseline: {base.status} {base.stage} {base.by} ({base.seconds:.0f} s)",
                  flush=True)
            if base.status != "survived":
                print("the unmutated tree fails: nothing to judge", file=sys.stderr)
                return 2
        for m in chosen:
            if m.equivalent:
                v = Verdict(m.name, "equivalent", detail=[m.equivalent])
            else:
                v = judge(m, work, args.full)
            verdicts.append(v)
            line = f"{v.name}: {v.status.upper()}"
            if v.status == "caught":
                line += f" by the {v.stage}: {v.by}"
            if v.detail:
                line += " — " + "; ".join(v.detail)
            print(line + (f" ({v.seconds:.0f} s)" if v.seconds else ""), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    judged = [v for v in verdicts if v.status in ("caught", "survived")]
    caught = sum(v.status == "caught" for v in judged)
    secs = time.monotonic() - t0
    print(f"score: {caught}/{len(judged)} non-equivalent mutants caught; "
          f"{sum(v.status == 'equivalent' for v in verdicts)} equivalent; "
          f"{sum(v.status == 'not-applied' for v in verdicts)} not applied; {secs:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"seconds": round(secs), "caught": caught, "judged": len(judged),
             "mutants": [v.__dict__ for v in verdicts]}, indent=2) + "\n")
    bad = [v for v in verdicts if v.status in ("survived", "not-applied")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
