"""The reduced power-cut campaign (`otakit sim campaign`): what `make test` runs on every change.

Every 10th flash operation of a whole update cycle plus every operation from the end of the
download on (set_boot, reboot, trial, confirm, floor and state writes), for a normal update, for
a release whose image crashes (rollback), for the update after one the agent installed (second:
back into ota_0, over the NVS state the first left) and for the example door-lock app's own update
loop (app), plus a few second cuts during the recovery from a first; the oracle
(otakit.sim.campaign) must find nothing. `make campaign` cuts at every op.
"""

from __future__ import annotations

from pathlib import Path

from otakit.sim.campaign import cut_plan, run_campaign


def test_cut_plan_samples_and_keeps_the_install_phase() -> None:
    assert cut_plan(30, 25, full=True, every=10) == list(range(1, 31))
    assert cut_plan(30, 25, full=False, every=10) == [1, 11, 21, 25, 26, 27, 28, 29, 30]


def test_reduced_campaign_survives_every_cut(tmp_path: Path) -> None:
    report = run_campaign(["small", "rollback", "second", "app"], full=False, every=10, doubles=4, workers=2,
                          work=tmp_path)
    d = report.to_dict()
    assert d["cut_points"] > 200 and d["double_cuts"] >= 12
    assert d["failures"] == [] and d["survived"] == d["cut_points"]
    for s in d["scenarios"].values():
        assert s["golden_ops"] > s["download_done_at_op"] > 0
        assert 0 < s["seconds"] <= d["seconds"]
