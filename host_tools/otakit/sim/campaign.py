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
      interruption, and no boot requests it twice.
The floor check of (d) holds in every scenario (for the refused releases: the floor is
unchanged at the end); the golden run of each scenario is judged like every cut run.

Cut points: the full campaign cuts at every op. The reduced one classifies the golden run's ops
(from the simulator's op trace) by kind (app-slot erase, app-slot program, NVS record, NVS
commit, NVS page erase, otadata, vfs) and phase (check, download, install, trial, after) and
cuts at a few of every kind in every phase of the download, and at every op from the end of the
download on. Brown-out runs (the cut also tears the op before it) are sampled from the plan.

The scenarios and device scripts are in `otakit.sim.scenarios`, the oracle in `otakit.sim.oracle`;
this module sets a scenario up (`Bench`), plans the cut points and runs them.

Invariants: each run works on its own copy of the scenario's starting image; runs are independent,
so they are spread over worker threads (each run is a chain of device processes), each thread
with its own lane (a `Bench`: lab, server, starting image), so that the requests a server saw
belong to one run.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from otakit.appimage import make_app_image
from otakit.keys import ED25519, generate_key
from otakit.sim.faults import Faults
from otakit.sim.inspect import FlashState, read_state
from otakit.sim.lab import Lab, revision_of
from otakit.sim.oracle import REFETCH_BOUND, Judge, last_status, stored_keyring, vfs_files
from otakit.sim.runner import RunResult, run
from otakit.sim.scenarios import (
    APP_SETUP, APP_USER_FILES, HEAP, SCENARIOS, SETTINGS_CHANGE, Scenario, device_script,
)

__all__ = ["REFETCH_BOUND", "SCENARIOS", "Bench", "Report", "cut_plan", "golden", "kind_plan",
           "run_campaign"]


@dataclass
class Outcome:
    """The verdict on one run."""

    scenario: str
    cuts: tuple[int, ...]
    problems: list[str]
    boots: int
    retried: bool = False
    recovery_ops: int = 0
    brownout: bool = False
    refetched: int = 0

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


