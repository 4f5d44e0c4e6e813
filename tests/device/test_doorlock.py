"""The example door lock on the simulated board: its essential function during an update, and the
user's settings and configuration across update and rollback.

Latency figures are recorded (``record_property`` and build/latency-test.json), not asserted:
`bench.latency` reports them with their ratio to the baseline. The tests assert only what is
functional: every press was served, during every phase of the update.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.paths import ROOT
from otakit.sim.lab import Lab
from otakit.sim.latency import measure

HEAP = "128K"
SIZE = 96 * 1024


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab") as the_lab:
        yield the_lab


def test_button_served_during_whole_update(lab: Lab, record_property) -> None:
    size = 512 * 1024
    lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
    lab.flash(make_app_image("1.0.0", size=size))
    lab.faults.rate = 128 * 1024  # a slow link, so the update lasts a few seconds
    lat, log = measure(lab, base=20)
    summary = lat.summary()
    for k, v in summary.items():
        record_property(k, v)
    out = ROOT / "build" / "latency-test.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    assert "notice downloaded" in log and "PHASE restart" in log
    assert summary["presses_update"] >= 10  # pressed, and served, all through the update
    assert max(lat.update) < 2000  # served, not given up on (the presser retries after 2 s)


# Boots: 1.0.0 (ota_0) writes the lock's v1 config and the user's settings, then updates; the new
# image (ota_1) has config schema 2 (auto_lock minutes -> auto_lock_s seconds). FAULT makes the
# new image's health check fail, so it rolls back.
MIGRATE = """\
import esp32, json, machine, ota, os
from ota.appconfig import ConfigStore
from ota.settings import Settings
P = esp32.Partition
new = P(P.RUNNING).info()[4] == "ota_1"

def to_v2(cfg, n):
    cfg = dict(cfg)
    cfg["auto_lock_s"] = cfg.pop("auto_lock") * 60
    return cfg

store = ConfigStore("lock_config.json", 2 if new else 1, migrate=to_v2)

def config_ok():
    c = store.load()
    print("TRIAL " + json.dumps({"seen": c, "commit": store.commit(),
                                 "file": json.load(open("lock_config.json"))}))
    return not (FAULT and new)

if "lock_config.json" not in os.listdir():
    json.dump({"schema": 1, "name": "Back door", "auto_lock": 2}, open("lock_config.json", "w"))
    Settings().set(auto_install=True, notify=True)
    Settings().set_window("00:00", "23:59", tz_min=60)
outcome, detail = ota.boot(checks=(config_ok,), timeout_ms=3000)
cfg = store.load()
print("AFTER " + json.dumps({"outcome": outcome, "running": "new" if new else "old",
                             "cfg": cfg, "commit": store.commit(),
                             "file": json.load(open("lock_config.json")),
                             "files": sorted(os.listdir()),
                             "settings": Settings().as_dict()}))
if outcome == "normal":
    c = json.load(open("ota_config.json"))
    agent = ota.Agent(ota.Config(c["url"], c["product"], c["board"]))
    if agent.update_sync():
        machine.reset()
"""


def _lines(log: str, tag: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(rf"^{tag} (.*)$", log, re.M)]


@pytest.mark.parametrize("fault", [False, True], ids=["confirm", "rollback"])
def test_config_migrated_only_after_confirm(lab: Lab, fault: bool) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    lab.flash(make_app_image("1.0.0", size=SIZE))
    script = lab.work / "migrate.py"
    script.write_text(MIGRATE.replace("FAULT", repr(fault)))
    result = lab.boot(script=script, heapsize=HEAP)
    trial = _lines(result.log, "TRIAL")
    after = _lines(result.log, "AFTER")
    v1 = {"schema": 1, "name": "Back door", "auto_lock": 2}
    # During the trial the new firmware works on a migrated copy; the file is untouched.
    new_trial = trial[-1]
    assert new_trial["seen"]["auto_lock_s"] == 120 and new_trial["seen"]["schema"] == 2
    assert new_trial["commit"] is False and new_trial["file"] == v1
    last = after[-1]
    assert last["settings"]["window"] == [0, 1439] and last["settings"]["tz_min"] == 60
    if fault:
        assert last["outcome"] == "rolled_back" and last["running"] == "old"
        assert last["file"] == v1 and last["cfg"] == v1  # intact and usable by the old firmware
    else:
        assert last["outcome"] == "confirmed" and last["running"] == "new"
        assert last["file"] == {"schema": 2, "name": "Back door", "auto_lock_s": 120}
        assert not any(f.startswith("lock_config.json.") for f in last["files"])
