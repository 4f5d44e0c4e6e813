"""otakit CLI: ``support publish`` (the support period statement)."""

from __future__ import annotations

import click

from otakit.cli._output import echo_json, json_option

from otakit.errors import OtakitError
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
@json_option
def support_publish(repo: str, product: str, model: str, end: str | None, manufacturer: str,
                    first_release: str | None, update_url: str, contact: str,
                    as_json: bool) -> None:
    """Write the support statement (HTML page, JSON, box-label text) into the repository."""
    r = Repository(repo)
    if not r.root.is_dir():
        raise OtakitError(f"no release repository at {repo}", reason="NO_REPO")
    st = plan_support(r, product, model, end, manufacturer=manufacturer,
                      first_release=first_release, update_url=update_url, contact=contact)
    for w in st.warnings:
        click.echo(f"otakit: warning: {w}", err=True)
    d = publish_support(r, st)
    if as_json:
        echo_json({"product": product, "model": model, "end": st.end,
                   "warnings": list(st.warnings),
                   "files": [str(d / n) for n in ("index.html", "support.json", "label.txt")]})
        return
    click.echo(f"published: {model} supported until {st.end} ({st.end_month_year})")
    for name in ("index.html", "support.json", "label.txt"):
        click.echo(f"  {d / name}")


COMMANDS = [support]