class _Recorder(Faults):
    """The lane server's middleware: records (path, Range) of every request, injects nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []

    @property
    def middleware(self) -> Callable:  # type: ignore[override]
        @web.middleware
        async def record(request: web.Request, handler: Callable) -> web.StreamResponse:
            self.seen.append((request.raw_path, request.headers.get("Range")))
            return await handler(request)

        return record


@dataclass
class Stage:
    """One update a scenario cuts, as the oracle sees it (`otakit.sim.oracle.Judge`)."""

    scenario: Scenario
    channel: str
    old: bytes
    new: bytes
    old_seq: int
    new_seq: int
    new_sv: int
    new_rev: int
    shas: dict[str, str]
    manifest: bytes
    old_slot: str = ""
    old_offset: int = 0
    new_slot: str = ""
    new_offset: int = 0
    floor0: int = 0
    keyring: int = 0
    user_files: dict[str, bytes | None] = field(default_factory=dict)
    changed: dict[str, tuple[bytes | None, ...]] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def raw(self) -> bool:
        """Whether the agent takes the raw payload (resume points are image offsets)."""
        return not self.scenario.encoding

    def place(self, st: FlashState, data: bytes) -> None:
        """Find the old image's slot (and so the new one's) in the starting flash image."""
        slots = [s for s in st.slots if s.label.startswith("ota_")]
        old = next(s for s in slots if data[s.offset:s.offset + len(self.old)] == self.old)
        new = next(s for s in slots if s.label != old.label)
        self.old_slot, self.old_offset = old.label, old.offset
        self.new_slot, self.new_offset = new.label, new.offset
        self.floor0 = int(st.nvs.get("otakit", {}).get("floor", 0))


class Bench:
    """One scenario set up on a `Lab` (one lane): the old image flashed and provisioned, the new
    published; for ``chain`` the two updates' manifests, served one after the other."""

    def __init__(self, work: Path, scenario: Scenario) -> None:
        self.scenario = scenario
        self.work = work
        self.root = generate_key(ED25519) if scenario.keyring else None
        self.lab = Lab(work / "lab", alg=ED25519, roots=[self.root] if self.root else None)
        self.recorder = _Recorder()
        self.lab.faults = self.recorder
        self.lab.__enter__()
        try:
            self._setup(scenario)
        except BaseException:
            self.close()
            raise

    def _publish(self, image: bytes, version: str, seq: int, sv: int, old: bytes) -> Stage:
        sc = self.scenario
        kw: dict = {"security_version": sv}
        if sc.encoding == "deflate":
            kw["deflate"] = True
        elif sc.encoding == "delta":
            kw["delta_bases"] = (old,)
        keyring = 0
        if sc.keyring:  # a new release key, trusted only by a keyring document the roots sign
            key = generate_key(ED25519)
            keyring = 1
            self.lab.sign_keyring([key], keyring)
            kw["key"] = key
        res = self.lab.publish(image, version, seq, **kw)
        return Stage(sc, self.lab.channel, old, image, 0, seq, sv, revision_of(res.body), {},
                     self.lab.manifest_path.read_bytes(), keyring=keyring, seen=self.recorder.seen)

    def _setup(self, scenario: Scenario) -> None:
        work = self.work
        lab = self.lab
        first = make_app_image("1.0.0", size=scenario.size, seed="old")
        self.script = work / "device.py"
        self.script.write_text(device_script(scenario, "1.1.0" if scenario.unhealthy else None))
        lab.flash(first)
        if scenario.app:
            setup = work / "setup.py"
            setup.write_text(APP_SETUP)
            result = lab.boot(script=setup, max_boots=1, heapsize=HEAP)
            if "SETUP done" not in result.log:
                raise RuntimeError("the app scenario's setup failed:\n" + result.log)
        names = ["ota_config.json", *(APP_USER_FILES if scenario.app else [])]
        user_files = vfs_files(lab.flash_path, names)
        old, old_seq, new_seq, new_sv = first, 1, 2, 1
        older = None
        if scenario.second:  # the update before, by the agent, uncut
            older, old = first, make_app_image("1.1.0", size=scenario.size, seed="new")
            old_seq, new_seq, new_sv = 2, 3, 2
            lab.publish(old, "1.1.0", old_seq, security_version=1)
            result = run(lab.flash_path, script=self.script, app_dir=lab.device_dir,
                         max_boots=10, heapsize=HEAP, timeout=60)
            if "seq" not in read_state(lab.flash_path).nvs.get("otakit", {}):
                raise RuntimeError("the first update of scenario second failed:\n" + result.log)
        version = "1.%d.0" % (new_seq - 1)
        new = make_app_image(version, size=scenario.size,
                             seed="newer" if scenario.second else "new",
                             behaviour="crash" if scenario.crash else "")
        self.base = work / "base.img"
        shutil.copyfile(lab.flash_path, self.base)
        changed: dict[str, tuple[bytes | None, ...]] = {}
        if scenario.settings:  # the user's settings as the change at each boot leaves them
            probe, script = work / "probe.img", work / "change.py"
            shutil.copyfile(self.base, probe)
            script.write_text(SETTINGS_CHANGE)
            run(probe, script=script, app_dir=lab.device_dir, max_boots=1, heapsize=HEAP)
            changed = {k: (v,) for k, v in vfs_files(probe, APP_USER_FILES).items()}
            probe.unlink()
        stage = self._publish(new, version, new_seq, new_sv, old)
        stage.old_seq = 0 if not scenario.second else old_seq
        stage.user_files, stage.changed = user_files, changed
        self.stages = [stage]
        if scenario.chain:  # then 1.1.0 -> 1.2.0 (sequence 3, security version 2)
            newer = make_app_image("1.2.0", size=scenario.size, seed="newer")
            second = self._publish(newer, "1.2.0", 3, 2, new)
            second.old_seq, second.user_files = 2, user_files
            self.stages.append(second)
            self.lab.manifest_path.write_bytes(stage.manifest)
        data = self.base.read_bytes()
        stage.place(read_state(self.base), data)
        for st in self.stages:
            st.shas[hashlib.sha256(st.old).hexdigest()] = "old"
            st.shas[hashlib.sha256(st.new).hexdigest()] = "new"
        if older is not None:
            stage.shas[hashlib.sha256(older).hexdigest()] = "older"
        if scenario.chain:
            self.stages[1].shas[hashlib.sha256(first).hexdigest()] = "older"
        self.runs = work / "runs"
        self.runs.mkdir(exist_ok=True)

    # kept for the CLI and the tests: the (first) stage's figures
    @property
    def new(self) -> bytes:
        """The new image of the (first) update."""
        return self.stages[0].new

    def close(self) -> None:
        """Stop the server."""
        self.lab.__exit__(None, None, None)

    def run(self, cuts: tuple[int, ...], log: Callable[[str], None] | None = None, *,
            brownout: bool = False, trace: Path | None = None) -> tuple[Outcome, RunResult]:
        """Run from the starting image with power cuts at ``cuts``; judge the result.

        For ``chain``, ``cuts`` is (cut in the first update, cut in the second), 0 for none.
        ``trace``: write the simulator's op trace of each update to ``trace``.N (N = 0, 1).
        """
        name = "-".join(str(c) for c in cuts) or "golden"
        flash = self.runs / f"{name}{'-bo' if brownout else ''}.img"
        shutil.copyfile(self.base, flash)
        try:
            if not self.scenario.chain:
                per_stage = [cuts]
            else:
                per_stage = [tuple(c for c in cuts[i:i + 1] if c) for i in (0, 1)]
            problems: list[str] = []
            boots = 0
            retried = False
            refetched = 0
            result = RunResult()
            self.results: list[RunResult] = []
            for i, (stage, stage_cuts) in enumerate(zip(self.stages, per_stage)):
                if self.scenario.chain:
                    self.lab.manifest_path.write_bytes(stage.manifest)
                    if i:
                        stage.place(read_state(flash), flash.read_bytes())
                env = {"OTAKIT_SIM_BROWNOUT": "1"} if brownout else {}
                if trace is not None:
                    env["OTAKIT_SIM_TRACE"] = f"{trace}.{i}"
                judge, result, again = self._cycle(stage, flash, stage_cuts, env)
                self.results.append(result)
                label = f"update {i + 1}: " if self.scenario.chain else ""
                problems += [label + p for p in judge.problems]
                boots += len(result.boots)
                retried = retried or again
                refetched += judge.refetched
                if log:
                    log(result.log)
                if judge.problems:
                    break
            first = cuts[0] if cuts else 0
            return Outcome(self.scenario.name, cuts, problems, boots, retried,
                           max(0, result.ops - first), brownout, refetched), result
        finally:
            flash.unlink(missing_ok=True)

    def _cycle(self, stage: Stage, flash: Path, cuts: tuple[int, ...],
               env: dict[str, str]) -> tuple[Judge, RunResult, bool]:
        judge = Judge(stage, flash, len(cuts))
        result = self._boot(flash, cuts, judge, env)
        retried = False
        if not judge.problems and not self._settled(stage, result) and cuts:
            retried = True  # the next check (one more power-on) must complete it
            judge.note_power_on()
            env = {k: v for k, v in env.items() if k != "OTAKIT_SIM_BROWNOUT"}
            result2 = self._boot(flash, (), judge, env)
            result.log += result2.log
            result.boots += result2.boots
            result.ended = result2.ended
        judge.final(result)
        return judge, result, retried

    def _boot(self, flash: Path, cuts: tuple[int, ...], judge: Judge,
              env: dict[str, str]) -> RunResult:
        return run(flash, script=self.script, app_dir=self.lab.device_dir, max_boots=10,
                   cut_at=cuts or None, heapsize=HEAP, timeout=60, on_boot=judge.boot, env=env)

    def _settled(self, stage: Stage, result: RunResult) -> bool:
        status = last_status(result)
        if not result.boots or result.ended != "finished":
            return False
        if self.scenario.rejects:
            return stage.shas.get(result.last.image_sha256) == "old" and \
                stage.new_seq in status.get("bad_sequences", [])
        return stage.shas.get(result.last.image_sha256) == "new" and \
            status.get("state") == "up_to_date"


