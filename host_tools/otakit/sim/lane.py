"""One lane of the power-cut campaign: one scenario set up on a `Lab`, and one run of it judged.

A `Bench` (one lane of `otakit.sim.campaign`) flashes and provisions the scenario's old image,
publishes the new release (for ``chain`` two, served one after the other; for ``bundle`` also
copied onto the board's filesystem as a bundle file) and keeps the starting flash image;
`Bench.run` runs one update cycle from a copy of it with the power cut at the given ops
(`otakit.sim.runner`), boots once more when the cut left the update for the next check, and
returns the oracle's verdict (`otakit.sim.oracle.Judge`) as an `Outcome`. A `Stage` is one update
as the oracle sees it; the lane's server records every request for criterion (h).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from otakit.appimage import make_app_image
from otakit.keys import ED25519, generate_key
from otakit.sim.cutplan import Golden
from otakit.sim.faults import Faults
from otakit.sim.inspect import FlashState, read_state
from otakit.sim.lab import Lab, revision_of
from otakit.sim.oracle import Judge, last_status, vfs_files
from otakit.sim.runner import RunResult, run
from otakit.sim.scenarios import (
    APP_SETUP, APP_USER_FILES, HEAP, SETTINGS_CHANGE, Scenario, device_script, revert_setup,
    setup_bundle,
)

__all__ = ["Bench", "Outcome", "Stage"]


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
    left: tuple[str, ...] = ()  # chain: the NVS records the first update left to the second

    @property
    def survived(self) -> bool:
        """Whether the oracle found nothing wrong."""
        return not self.problems


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
    # the representation of an encoded scenario (docs/format.md §2.2): its request path, image
    # bytes per chunk, and encoded length of each chunk
    rep_path: str = ""
    chunk: int = 0
    chunks: tuple[int, ...] = ()
    rep_tag: bytes = b""  # the first 8 bytes of its SHA-256: the name its progress is kept under

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

    goldens: list[Golden]  # each update's golden run, set by `otakit.sim.campaign.golden`

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
        stage = Stage(sc, self.lab.channel, old, image, 0, seq, sv, revision_of(res.body), {},
                      self.lab.manifest_path.read_bytes(), keyring=keyring,
                      seen=self.recorder.seen)
        rep = next((r for r in res.body.payloads if r.encoding == sc.encoding), None)
        if rep is not None:
            stage.rep_path, stage.chunk, stage.chunks = "/" + rep.path, rep.chunk or 0, \
                tuple(rep.chunks or ())
            stage.rep_tag = bytes.fromhex(rep.sha256)[:8]
        return stage

    def _setup(self, scenario: Scenario) -> None:
        work = self.work
        lab = self.lab
        first = make_app_image("1.0.0", size=scenario.size, seed="old")
        self.script = work / "device.py"
        self.script.write_text(device_script(scenario, "1.1.0" if scenario.unhealthy else None))
        if scenario.revert:
            self._setup_revert(scenario)
            return
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
        if scenario.bundle:  # the release as a file on the board's filesystem, in the start image
            setup_bundle(lab, work)
            shutil.copyfile(lab.flash_path, self.base)
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

    def _setup_revert(self, scenario: Scenario) -> None:
        # 1.1.0 (sequence 2) runs, the revert to 1.0.0 (sequence 1, in the other slot) is
        # published: the stage's "new" release is 1.0.0 (otakit.sim.scenarios.revert_setup).
        lab = self.lab
        old, new, rev = revert_setup(lab, self.script, scenario.size)
        self.base = self.work / "base.img"
        shutil.copyfile(lab.flash_path, self.base)
        stage = Stage(scenario, lab.channel, old, new, 2, 1, 1, rev, {},
                      lab.manifest_path.read_bytes(), seen=self.recorder.seen,
                      user_files=vfs_files(self.base, ["ota_config.json"]))
        stage.place(read_state(self.base), self.base.read_bytes())
        stage.shas = {hashlib.sha256(old).hexdigest(): "old",
                      hashlib.sha256(new).hexdigest(): "new"}
        self.stages = [stage]
        self.runs = self.work / "runs"
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
            left: tuple[str, ...] = ()
            self.results: list[RunResult] = []
            for i, (stage, stage_cuts) in enumerate(zip(self.stages, per_stage)):
                if self.scenario.chain:
                    self.lab.manifest_path.write_bytes(stage.manifest)
                    if i:
                        state = read_state(flash)
                        left = tuple(sorted(state.nvs.get("otakit", {})))
                        stage.place(state, flash.read_bytes())
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
                           max(0, result.ops - first), brownout, refetched, left), result
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
