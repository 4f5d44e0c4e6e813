"""Assemble the report: the evidence record, the ICS, the verdict per test case, the
devised-attack table, the per-test counts, what the manufacturer must supply, and the IXIT
drafts; written as report.md, report.html, report.json (and report.pdf when asked)."""

from __future__ import annotations

import json
from pathlib import Path

from otakit.compliance import render
from otakit.compliance.attacks import attacks_for
from otakit.compliance.evidence import Results
from otakit.compliance.render import Section, Table
from otakit.compliance.verdicts import (
    INCONCLUSIVE,
    VERDICTS,
    AttackResult,
    ProvisionVerdict,
    attack_results,
    evaluate,
    mapped_tests,
)


def _counts(c: dict[str, int]) -> str:
    return f"{c['passed']}/{c['failed']}/{c['skipped']}"


def _tests_cell(counts: dict[str, dict[str, int]]) -> str:
    if not counts:
        return "-"
    return "\n".join(f"`{t.split('::')[1]}` {_counts(c)}" for t, c in counts.items())


def _record(facts: dict, results: Results | None, commands: list[str]) -> Section:
    dirty = {True: " (dirty: uncommitted changes were present)", False: " (clean)",
             None: ""}[facts.get("dirty")]
    rows = [["date (UTC)", str(facts["date"])], ["git commit", f"{facts['commit']}{dirty}"],
            ["otakit", str(facts["otakit"])], ["Python", str(facts["python"])],
            ["MicroPython (unix port the device tests run on)", str(facts["micropython"])],
            ["target", str(facts["target"])], ["platform", str(facts["platform"])]]
    rows += [["command", f"`{c}`"] for c in commands]
    if results:
        cases = list(results.cases.values())
        rows += [["results file", f"`{results.path.name}`"],
                 ["SHA-256 of the results file", f"`{results.sha256}`"],
                 ["traceability", ("VERIFIED: " if results.verified else "UNVERIFIED: ")
                  + results.why],
                 ["run id", str(results.run.get("run_id", "-"))],
                 ["test cases (parametrised cases counted)",
                  f"{len(cases)}: {cases.count('passed')} passed, {cases.count('failed')} "
                  f"failed, {cases.count('skipped')} skipped"]]
    else:
        rows.append(["results file", "none: no tests ran"])
    return Section("Evidence record", table=Table(["field", "value"], rows))


def _summary(verdicts: list[ProvisionVerdict]) -> Section:
    prov = {v: sum(p.verdict == v for p in verdicts) for v in VERDICTS}
    cases = [c.verdict for p in verdicts for c in p.cases]
    tc = {v: cases.count(v) for v in VERDICTS}
    return Section("Summary", [
        "Provisions: " + ", ".join(f"{n} {v}" for v, n in prov.items() if n) + ". "
        "Test cases: " + ", ".join(f"{n} {v}" for v, n in tc.items() if n) + ".",
        "PASS: the mechanism exists and every mapped test passed in a traceable run. FAIL: a "
        "mapped test failed. N/A: the ICS condition does not hold. INCONCLUSIVE: a test did "
        "not run, or the verdict needs the manufacturer's own act (listed below). UNVERIFIED: "
        "the results file cannot be traced to a run of this checkout. Provision wording is "
        "summarised; check the official EN 303 645 and TS 103 701 texts before citing it."])


def _ics(verdicts: list[ProvisionVerdict]) -> Section:
    rows = [[f"**{v.provision.pid}**", v.provision.summary, v.provision.status,
             v.provision.condition or "-",
             ("yes" if v.provision.applies else "no") if v.provision.condition else "-",
             "yes" if v.provision.applies else "N/A", v.provision.ixit or "-"]
            for v in verdicts]
    return Section("ICS (implementation conformance statement)",
                   ["Status: M mandatory, R recommended, C conditional (the condition "
                    "given)."],
                   Table(["provision", "summary", "status", "condition", "condition holds",
                          "supported", "IXIT"], rows))


def _cases(verdicts: list[ProvisionVerdict]) -> Section:
    rows = []
    for v in verdicts:
        for c in v.cases:
            own = {t: n for t, n in c.counts.items() if t in c.case.tests + c.case.optional}
            cell = _tests_cell(own) if own else ""
            if c.case.attacks:
                rest = [n for t, n in c.counts.items() if t not in own]
                total = {k: sum(n[k] for n in rest) for k in ("passed", "failed", "skipped")}
                ids = [a.aid for a in attacks_for(v.provision.pid)]
                cell += (("\n" if cell else "") + f"the {len(rest)} tests of the "
                         f"{len(ids)} attacks {', '.join(ids)} (devised-attack table): "
                         f"{_counts(total)}")
            rows.append([f"**{c.case.tcid}**", c.case.kind, c.case.checks, c.verdict,
                         cell or "-", c.why])
    return Section("Verdicts per test case",
                   ["Tests: passed/failed/skipped cases of each mapped test."],
                   Table(["test case", "c/f", "what it checks", "verdict",
                          "tests (passed/failed/skipped)", "why"], rows))


