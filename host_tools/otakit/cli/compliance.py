"""otakit CLI: ``compliance report`` (EN 303 645 §5.3 / CRA evidence)."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET  # noqa: N817
from pathlib import Path

import click

from otakit import compliance
from otakit.boards import available_boards
from otakit.errors import OtakitError
from otakit.manifest import parse_unverified
from otakit.paths import ROOT
from otakit.repo import Repository


@click.group("compliance")
def compliance_group() -> None:
    """Evidence for EN 303 645 §5.3 and CRA Annex I(2)(c)."""


@compliance_group.command("report")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output dir.")
@click.option("--junit", type=click.Path(exists=True, dir_okay=False),
              help="JUnit XML of a test run (pytest --junitxml); default: run the mapped tests.")
@click.option("--device-config", type=click.Path(exists=True, dir_okay=False),
              help="The device's provisioning file (ota_config.json) for the IXIT draft.")
@click.option("--repo", type=click.Path(file_okay=False),
              help="A release repository: its signature algorithms go into the IXIT draft.")
@click.option("--board", default="esp32", show_default=True,
              type=click.Choice(available_boards()),
              help="The board whose components the IXIT 6-SoftComp draft lists.")
def compliance_report(out: str, junit: str | None, device_config: str | None,
                      repo: str | None, board: str) -> None:
    """Write report.md, report.html and report.json (status, mechanism, tests per provision)."""
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    if junit is None:
        junit = str(outdir / "junit.xml")
        click.echo(f"running the {len(compliance.mapped_tests())} mapped tests...")
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={junit}", *compliance.mapped_tests()], cwd=ROOT,
                       check=False, stdout=subprocess.DEVNULL)
    try:
        cfg = json.loads(Path(device_config).read_text()) if device_config else None
    except ValueError as e:
        raise OtakitError(f"--device-config {device_config} is not JSON: {e}",
                          reason="BAD_CONFIG") from e
    algs = None
    if repo:
        algs = sorted({parse_unverified(p.read_bytes()).envelope.alg
                       for p in Repository(repo).manifests()})
    try:
        results = compliance.read_junit(Path(junit))
    except ET.ParseError as e:
        raise OtakitError(f"{junit} is not JUnit XML: {e}", reason="BAD_JUNIT") from e
    rows = compliance.write_report(outdir, results, junit, cfg, algs, board)
    counts = {s: sum(r.status == s for r in rows) for s in (compliance.MET, compliance.NA,
                                                           compliance.NOT_MET)}
    click.echo(f"{counts['met']} met, {counts['not applicable']} not applicable, "
               f"{counts['not met']} not met: {outdir / 'report.md'}, {outdir / 'report.html'}")


COMMANDS = [compliance_group]
