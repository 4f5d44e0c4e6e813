"""otakit CLI: ``support publish`` and ``compliance report``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from otakit import compliance
from otakit.boards import available_boards
from otakit.errors import OtakitError
from otakit.manifest import parse_unverified
from otakit.paths import ROOT
from otakit.repo import Repository
from otakit.support import plan_support, publish_support


@click.group()
def support() -> None:
    """The published support period (EN 303 645 5.3-13, CRA Art. 13(8))."""


@support.command("publish")
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Repository dir.")
@click.option("--product", required=True, help="Product name as in the manifests.")
@click.option("--model", required=True, help="Model designation, as on the device's label.")
@click.option("--end", help="End of the support period, YYYY-MM-DD [default: the latest "
              "support_end signed in the product's manifests].")
@click.option("--manufacturer", default="", help="Manufacturer name.")
@click.option("--first-release", help="Date of the first release, YYYY-MM-DD [default: from "
              "the history, else the earliest manifest].")
@click.option("--update-url", default="", help="Where the devices get their updates.")
@click.option("--contact", default="", help="Contact for questions and security reports.")
def support_publish(repo: str, product: str, model: str, end: str | None, manufacturer: str,
                    first_release: str | None, update_url: str, contact: str) -> None:
    """Write the support statement (HTML page, JSON, box-label text) into the repository."""
    r = Repository(repo)
    if not r.root.is_dir():
        raise OtakitError(f"no release repository at {repo}", reason="NO_REPO")
    st = plan_support(r, product, model, end, manufacturer=manufacturer,
                      first_release=first_release, update_url=update_url, contact=contact)
    for w in st.warnings:
        click.echo(f"warning: {w}", err=True)
    d = publish_support(r, st)
    click.echo(f"published: {model} supported until {st.end} ({st.end_month_year})")
    for name in ("index.html", "support.json", "label.txt"):
        click.echo(f"  {d / name}")


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
    cfg = json.loads(Path(device_config).read_text()) if device_config else None
    algs = None
    if repo:
        algs = sorted({parse_unverified(p.read_bytes()).envelope.alg
                       for p in Repository(repo).manifests()})
    rows = compliance.write_report(outdir, compliance.read_junit(Path(junit)), junit, cfg, algs,
                                   board)
    counts = {s: sum(r.status == s for r in rows) for s in (compliance.MET, compliance.NA,
                                                           compliance.NOT_MET)}
    click.echo(f"{counts['met']} met, {counts['not applicable']} not applicable, "
               f"{counts['not met']} not met: {outdir / 'report.md'}, {outdir / 'report.html'}")


COMMANDS = [support, compliance_group]
