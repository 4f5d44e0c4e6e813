"""Power-cut campaign: cut the power at every flash operation of an update and judge the result.

A scenario is one whole update cycle on the simulated board, served by a `Lab`: check, download,
install, `set_boot`, reboot, trial, confirm, floor and state writes (or, for ``rollback``, a
release whose image crashes, the bootloader's rollback and the agent noticing it; for ``second``,
the update after one the agent installed and confirmed, from ota_1 back into ota_0; for ``app``,
the example door-lock app's own update loop: its policy, settings and notices, the restart at a
safe moment, its health checks and its configuration file). Its golden run (no cut) counts the
mutating flash operations N; then each cut point k in 1..N is one run from the
same starting flash image with the power cut at operation k (torn), the board powered on again
and left to run until the device script ends, with the network up.

The oracle sits outside the agent: it reads only the simulated bootloader's record of each boot
(the SHA-256 of the booted image's bytes, hashed before the firmware ran) and the flash image:
  (a) every boot ran a signed release, byte for byte (the old or the new image);
  (b) no boot loop, never a boot without a bootable slot, and the slot the next reset boots
      holds a signed release;
  (c) the board ends on the new release with its otadata entry VALID (or, for ``rollback``,
      on the old one with the bad release refused); if it ends on the old one after the cut,
      the next check (one more power-on) must complete the update;
  (d) the anti-rollback floor, the installed sequence and the accepted manifest revision never
      decrease from one boot to the next, the old image never runs once the new sequence is
      recorded, the recorded sequence is the running release's at the end, and the accepted
      revision is the published manifest's;
  (e) the user's files on the vfs are intact: ota_config.json byte for byte (for ``app`` also
      the door lock's lock_config.json and the user's ota_settings.json), and the bare script's
      own lock.json (rewritten at every boot, temp file + rename) parses.

The scenarios and device scripts are in `otakit.sim.scenarios`, the oracle in `otakit.sim.oracle`;
this module sets a scenario up (`Bench`), plans the cut points and runs them.

Invariants: each run works on its own copy of the scenario's starting image; runs are independent,
so they are spread over worker threads (each run is a chain of device processes).
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from otakit.appimage import make_app_image
from otakit.keys import ED25519
from otakit.sim.inspect import read_state
from otakit.sim.lab import Lab, revision_of
from otakit.sim.oracle import Judge, last_status, vfs_files
from otakit.sim.runner import RunResult, run
from otakit.sim.scenarios import (
    APP_SCRIPT, APP_SETUP, APP_USER_FILES, DEVICE_SCRIPT, HEAP, SCENARIOS, Scenario,
)

@dataclass
class Outcome:
    """The verdict on one run."""

    scenario: str
    cuts: tuple[int, ...]
    problems: list[str]
    boots: int
    retried: bool = False
    recovery_ops: int = 0

    @property
    def survived(self) -> bool:
        """Whether the oracle found nothing wrong."""
        return not self.problems


@dataclass
class Report:
    """A campaign's figures (see `to_dict` for the JSON form)."""

    mode: str
    scenarios: dict[str, dict] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready: cut_points, survived, failures (each with its command), per scenario."""
        failures = [{"scenario": o.scenario, "cut_at": list(o.cuts), "problems": o.problems,
                     "command": repro_command(o.scenario, o.cuts)}
                    for o in self.outcomes if not o.survived]
        return {"mode": self.mode, "cut_points": len(self.outcomes),
                "survived": sum(o.survived for o in self.outcomes),
                "double_cuts": sum(len(o.cuts) > 1 for o in self.outcomes),
                "retried": sum(o.retried for o in self.outcomes),
                "seconds": round(self.seconds, 1), "scenarios": self.scenarios,
                "failures": failures}


def repro_command(scenario: str, cuts: tuple[int, ...]) -> str:
    """The command that reruns one cut point and prints its log."""
    return (f"otakit sim campaign --scenario {scenario} --cut "
            f"{','.join(str(c) for c in cuts)} --verbose")


class Bench:
    """One scenario set up on a `Lab`: the old image flashed and provisioned, the new published."""

    def __init__(self, work: Path, scenario: Scenario) -> None:
        self.scenario = scenario
        self.work = work
        self.lab = Lab(work / "lab", alg=ED25519)
        self.lab.__enter__()
        try:
            self._setup(scenario)
        except BaseException:
            self.close()
            raise

    def _setup(self, scenario: Scenario) -> None:
        work = self.work
        first = make_app_image("1.0.0", size=scenario.size, seed="old")
        self.script = work / "device.py"
        self.script.write_text(APP_SCRIPT if scenario.app else DEVICE_SCRIPT)
        self.lab.flash(first)
        if scenario.app:
            setup = work / "setup.py"
            setup.write_text(APP_SETUP)
            result = self.lab.boot(script=setup, max_boots=1, heapsize=HEAP)
            if "SETUP done" not in result.log:
                raise RuntimeError("the app scenario's setup failed:\n" + result.log)
        names = ["ota_config.json", *(APP_USER_FILES if scenario.app else [])]
        self.user_files = vfs_files(self.lab.flash_path, names)
        # old -> new: 1.0.0 (sequence 1, as flashed) -> 1.1.0 (2), or 1.1.0 -> 1.2.0 (3)
        self.old, self.old_seq, self.new_seq, self.new_sv = first, 0, 2, 1
        self.shas: dict[str, str] = {}
        if scenario.second:
            self.old, self.old_seq = make_app_image("1.1.0", size=scenario.size, seed="new"), 2
            self.new_seq, self.new_sv = 3, 2
            self.shas[hashlib.sha256(first).hexdigest()] = "older"
            self.lab.publish(self.old, "1.1.0", self.old_seq, security_version=1)
            result = run(self.lab.flash_path, script=self.script, app_dir=self.lab.device_dir,
                         max_boots=10, heapsize=HEAP, timeout=60)
            if "seq" not in read_state(self.lab.flash_path).nvs.get("otakit", {}):
                raise RuntimeError("the first update of scenario second failed:\n" + result.log)
        version = "1.%d.0" % (self.new_seq - 1)
        self.new = make_app_image(version, size=scenario.size,
                                  seed="newer" if scenario.second else "new",
                                  behaviour="crash" if scenario.crash else "")
        self.shas[hashlib.sha256(self.old).hexdigest()] = "old"
        self.shas[hashlib.sha256(self.new).hexdigest()] = "new"
        self.base = work / "base.img"
        shutil.copyfile(self.lab.flash_path, self.base)
        res = self.lab.publish(self.new, version, self.new_seq, security_version=self.new_sv)
        self.new_rev = revision_of(res.body)
        self.runs = work / "runs"
        self.runs.mkdir(exist_ok=True)

    def close(self) -> None:
        """Stop the server."""
        self.lab.__exit__(None, None, None)

    def run(self, cuts: tuple[int, ...], log: Callable[[str], None] | None = None) -> tuple[
            Outcome, RunResult]:
        """Run from the starting image with power cuts at ``cuts``; judge the result."""
        name = "-".join(str(c) for c in cuts) or "golden"
        flash = self.runs / f"{name}.img"
        shutil.copyfile(self.base, flash)
        judge = Judge(self, flash)
        try:
            result = self._boot(flash, cuts, judge)
            retried = False
            if not judge.problems and not self._settled(flash, result) and cuts:
                retried = True  # the next check (one more power-on) must complete it
                judge.note_power_on()
                result2 = self._boot(flash, (), judge)
                result.log += result2.log
                result.boots += result2.boots
                result.ended = result2.ended
            judge.final(result)
            if log:
                log(result.log)
            first = cuts[0] if cuts else 0
            return Outcome(self.scenario.name, cuts, judge.problems, len(result.boots),
                           retried, max(0, result.ops - first)), result
        finally:
            flash.unlink(missing_ok=True)

    def _boot(self, flash: Path, cuts: tuple[int, ...], judge: Judge) -> RunResult:
        return run(flash, script=self.script, app_dir=self.lab.device_dir, max_boots=10,
                   cut_at=cuts or None, heapsize=HEAP, timeout=60, on_boot=judge.boot)

    def _settled(self, flash: Path, result: RunResult) -> bool:
        status = last_status(result)
        if not result.boots or result.ended != "finished":
            return False
        if self.scenario.crash:
            return self.shas.get(result.last.image_sha256) == "old" and \
                self.new_seq in status.get("bad_sequences", [])
        return self.shas.get(result.last.image_sha256) == "new" and \
            status.get("state") == "up_to_date"


def golden(bench: Bench) -> tuple[int, int, Outcome]:
    """Run the scenario without a cut: (ops, op count when the download ended, verdict)."""
    outcome, result = bench.run(())
    m = re.search(r"^DOWNLOADED (\d+)$", result.log, re.M)
    if outcome.problems:
        raise RuntimeError(f"the golden run of {bench.scenario.name} fails the oracle: "
                           f"{outcome.problems}\n{result.log}")
    return result.ops, int(m[1]) if m else 0, outcome


def cut_plan(ops: int, downloaded: int, full: bool, every: int) -> list[int]:
    """Every op (full), else every ``every``-th op plus every op after the download."""
    if full:
        return list(range(1, ops + 1))
    return sorted(set(range(1, ops + 1, every)) | set(range(max(1, downloaded), ops + 1)))


def run_campaign(names: list[str], *, full: bool, every: int = 10, doubles: int = 0,
                 workers: int = 2, work: Path | None = None,
                 progress: Callable[[str], None] | None = None) -> Report:
    """Run the campaign over the named scenarios.

    Args:
        names: scenario names (see `SCENARIOS`).
        full: cut at every operation; otherwise every ``every``-th plus the install phase.
        every: the sampling step of a reduced campaign.
        doubles: per scenario, this many runs with a second cut during the recovery from a
            first one (both sampled with a fixed seed).
        workers: runs in parallel.
        work: the work directory (default: a temporary one, removed afterwards).
        progress: called with a line of progress now and then.

    Returns:
        A `Report`.
    """
    t0 = time.monotonic()
    report = Report("full" if full else f"every {every}th + install phase")
    tmp = Path(tempfile.mkdtemp(prefix="otakit-campaign-")) if work is None else Path(work)
    rng = random.Random(5)
    try:
        for name in names:
            t_scenario = time.monotonic()
            bench = Bench(tmp / name, SCENARIOS[name])
            try:
                ops, downloaded, _ = golden(bench)
                plan = cut_plan(ops, downloaded, full, every)
                if progress:
                    progress(f"{name}: golden run {ops} flash ops (download done at op "
                             f"{downloaded}); {len(plan)} cut points")
                single = _map(bench, [(k,) for k in plan], workers, progress)
                firsts = rng.sample(single, min(doubles, len(single)))
                pairs = [(o.cuts[0], o.cuts[0] + rng.randint(1, o.recovery_ops))
                         for o in firsts if o.recovery_ops > 0]
                double = _map(bench, pairs, workers, progress)
                report.outcomes += single + double
                report.scenarios[name] = {
                    "image_bytes": len(bench.new), "golden_ops": ops,
                    "download_done_at_op": downloaded, "cut_points": len(single) + len(double),
                    "double_cuts": len(double),
                    "survived": sum(o.survived for o in single + double),
                    "seconds": round(time.monotonic() - t_scenario, 1)}
            finally:
                bench.close()
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)
    report.seconds = time.monotonic() - t0
    return report


def _map(bench: Bench, cuts: list[tuple[int, ...]], workers: int,
         progress: Callable[[str], None] | None) -> list[Outcome]:
    out: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, o in enumerate(pool.map(lambda c: bench.run(c)[0], cuts), 1):
            out.append(o)
            if progress and not o.survived:
                progress(f"  FAILED {repro_command(o.scenario, o.cuts)}: {o.problems}")
            if progress and i % 100 == 0:
                progress(f"  {bench.scenario.name}: {i}/{len(cuts)}")
    return out
