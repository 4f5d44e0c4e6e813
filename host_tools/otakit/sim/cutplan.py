"""The power-cut campaign's cut plans: which flash ops of a golden (uncut) run to cut.

The full campaign cuts at every op. The reduced one classifies the golden run's ops (from the
simulator's op trace, `op_kinds`) by kind (app-slot erase, app-slot program, NVS record, NVS
commit, NVS page erase, otadata, vfs) and phase (`op_phases`: check, download, install, trial,
after) and cuts at a few of every kind in every phase of the download, and at every op from the
end of the download on (`kind_plan`). `Golden` is what the golden run did, with the plan's
coverage; `otakit.sim.campaign` samples the double cuts and brown-outs from these plans.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from otakit.sim.inspect import FlashState
from otakit.sim.runner import RunResult

__all__ = ["PHASES", "Golden", "cut_plan", "kind_plan", "op_kinds", "op_phases", "plan_ops"]

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


def plan_ops(g: Golden, full: bool, per_kind: int) -> list[int]:
    """The ops to cut in an update whose golden run is ``g``: every one (full), else
    `kind_plan`'s."""
    return list(range(1, g.ops + 1)) if full else kind_plan(g.kinds, g.phases, g.downloaded,
                                                              per_kind)
