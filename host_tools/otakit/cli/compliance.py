"""otakit CLI: ``compliance report`` (EN 303 645 §5.3 / CRA evidence in the TS 103 701 shape)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from otakit import compliance
from otakit.boards import available_boards, load_board
from otakit.compliance.provisions import PROVISIONS
from otakit.errors import OtakitError
from otakit.ixit import all_drafts
from otakit.manifest import parse_unverified
from otakit.repo import Repository


def _repo_facts(repo: str) -> tuple[list[str], dict]:
    """The repository's signature algorithms, latest signed support end and published
    support statements (for the IXIT drafts)."""
    r = Repository(repo)
    signed = [parse_unverified(p.read_bytes()) for p in r.manifests()]
    published = []
    for f in sorted(Path(repo).glob("*/support/support.json")):
        try:
            doc = json.loads(f.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict):
            published.append({**doc, "path": str(f.relative_to(repo))})
    return (sorted({m.envelope.alg for m in signed}),
            {"support_end": max((m.body.support_end for m in signed), default=None),
             "published": published})


@click.group("compliance")
def compliance_group() -> None:
    """Evidence for EN 303 645 §5.3 and CRA Annex I(2)(c)."""


@compliance_group.command("report")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output dir (relative to the current directory).")
@click.option("--junit", type=click.Path(exists=True, dir_okay=False),
              help="The junit.xml of an earlier report run (its .run.json beside it); any "
                   "other file is UNVERIFIED. Default: run the mapped tests now.")
@click.option("--device-config", type=click.Path(exists=True, dir_okay=False),
              help="The device's provisioning file (ota_config.json) for the IXIT drafts.")
@click.option("--repo", type=click.Path(file_okay=False),
              help="A release repository: algorithms, support end and published statements.")
@click.option("--board", default="esp32", show_default=True,
              type=click.Choice(available_boards()),
              help="The board whose components and secure boot the IXIT drafts describe.")
@click.option("--provision", "pids", multiple=True, metavar="ID",
              type=click.Choice([p.pid for p in PROVISIONS]),
              help="Only this provision (repeatable): only its tests run.")
@click.option("--pdf", is_flag=True, help="Also print report.pdf with headless Chromium.")
@click.option("--jobs", "-n", metavar="N",
              help="Run the tests on N processes (pytest-xdist), e.g. auto.")
def compliance_report(out: str, junit: str | None, device_config: str | None,
                      repo: str | None, board: str, pids: tuple[str, ...], pdf: bool,
                      jobs: str | None) -> None:
    """Write report.md, report.html and report.json: the evidence record, the ICS, a verdict
    per test case, the devised-attack table and the IXIT drafts."""
    outdir = Path(out).resolve()  # pytest runs in the checkout: never resolve against it
    try:
        cfg = json.loads(Path(device_config).read_text()) if device_config else None
    except ValueError as e:
        raise OtakitError(f"--device-config {device_config} is not JSON: {e}",
                          reason="BAD_CONFIG") from e
    if cfg is not None and not isinstance(cfg, dict):
        raise OtakitError(f"--device-config {device_config} is not a JSON object",
                          reason="BAD_CONFIG")
    algs, repo_facts = _repo_facts(repo) if repo else (None, None)
    command = ["otakit", "compliance", "report", "--out", out]
    for flag, value in (("--junit", junit), ("--device-config", device_config),
                        ("--repo", repo), ("--board", board), ("-n", jobs)):
        if value:
            command += [flag, value]
    for pid in pids:
        command += ["--provision", pid]
    command += ["--pdf"] if pdf else []
    commands = [shlex.join(command)]
    record = compliance.facts()
    selected = list(pids) or None
    if junit is None:
        outdir.mkdir(parents=True, exist_ok=True)
        tests = compliance.mapped_tests(selected)
        click.echo(f"running the {len(tests)} mapped tests...")
        results = compliance.run_tests(tests, outdir / "junit.xml", record, jobs)
        commands.append(f"(in the otakit checkout) {results.run['command']}")
    else:
        results = compliance.verify_results(Path(junit).resolve())
        if results.run.get("command"):
            commands.append(f"(in the otakit checkout) {results.run['command']}")
    ixit = all_drafts(load_board(board), cfg, algs, repo_facts)
    verdicts = compliance.write(outdir, results, record, commands, ixit, cfg, selected, pdf)
    counts = {v: sum(p.verdict == v for p in verdicts) for v in
              (compliance.PASS, compliance.FAIL, compliance.NA, compliance.INCONCLUSIVE,
               compliance.UNVERIFIED)}
    files = ["report.md", "report.html", "report.json"] + (["report.pdf"] if pdf else [])
    click.echo(", ".join(f"{n} {v}" for v, n in counts.items() if n) + " ("
               + ("results VERIFIED" if results.verified else "results UNVERIFIED: "
                  + results.why) + "): " + ", ".join(str(outdir / f) for f in files))


COMMANDS = [compliance_group]
