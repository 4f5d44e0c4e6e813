"""Verdicts per test case, as a lab gives them, from the ICS, the test results and the facts.

- PASS: otakit provides the mechanism, every mapped test ran and passed in a traceable run;
- FAIL: a mapped test (or an optional one that ran) failed, or a fact contradicts the provision
  (an ``http://`` update URL for 5.5-1);
- N/A: the ICS condition does not hold for an otakit device (5.3-14, 5.3-15);
- INCONCLUSIVE: a mapped test did not run or was skipped, the devised-attack table is incomplete,
  or the verdict depends on the manufacturer's own act (the case says what they must supply);
- UNVERIFIED: the results file cannot be traced to a run of this checkout (never PASS).

A provision's verdict is its worst case: FAIL, then UNVERIFIED, INCONCLUSIVE, PASS; N/A when
every case is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otakit.compliance.attacks import ATTACKS, Attack, attacks_for, unmapped_attack_tests
from otakit.compliance.evidence import Results, count
from otakit.compliance.provisions import PROVISIONS, Case, Provision

PASS, FAIL, NA, INCONCLUSIVE, UNVERIFIED = "PASS", "FAIL", "N/A", "INCONCLUSIVE", "UNVERIFIED"
VERDICTS = (PASS, FAIL, NA, INCONCLUSIVE, UNVERIFIED)


@dataclass
class CaseVerdict:
    case: Case
    verdict: str
    why: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class ProvisionVerdict:
    provision: Provision
    verdict: str
    cases: list[CaseVerdict]


@dataclass
class AttackResult:
    attack: Attack
    result: str  # passed / failed / skipped / not run
    counts: dict[str, dict[str, int]]


def case_tests(case: Case, pid: str) -> list[str]:
    """The tests a case rests on: its own, then those of its attacks."""
    tests = list(case.tests)
    if case.attacks:
        tests += [t for a in attacks_for(pid) for t in a.tests if t not in tests]
    return tests


def mapped_tests(pids: list[str] | None = None) -> list[str]:
    """Every test id the report maps (optional ones included), for ``pytest`` to run."""
    out = set()
    for p in PROVISIONS:
        if pids and p.pid not in pids:
            continue
        for c in p.cases:
            out.update(case_tests(c, p.pid), c.optional)
    return sorted(out)


def _state(c: dict[str, int]) -> str:
    if c["failed"]:
        return "failed"
    if not any(c.values()):
        return "not run"
    return "skipped" if c["skipped"] else "passed"


def _short(tests: list[str]) -> str:
    return ", ".join(t.split("::")[1] for t in tests)


def judge_case(p: Provision, case: Case, results: Results | None,
               device_config: dict | None = None, unmapped: list[str] | None = None
               ) -> CaseVerdict:
    """One test case's verdict."""
    if not p.applies:
        return CaseVerdict(case, NA, f"ICS: the provision applies only to {p.condition}; an "
                           "otakit device's software can be updated")
    cases = results.cases if results else {}
    tests = case_tests(case, p.pid)
    counts = {t: count(cases, t) for t in tests + case.optional}
    state = {t: _state(counts[t]) for t in counts}
    failed = [t for t in counts if state[t] == "failed"]
    missing = [t for t in tests if state[t] in ("not run", "skipped")]
    url = str((device_config or {}).get("url", ""))
    if tests and (results is None or not results.verified):
        why = "no test results" if results is None else \
            "results not traceable to a run of this checkout (see the evidence record)"
        return CaseVerdict(case, UNVERIFIED, why, counts)
    if failed:
        return CaseVerdict(case, FAIL, "tests failed: " + _short(failed), counts)
    if p.pid == "5.5-1" and url.startswith("http://"):
        return CaseVerdict(case, FAIL, f"the device's update URL {url} is plain http", counts)
    if missing:
        return CaseVerdict(case, INCONCLUSIVE, "tests did not run or were skipped: "
                           + _short(missing), counts)
    if case.attacks and unmapped:
        return CaseVerdict(case, INCONCLUSIVE, "the devised-attack table misses "
                           + ", ".join(unmapped), counts)
    absent = [t for t in case.optional if state[t] != "passed"]
    note = (" (optional, absent here: " + _short(absent) + ")") if absent else ""
    if case.manufacturer:
        return CaseVerdict(case, INCONCLUSIVE, "the manufacturer must supply "
                           + case.manufacturer + note, counts)
    return CaseVerdict(case, PASS, f"all {len(tests)} mapped tests passed" + note, counts)


def _worst(verdicts: list[str]) -> str:
    if all(v == NA for v in verdicts):
        return NA
    for v in (FAIL, UNVERIFIED, INCONCLUSIVE):
        if v in verdicts:
            return v
    return PASS


def evaluate(results: Results | None, device_config: dict | None = None,
             pids: list[str] | None = None, unmapped: list[str] | None = None
             ) -> list[ProvisionVerdict]:
    """Every provision's verdict (only ``pids`` when given). ``unmapped``: the attack tests the
    table misses (default: found in the checkout's tests/)."""
    if unmapped is None:
        unmapped = unmapped_attack_tests()
    out = []
    for p in PROVISIONS:
        if pids and p.pid not in pids:
            continue
        cvs = [judge_case(p, c, results, device_config, unmapped) for c in p.cases]
        out.append(ProvisionVerdict(p, _worst([c.verdict for c in cvs]), cvs))
    return out


def attack_results(results: Results | None, pids: list[str] | None = None
                   ) -> list[AttackResult]:
    """Each attack of the table (only those testing ``pids`` when given) with the results of
    its tests."""
    cases = results.cases if results else {}
    out = []
    for a in ATTACKS:
        if pids and not set(pids) & set(a.provisions):
            continue
        counts = {t: count(cases, t) for t in a.tests}
        states = [_state(c) for c in counts.values()]
        result = next((s for s in ("failed", "not run", "skipped") if s in states), "passed")
        if results is None or not results.verified:
            result += " (UNVERIFIED)"
        out.append(AttackResult(a, result, counts))
    return out