# --- cut plans -------------------------------------------------------------------------------
PHASES = ("check", "download", "install", "trial", "after")


def op_kinds(trace: bytes, st: FlashState) -> list[str]:
    """The kind of each op of a simulator op trace (`_simfault`): erase or program (an app
    slot), nvs-record, nvs-commit, nvs-erase, otadata, vfs or other."""
    out = []
    for i in range(0, len(trace) - 8, 9):
        kind, addr, n = struct.unpack_from("<BII", trace, i)
        part = next((p for p in st.partitions if p.offset <= addr < p.offset + p.size), None)
        label = part.label if part else ""
        if label.startswith("ota_"):
            out.append("program" if kind else "erase")
        elif label == "nvs":
            out.append("nvs-erase" if not kind else "nvs-commit" if n == 1 else "nvs-record")
        elif label in ("otadata", "vfs"):
            out.append(label)
        else:
            out.append("other")
    return out


def op_phases(result: RunResult, downloaded: int, kinds: list[str]) -> list[str]:
    """The phase of each op of a golden run: check (before the first app-slot op), download
    (to its end), install (the rest of that boot), trial (the next boot), after."""
    out: list[str] = []
    first_slot = next((i + 1 for i, k in enumerate(kinds) if k in ("erase", "program")),
                      downloaded)
    op = 0
    for i, b in enumerate(result.boots):
        for _ in range(b.ops):
            op += 1
            if i == 0:
                out.append("check" if op < first_slot else
                           "download" if op <= downloaded else "install")
            else:
                out.append("trial" if i == 1 else "after")
    return out


