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
(the SHA-256 of the booted image's bytes, hashed before the firmware ran), the flash image and
the requests the scenario's server saw:
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
      the door lock's lock_config.json and the user's ota_settings.json; for ``settings`` the
      latter is the old or the new file), and the bare script's own lock.json (rewritten at
      every boot, temp file + rename) parses;
  (f) the last confirmed image stays intact in its slot until the new one is confirmed;
  (g) no boot runs an unconfirmed image (otadata NEW or PENDING_VERIFY) while ota.boot()
      reports a normal boot: every boot of a new image is a trial the agent knows about;
  (h) the payload: the uncut run fetches it once, whole; a download never resumes past the
      bytes intact in the slot, never fetches more than `REFETCH_BOUND` bytes again per
      interruption, and no boot requests it twice (``bundle``, an offline install from a file
      on the board's filesystem: no run requests it at all).
The floor check of (d) holds in every scenario (for the refused releases: the floor is
unchanged at the end); the golden run of each scenario is judged like every cut run.

The cut points are planned in `otakit.sim.cutplan` (every op, or a few of every kind in every
phase of the download and every op from its end on); double cuts (a second cut during the
recovery from a first) and brown-out runs (the cut also tears the op before it) are sampled
from the plan.

The scenarios and device scripts are in `otakit.sim.scenarios`, the oracle in `otakit.sim.oracle`,
a scenario set up on a lab and one run of it judged (`Bench`) in `otakit.sim.lane`; this module
runs the golden runs and the planned cuts over the lanes and reports.

Invariants: each run works on its own copy of the scenario's starting image; runs are independent,
so they are spread over worker threads (each run is a chain of device processes), each thread
with its own lane (a `Bench`: lab, server, starting image), so that the requests a server saw
belong to one run.
"""

from __future__ import annotations

import random
from collections import Counter
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from otakit.sim.lane import Bench, Outcome
from otakit.sim.cutplan import Golden, cut_plan, kind_plan, op_kinds, op_phases, plan_ops
from otakit.sim.inspect import read_state
from otakit.sim.oracle import REFETCH_BOUND
from otakit.sim.scenarios import SCENARIOS, Scenario

__all__ = ["REFETCH_BOUND", "SCENARIOS", "Bench", "Report", "chain_states", "cut_plan", "golden",
           "kind_plan", "run_campaign"]


@dataclass
class Report:
    """A campaign's figures (see `to_dict` for the JSON form)."""

    mode: str
    scenarios: dict[str, dict] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready: cut_points, survived, failures (each with its command), per scenario."""
        failures = [{"scenario": o.scenario, "cut_at": list(o.cuts), "brownout": o.brownout,
                     "problems": o.problems,
                     "command": repro_command(o.scenario, o.cuts, o.brownout)}
                    for o in self.outcomes if not o.survived]
        return {"mode": self.mode, "cut_points": len(self.outcomes),
                "survived": sum(o.survived for o in self.outcomes),
                "double_cuts": sum(len(o.cuts) > 1 for o in self.outcomes),
                "brownouts": sum(o.brownout for o in self.outcomes),
                "retried": sum(o.retried for o in self.outcomes),
                "refetch_bound": REFETCH_BOUND,
                "seconds": round(self.seconds, 1), "scenarios": self.scenarios,
                "failures": failures}


def repro_command(scenario: str, cuts: tuple[int, ...], brownout: bool = False) -> str:
    """The command that reruns one cut point and prints its log."""
    return (f"otakit sim campaign --scenario {scenario} --cut "
            f"{','.join(str(c) for c in cuts)}{' --brownout' if brownout else ''} --verbose")


def golden(bench: Bench) -> tuple[int, int, Outcome]:
    """Run the scenario without a cut: (ops, op count when the download ended, verdict) of its
    (first) update; the oracle judges it like any run. `Bench.goldens` gets each update's
    `Golden`."""
    trace = bench.work / "trace"
    for i in (0, 1):
        Path(f"{trace}.{i}").unlink(missing_ok=True)
    logs: list[str] = []
    outcome, _ = bench.run((0, 0) if bench.scenario.chain else (), logs.append, trace=trace)
    if outcome.problems:
        raise RuntimeError(f"the golden run of {bench.scenario.name} fails the oracle: "
                           f"{outcome.problems}\n" + "".join(logs))
    base_state = read_state(bench.base)
    bench.goldens = []
    for i, log in enumerate(logs):
        m = re.search(r"^DOWNLOADED (\d+)$", log, re.M)
        dl = int(m[1]) if m else 0
        path = Path(f"{trace}.{i}")
        kinds = op_kinds(path.read_bytes() if path.exists() else b"", base_state)
        result = bench.results[i]
        if len(kinds) != result.ops:
            raise RuntimeError(f"the op trace of {bench.scenario.name} has {len(kinds)} ops, the "
                               f"run {result.ops}")
        bench.goldens.append(Golden(result.ops, dl, kinds, op_phases(result, dl, kinds)))
    g = bench.goldens[0]
    return g.ops, g.downloaded, outcome


def run_campaign(names: list[str], *, full: bool, per_kind: int = 3, doubles: int = 0,
                 brownouts: int = 0, workers: int = 2, work: Path | None = None,
                 progress: Callable[[str], None] | None = None,
                 first_failure: bool = False) -> Report:
    """Run the campaign over the named scenarios.

    Args:
        names: scenario names (see `SCENARIOS`).
        full: cut at every operation; otherwise `kind_plan` (``per_kind`` ops of every kind in
            every phase of the download, every op from its end on).
        per_kind: the sample of each kind and phase of a reduced campaign.
        doubles: per scenario, this many runs with a second cut during the recovery from a
            first one (both sampled with a fixed seed); not for ``chain``, whose runs cut both
            of its updates.
        brownouts: per scenario, this many cut points (sampled) run again as brown-outs.
        workers: runs in parallel (one lane, a `Bench` with its own server, each).
        work: the work directory (default: a temporary one, removed afterwards).
        progress: called with a line of progress now and then.
        first_failure: stop at the first run the oracle fails (`make mutate`).

    Returns:
        A `Report`.
    """
    t0 = time.monotonic()
    report = Report("full" if full else f"{per_kind} per kind and phase + install phase")
    tmp = Path(tempfile.mkdtemp(prefix="otakit-campaign-")) if work is None else Path(work)
    rng = random.Random(5)
    try:
        for name in names:
            if first_failure and any(not o.survived for o in report.outcomes):
                break
            t_scenario = time.monotonic()
            scenario = SCENARIOS[name]
            lanes: list[Bench] = []
            try:
                _setup_lanes(lanes, tmp / name, scenario, workers)
                goldens = []
                for lane in lanes:  # every lane's golden run is judged; lane 0's plans
                    golden(lane)
                    goldens.append(lane.goldens)
                if any([g.ops for g in gs] != [g.ops for g in goldens[0]] for gs in goldens):
                    raise RuntimeError(f"{name}: the lanes' golden runs differ: "
                                       f"{[[g.ops for g in gs] for gs in goldens]}")
                gs = goldens[0]
                if scenario.chain:
                    # the first update's install, trial and confirm x the second's whole cycle
                    a = [k for k in plan_ops(gs[0], full, per_kind) if k >= gs[0].downloaded]
                    b = plan_ops(gs[1], full, per_kind)
                    plan: list[tuple[int, ...]] = [(a[i % len(a)], b[i % len(b)])
                                                   for i in range(max(len(a), len(b)))]
                    if full:
                        plan += [(k, 0) for k in a]
                else:
                    plan = [(k,) for k in plan_ops(gs[0], full, per_kind)]
                if progress:
                    progress(f"{name}: golden run {gs[0].ops} flash ops (download done at op "
                             f"{gs[0].downloaded}); {len(plan)} cut points")
                stop = first_failure
                single = _map(lanes, [(c, False) for c in plan], progress, stop)
                if scenario.chain and full:
                    single += _map(lanes, [(c, False) for c in chain_states(single, gs[1])],
                                   progress, stop)
                double: list[Outcome] = []
                if not scenario.chain:
                    firsts = rng.sample(single, min(doubles, len(single)))
                    pairs = [(o.cuts[0], o.cuts[0] + rng.randint(1, o.recovery_ops))
                             for o in firsts if o.recovery_ops > 0]
                    double = _map(lanes, [(c, False) for c in pairs], progress, stop)
                browned = _map(lanes, [(c, True) for c in
                                       rng.sample(plan, min(brownouts, len(plan)))], progress,
                               stop)
                runs = single + double + browned
                report.outcomes += runs
                report.scenarios[name] = {
                    "image_bytes": len(lanes[0].new), "golden_ops": gs[0].ops,
                    "download_done_at_op": gs[0].downloaded, "cut_points": len(runs),
                    "double_cuts": len(double), "brownouts": len(browned),
                    "survived": sum(o.survived for o in runs),
                    # payload bytes fetched again per cut (a double cut may cost two resumes)
                    "max_refetched": max((o.refetched // max(1, len([c for c in o.cuts if c]))
                                          for o in runs), default=0),
                    # (for chain: of the second update, whose whole cycle is cut)
                    "coverage": gs[1].coverage([c[1] for c in plan]) if scenario.chain
                    else gs[0].coverage([c[0] for c in plan]),
                    "seconds": round(time.monotonic() - t_scenario, 1)}
                if scenario.chain:
                    report.scenarios[name]["second_update_ops"] = gs[1].ops
            finally:
                for lane in lanes:
                    lane.close()
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)
    report.seconds = time.monotonic() - t0
    return report


def chain_states(runs: list[Outcome], second: Golden) -> list[tuple[int, int]]:
    """For ``chain`` (full): a cut of the first update, one per distinct set of NVS records it
    left to the second (`Outcome.left`), against every op of the second update's install and
    trial (from the end of its download to the end of its confirm), so that a record the first
    update's cut left half-erased meets every write of the second's trial record. The cycled
    pairs of the plan try each first cut with only a few second ones."""
    # the state most first cuts leave is the uncut one (the plan's cycled pairs cover it)
    usual = Counter(o.left for o in runs if o.left).most_common(1)
    firsts: dict[tuple[str, ...], int] = {}
    for o in runs:
        if o.cuts[0] and o.left and (not usual or o.left != usual[0][0]):
            firsts.setdefault(o.left, o.cuts[0])
    window = [k for k, ph in enumerate(second.phases, 1) if ph in ("install", "trial")]
    done = {o.cuts for o in runs}
    return [(a, b) for a in firsts.values() for b in window if (a, b) not in done]


def _setup_lanes(lanes: list[Bench], work: Path, scenario: Scenario, workers: int) -> None:
    errors: list[BaseException] = []
    made: list[Bench | None] = [None] * workers

    def setup(i: int) -> None:
        try:
            made[i] = Bench(work / f"lane{i}", scenario)
        except BaseException as e:  # reported below, after every lane is done
            errors.append(e)

    threads = [threading.Thread(target=setup, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lanes += [b for b in made if b is not None]
    if errors:
        raise errors[0]


def _map(lanes: list[Bench], items: list[tuple[tuple[int, ...], bool]],
         progress: Callable[[str], None] | None, stop: bool = False) -> list[Outcome]:
    # Each lane (thread) takes the next item; outcomes keep the items' order. stop: take no
    # more items after a failed run (and none once an earlier call failed).
    out: list[Outcome | None] = [None] * len(items)
    todo = iter(enumerate(items))
    lock = threading.Lock()
    done = [0]
    errors: list[BaseException] = []
    failed = [False]

    def work(lane: Bench) -> None:
        while not errors and not (stop and failed[0]):
            with lock:
                nxt = next(todo, None)
            if nxt is None:
                return
            i, (cuts, brownout) = nxt
            try:
                o = lane.run(cuts, brownout=brownout)[0]
            except BaseException as e:  # reported by _map's caller
                errors.append(e)
                return
            out[i] = o
            with lock:
                done[0] += 1
                failed[0] = failed[0] or not o.survived
                if progress and not o.survived:
                    progress(f"  FAILED {repro_command(o.scenario, o.cuts, o.brownout)}: "
                             f"{o.problems}")
                if progress and done[0] % 100 == 0:
                    progress(f"  {lane.scenario.name}: {done[0]}/{len(items)}")

    threads = [threading.Thread(target=work, args=(lane,)) for lane in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [o for o in out if o is not None]
