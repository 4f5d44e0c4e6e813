"""Release-to-fleet latency (ETSI EN 303 645 5.3-8 evidence): from a release's publication to each
device's first report of it installed, out of a real telemetry store fed real reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleethelpers import SIZE, STEP, device_id, step
from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.fleet import Fleet
from otakit.fleetlatency import percentile, release_latency
from otakit.sim.lab import PRODUCT, Lab
from otakit.telemetry import open_store, parse_report

UID = b"\x24\x0a\xc4\x00\x00\x07"


def _report(device: str, seq: int, events: list[dict], channel: str = "stable") -> bytes:
    return json.dumps({"v": 1, "id": device, "product": PRODUCT, "board": "esp32",
                       "channel": channel, "seq": seq, "events": events}).encode()


def test_percentiles_of_the_devices_that_reported_the_release(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "fleet.sqlite3"))
    with Lab(tmp_path / "lab") as lab:
        pub = lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        t0 = pub.body.created
        # 20 devices report the release installed 1..20 hours after its publication; each also
        # reports it confirmed later, which does not count again.
        for i in range(1, 21):
            dev = f"device-{i:04d}"
            store.add(parse_report(_report(dev, 2, [
                {"e": "offered", "seq": 2, "ms": 30, "ver": "1.1.0"},
                {"e": "installed", "seq": 2, "ms": 9000}])), t0 + 3600 * i)
            store.add(parse_report(_report(dev, 2, [{"e": "confirmed", "seq": 2, "ms": 5}])),
                      t0 + 3600 * i + 600)
        # one that only saw the offer, one that failed, one on another channel: not installed
        store.add(parse_report(_report("device-late", 1, [
            {"e": "offered", "seq": 2, "ms": 30, "ver": "1.1.0"}])), t0 + 60)
        store.add(parse_report(_report("device-fail", 1, [
            {"e": "failed", "seq": 2, "ms": 30, "reason": "HASH_MISMATCH"}])), t0 + 60)
        store.add(parse_report(_report("device-beta", 2, [
            {"e": "installed", "seq": 2, "ms": 30}], channel="beta")), t0 + 60)
        lat = release_latency(store, lab.repo, PRODUCT, "esp32")
    store.close()
    assert (lat.sequence, lat.version, lat.published) == (2, "1.1.0", t0)
    assert (lat.devices, lat.known) == (20, 22)
    hours = [3600 * i for i in range(1, 21)]
    assert (lat.p50, lat.p90, lat.p99, lat.max) == (10 * 3600, 18 * 3600, 20 * 3600, 20 * 3600)
    assert [percentile(hours, p) for p in (50, 90, 99)] == [lat.p50, lat.p90, lat.p99]


def test_a_simulated_device_reports_and_the_cli_shows_the_latency(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "fleet.sqlite3"
    store = open_store(str(db))
    with Lab(tmp_path / "lab", fleet=Fleet(store=store)) as lab:
        (lab.work / "step.py").write_text(STEP)
        lab.flash(make_app_image("1.0.0", size=SIZE), uid=UID, checks=2)
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        assert step(lab).last.version == "1.1.0"
        argv = ["latency", "--telemetry", str(db), "--repo", str(lab.repo.root), "--product",
                PRODUCT, "--board", "esp32"]
        assert main([*argv, "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["ok"] and (got["sequence"], got["devices"], got["known"]) == (2, 1, 1)
        assert got["p50"] == got["p90"] == got["p99"] >= 0
        assert store.first_reports(PRODUCT, "esp32", "stable", 2, ["confirmed"]).keys() == {
            device_id(UID)}
        assert main(argv) == 0
        assert "installed on 1 of 1 known device(s); from publication" in capsys.readouterr().out
        # no store, no release: one line each, exit 1
        assert main([*argv[:2], str(tmp_path / "none.sqlite3"), *argv[3:]]) == 1
        assert main([*argv[:-1], "esp32s3"]) == 1
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith("otakit: NOT_FOUND: no telemetry store")
        assert err[1] == "otakit: NOT_FOUND: doorlock/esp32s3/stable has no release"
    store.close()
