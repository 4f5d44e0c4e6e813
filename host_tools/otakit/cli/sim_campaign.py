"""otakit CLI: ``sim campaign`` (a power cut at every flash operation of an update)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import click

from otakit.errors import OtakitError
from otakit.sim import campaign as camp


def _cuts(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        cuts = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of op numbers") \
            from None
    if any(c < 1 for c in cuts):
        raise click.BadParameter("op numbers start at 1")
    return cuts


@click.command("campaign")
@click.option("--full", is_flag=True, help="Cut at every flash operation of every scenario.")
@click.option("--per-kind", default=3, show_default=True, type=click.IntRange(2),
              help="Reduced campaign: cut at N ops of every kind (erase, program, NVS record, "
                   "NVS commit, otadata, vfs) in every phase of the download, plus every op "
                   "from its end on.")
@click.option("--doubles", type=click.IntRange(0),
              help="Runs per scenario with a second cut during the recovery [default: 100 with "
                   "--full, else 5].")
@click.option("--brownouts", type=click.IntRange(0),
              help="Runs per scenario where the cut also tears the op before it [default: 50 "
                   "with --full, else 3].")
@click.option("--brownout", is_flag=True, help="With --cut: the cut is a brown-out.")
@click.option("--scenario", "scenarios", multiple=True, type=click.Choice(list(camp.SCENARIOS)),
              help="Scenario(s) to run [default: small and rollback; with --full: all].")
@click.option("--cut", callback=_cuts, help="Run one cut point (e.g. 92 or 92,130) and judge it.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the report.")
@click.option("--workers", default=os.cpu_count() or 2, show_default=True,
              type=click.IntRange(1), help="Runs in parallel.")
@click.option("--verbose", is_flag=True, help="With --cut: print the device log.")
@click.option("--first-failure", is_flag=True, help="Stop at the first run that fails.")
def campaign_cmd(full: bool, per_kind: int, doubles: int | None,  # noqa: PLR0913
                 brownouts: int | None, brownout: bool, scenarios: tuple[str, ...],
                 cut: tuple[int, ...], json_out: str | None, workers: int,
                 verbose: bool, first_failure: bool) -> None:
    """Cut the power at flash operations of a whole update and judge every outcome.

    For each scenario, a golden run counts the mutating flash operations of an update cycle;
    then each cut point is a run from the same start with the power cut there, powered on again
    until it settles. An oracle reading the flash image checks that only signed images boot,
    that nothing boot-loops, that the update completes (or the bad release is refused), that the
    anti-rollback floor never decreases, that the user's files and the last confirmed image are
    intact, that no unconfirmed image runs as a normal boot and that an interruption costs a
    bounded number of payload bytes (docs/reliability.md).
    Exits 1 if any cut point fails.
    """
    if cut:
        _one(scenarios[0] if scenarios else "small", cut, verbose, brownout)
        return
    names = list(scenarios) or (list(camp.SCENARIOS) if full else ["small", "rollback"])
    report = camp.run_campaign(names, full=full, per_kind=per_kind,
                               doubles=(100 if full else 5) if doubles is None else doubles,
                               brownouts=(50 if full else 3) if brownouts is None else brownouts,
                               workers=workers, progress=click.echo,
                               first_failure=first_failure)
    d = report.to_dict()
    if json_out:
        Path(json_out).write_text(json.dumps(d, indent=2) + "\n")
    for name, s in d["scenarios"].items():
        click.echo(f"{name}: {s['image_bytes']} B image, {s['golden_ops']} flash ops, "
                   f"{s['survived']}/{s['cut_points']} cut points survived "
                   f"({s['double_cuts']} with a second cut, {s['brownouts']} brown-outs) in "
                   f"{s['seconds']} s")
    click.echo(f"total: {d['survived']}/{d['cut_points']} survived in {d['seconds']} s")
    for f in d["failures"]:
        click.echo(f"FAILED: {f['command']}\n  " + "\n  ".join(f["problems"]), err=True)
    if d["failures"]:
        raise OtakitError(f"{len(d['failures'])} cut point(s) failed", reason="CAMPAIGN_FAILED")


def _one(name: str, cuts: tuple[int, ...], verbose: bool, brownout: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="otakit-campaign-"))
    bench = camp.Bench(work, camp.SCENARIOS[name])
    try:
        ops, _, _ = camp.golden(bench)
        outcome, result = bench.run(cuts, brownout=brownout)
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)
    if verbose:
        click.echo(result.log, nl=False)
    click.echo(f"{name}: golden run {ops} flash ops; cut at {','.join(map(str, cuts))}: "
               f"{len(result.boots)} boots, " + ("survived" if outcome.survived else "FAILED"))
    for p in outcome.problems:
        click.echo("  " + p, err=True)
    if not outcome.survived:
        raise OtakitError("the oracle found problems", reason="CAMPAIGN_FAILED")