def _provisions(verdicts: list[ProvisionVerdict]) -> Section:
    rows = [[f"**{v.provision.pid}**", v.verdict, v.provision.mechanism] for v in verdicts]
    return Section("Verdicts per provision, with otakit's mechanism",
                   table=Table(["provision", "verdict", "mechanism"], rows))


def _attacks(attacks: list[AttackResult]) -> Section:
    rows = [[a.attack.aid, a.attack.name, a.attack.source, ", ".join(a.attack.provisions),
             _tests_cell(a.counts), a.attack.reaction, a.result] for a in attacks]
    return Section("Devised-attack table (5.3-2-2, 5.3-9-1)",
                   ["Every attack the trust work defends and every example TS 103 701 gives "
                    "for 5.3-2-2, attempted on the real agent on the simulated board (the real "
                    "server where it applies). 5.3-2-2 is PASS only when every attack has a "
                    "test, every such test passed, and no `test_attack_*` in tests/ is left out "
                    "of this table."],
                   Table(["#", "attack", "source", "provisions", "tests (p/f/s)",
                          "the device's reaction the test shows", "result"], rows))


def _manufacturer(verdicts: list[ProvisionVerdict]) -> Section:
    items = [f"- **{c.case.tcid}**: {c.case.manufacturer}." for v in verdicts for c in v.cases
             if c.case.manufacturer and c.verdict == INCONCLUSIVE]
    return Section("What the manufacturer must supply (the INCONCLUSIVE cases)",
                   markdown="\n".join(items) or "Nothing.")


def build(results: Results | None, facts: dict, commands: list[str], ixit: str,
          device_config: dict | None = None, pids: list[str] | None = None
          ) -> tuple[list[Section], list[ProvisionVerdict], list[AttackResult]]:
    verdicts = evaluate(results, device_config, pids)
    attacks = attack_results(results, pids)
    sections = [_record(facts, results, commands), _summary(verdicts), _ics(verdicts),
                _cases(verdicts)] + ([_attacks(attacks)] if attacks else []) + [
                _manufacturer(verdicts),
                _provisions(verdicts), Section("IXIT drafts", markdown=ixit)]
    return sections, verdicts, attacks


def to_json(facts: dict, results: Results | None, commands: list[str],
            verdicts: list[ProvisionVerdict], attacks: list[AttackResult]) -> dict:
    return {
        "record": {**facts, "commands": commands,
                   "results_file": str(results.path) if results else None,
                   "results_sha256": results.sha256 if results else None,
                   "verified": bool(results and results.verified),
                   "traceability": results.why if results else "no results",
                   "run": results.run if results else {}},
        "provisions": [{"provision": v.provision.pid, "status": v.provision.status,
                        "condition": v.provision.condition, "verdict": v.verdict,
                        "cases": [{"case": c.case.tcid, "kind": c.case.kind,
                                   "verdict": c.verdict, "why": c.why,
                                   "manufacturer": c.case.manufacturer, "tests": c.counts}
                                  for c in v.cases]} for v in verdicts],
        "attacks": [{"id": a.attack.aid, "attack": a.attack.name,
                     "provisions": list(a.attack.provisions), "result": a.result,
                     "tests": a.counts} for a in attacks],
    }


def write(out: Path, results: Results | None, facts: dict, commands: list[str], ixit: str,
          device_config: dict | None = None, pids: list[str] | None = None,
          pdf: bool = False) -> list[ProvisionVerdict]:
    """Write ``report.md``, ``report.html``, ``report.json`` (and ``report.pdf``) into ``out``."""
    sections, verdicts, attacks = build(results, facts, commands, ixit, device_config, pids)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(render.markdown(sections))
    (out / "report.html").write_text(render.html_page(sections))
    (out / "report.json").write_text(json.dumps(
        to_json(facts, results, commands, verdicts, attacks), indent=1) + "\n")
    if pdf:
        render.pdf(out / "report.html", out / "report.pdf")
    return verdicts


__all__ = ["build", "mapped_tests", "write"]