def kind_plan(kinds: list[str], phases: list[str], downloaded: int, per_kind: int) -> list[int]:
    """A reduced plan: ``per_kind`` ops (spread evenly, first and last included) of every kind in
    every phase before the download ends and after the trial boot, and every op from the end of
    the download to the end of the trial boot (install, set_boot, reboot, trial, confirm)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for op, (k, ph) in enumerate(zip(kinds, phases), 1):
        groups.setdefault((ph, k), []).append(op)
    plan = {op for op in range(max(1, downloaded), len(phases) + 1)
            if phases[op - 1] != "after"}
    for ops in groups.values():
        if len(ops) <= per_kind:
            plan |= set(ops)
        else:
            plan |= {ops[round(j * (len(ops) - 1) / (per_kind - 1))] for j in range(per_kind)}
    return sorted(plan)


def cut_plan(ops: int, downloaded: int, full: bool, every: int) -> list[int]:
    """Every op (full), else every ``every``-th op plus every op after the download."""
    if full:
        return list(range(1, ops + 1))
    return sorted(set(range(1, ops + 1, every)) | set(range(max(1, downloaded), ops + 1)))


@dataclass
class Golden:
    """What an uncut update cycle did: its ops, where the download ended, each op's kind and
    phase."""

    ops: int
    downloaded: int
    kinds: list[str]
    phases: list[str]

    def coverage(self, plan: list[int]) -> dict[str, dict[str, list[int]]]:
        """{phase: {kind: [cut, of]}}: how many ops of each kind and phase the plan cuts."""
        out: dict[str, dict[str, list[int]]] = {}
        cut = set(plan)
        for op, (k, ph) in enumerate(zip(self.kinds, self.phases), 1):
            c = out.setdefault(ph, {}).setdefault(k, [0, 0])
            c[0] += op in cut
            c[1] += 1
        return out


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


def _plan(g: Golden, full: bool, per_kind: int) -> list[int]:
    return list(range(1, g.ops + 1)) if full else kind_plan(g.kinds, g.phases, g.downloaded,
                                                              per_kind)


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
                    a = [k for k in _plan(gs[0], full, per_kind) if k >= gs[0].downloaded]
                    b = _plan(gs[1], full, per_kind)
                    plan: list[tuple[int, ...]] = [(a[i % len(a)], b[i % len(b)])
                                                   for i in range(max(len(a), len(b)))]
                    if full:
                        plan += [(k, 0) for k in a]
                else:
                    plan = [(k,) for k in _plan(gs[0], full, per_kind)]
                if progress:
                    progress(f"{name}: golden run {gs[0].ops} flash ops (download done at op "
                             f"{gs[0].downloaded}); {len(plan)} cut points")
                stop = first_failure
                single = _map(lanes, [(c, False) for c in plan], progress, stop)
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
                    "max_refetched": max((o.refetched for o in runs), default=0),
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
