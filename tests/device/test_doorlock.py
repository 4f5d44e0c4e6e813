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

from doorlock_local import CLIENT, answers, free_port, info

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


# The real app with its update loop, and no update server at all (nothing listens on the
# configured port). A press is held for 40 ms in every 200 ms of wall-clock time, whatever the
# app is doing: a press the lock does not see while it is held is missed. Every check is counted.
OFFLINE = """\
import time, doorlock, ota.agent, ota.agentops

class Button:
    def value(self):
        return 0 if time.ticks_ms() % 200 < 40 else 1

toggles = []
orig_init, orig_toggle = doorlock.Lock.__init__, doorlock.Lock.toggle
orig_check = ota.agentops.check  # Agent.check() lives there (ota.agent.Agent.__getattr__)

def init(self):
    orig_init(self)
    self.button = Button()

def toggle(self):
    orig_toggle(self)
    toggles.append(time.ticks_ms())

async def check(self):
    offer = await orig_check(self)
    s = self.status()
    print("CHECK %s %s" % (s["state"], s["reason"]))
    return offer

doorlock.Lock.__init__, doorlock.Lock.toggle = init, toggle
ota.agent.Agent.check = check
doorlock.main()
print("OFFLINE %d %d" % (len(toggles), time.ticks_diff(toggles[-1], toggles[0])))
"""


def test_lock_works_with_no_update_server(lab: Lab) -> None:
    # ETSI EN 303 645 5.9-2: locally functional without the network. Three checks fail (the
    # retry comes after about a second), and the lock is served before, between and after.
    lab.flash(make_app_image("1.0.0", size=SIZE), url="http://127.0.0.1:9", max_checks=3,
              retry_s=1)
    script = lab.work / "offline.py"
    script.write_text(OFFLINE)
    result = lab.boot(script=script, heapsize=HEAP, max_boots=1)
    assert result.ended == "finished" and not result.error, result.log[-2000:]
    assert re.findall(r"^CHECK (\w+) (\w+)$", result.log, re.M) == [("failed", "NETWORK")] * 3
    toggles, span_ms = map(int, re.findall(r"^OFFLINE (\d+) (\d+)$", result.log, re.M)[0])
    assert span_ms >= 1000  # from the first press served to the last, across the checks
    assert toggles == round(span_ms / 200) + 1  # and none missed in between


# The real app's update loop, where the heap runs out twice: once in the first check (the
# check's Slot()), once in the next install (after 20 blocks in flash), where recording it runs
# out too. A MemoryError in an update must not end the app (a door lock that stops at an
# update's MemoryError is locked out).
NO_HEAP = """\
import esp32, doorlock, ota.agent, ota.agentops, ota.state
P = esp32.Partition
orig_next, orig_write = P.get_next_update, P.writeblocks
orig_check = ota.agentops.check
hits = {"check": 0, "writes": 0, "checks": 0}

def get_next_update(self):
    if hits["check"] == 1:
        hits["check"] = 2
        raise MemoryError("memory allocation failed (injected)")
    return orig_next(self)

def writeblocks(self, block, buf, offset=None):
    if offset is None and self.info()[4] == "ota_1":
        hits["writes"] += 1
        if hits["writes"] == 21:
            raise MemoryError("memory allocation failed (injected)")
    return orig_write(self, block, buf) if offset is None else orig_write(self, block, buf, offset)

async def check(self):
    hits["checks"] += 1
    if hits["checks"] == 1:
        hits["check"] = 1
    offer = await orig_check(self)
    s = self.status()
    print("CHECK %s %s" % (s["state"], s["reason"]))
    return offer

def set_last(self, reason, detail=""):  # recording the install's NO_MEMORY runs out too
    if reason == "NO_MEMORY" and hits["writes"] >= 21 and "last" not in hits:
        hits["last"] = 1
        raise MemoryError("memory allocation failed (injected, recording it)")
    from ota import stateops
    return stateops.set_last(self, reason, detail)

P.get_next_update, P.writeblocks = get_next_update, writeblocks
ota.agent.Agent.check = check
ota.state.State.set_last = set_last
doorlock.main()
print("APP-ENDED")
"""


def test_lock_survives_an_update_that_runs_out_of_heap(lab: Lab) -> None:
    size = 256 * 1024
    new = make_app_image("1.1.0", size=size)
    lab.publish(new, "1.1.0", 2)
    lab.flash(make_app_image("1.0.0", size=size), max_checks=3, check_s=1, first_s=0)
    script = lab.work / "noheap.py"
    script.write_text(NO_HEAP)
    result = lab.boot(script=script, heapsize=HEAP, max_boots=2)
    first = result.log.split("--- boot 2")[0]
    assert "Traceback" not in first, first[-3000:]
    # the check and the install that ran out fail with NO_MEMORY; the app goes on and the
    # third check installs, resuming after the blocks the failed install left in flash
    checks = re.findall(r"^CHECK (\w+) (\w+)$", first, re.M)
    assert checks[0] == ("failed", "NO_MEMORY") and [c[0] for c in checks[1:]] == \
        ["offered", "offered"], checks
    assert re.search(r"^app: notice failed: .*NO_MEMORY", first, re.M), first[-3000:]
    assert re.search(r"the check ran out of heap \(\d+ bytes free after it\)", result.log)
    assert "app: notice downloaded" in first
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log[-3000:]
    assert "app: boot confirmed ota_1" in result.log
    blobs = [status for _, path, status in lab.requests() if "/blobs/" in path]
    assert blobs == [200, 206], blobs  # the install after it resumed (a Range), not from 0


def test_device_info_names_model_and_running_firmware(lab: Lab) -> None:
    # ETSI EN 303 645 5.3-16: the model on the label, beside the product name, the hardware and
    # the firmware the board runs, on the app's local interface (lockui.py; asked at every boot,
    # so after the update it names the new image); 5.6-4: none of it on the serial console.
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    lab.flash(make_app_image("1.0.0", size=SIZE), uid=bytes(range(6)), model="DL-100",
              local_port=free_port())
    script = lab.work / "local_client.py"
    script.write_text(CLIENT)
    result = lab.boot(script=script, heapsize=HEAP, env={"OTAKIT_LOCAL": "GET /info"})
    infos = [body for status, body in answers(result, "GET /info") if "200" in status]
    assert len(infos) == 2, result.log[-3000:]
    before, after = (info(i) for i in infos)
    assert before["model"] == after["model"] == "DL-100"
    assert before["product"] == "doorlock"
    assert before["hardware"] == "esp32 (chip id 0)"
    assert before["firmware"] == "1.0.0 (ota_0)" and after["firmware"] == "1.1.0 (ota_1)"
    assert (before["release"], after["release"]) == ("0", "2")
    assert after["support until"] == "2031-12-31"
    assert len(before["device id"]) == 24 and before["device id"] == after["device id"]
    console = [line for line in result.log.splitlines() if not line.startswith("LOCAL ")]
    assert not [line for line in console if "DL-100" in line or "device id" in line]


# Writes ota_settings.json on the board's vfs: the bytes of the file OTAKIT_JUNK names, or, for
# "MB1", a megabyte of "[" (as much of it as the vfs holds).
JUNK = """\
import os
src = os.getenv("OTAKIT_JUNK")
with open("ota_settings.json", "wb") as f:
    if src.startswith("MB"):
        chunk = b"[" * 4096  # one buffer, written again and again
        try:
            for _ in range(int(src[2:]) * 256):
                f.write(chunk)
        except OSError:  # the vfs is full
            pass
    else:
        f.write(open(src, "rb").read())
print("JUNK %d" % os.stat("ota_settings.json")[6])
"""

_POSTPONED = {str(n): [1_700_000_000, 1_800_000_000] for n in range(199)}
_BAD_SETTINGS = {
    "postponed-199": json.dumps({"v": 1, "postponed": _POSTPONED}).encode(),
    "postponed-shapes": json.dumps({"postponed": {"x": 1, "2": "a", "3": [None, []]}}).encode(),
    "wrong-types": json.dumps({"auto_install": "yes", "window": [1, "2"], "tz_min": 1e9,
                               "notify": None, "auto_check": [], "v": "1"}).encode(),
    "huge-strings": json.dumps({"window": "x" * 3000, "auto_install": "y" * 1000}).encode(),
    "not-an-object": b"[1, 2, 3]",
    "invalid-json": b'{"auto_install": tru',
    "binary-junk": bytes(range(256)) * 4,
    "one-megabyte": b"MB1",
}


@pytest.mark.parametrize("kind", sorted(_BAD_SETTINGS))
def test_attack_malformed_settings(lab: Lab, kind: str) -> None:
    # Issue 15, attack 7: the user's settings file is data. The real app (doorlock.main with the
    # agent) boots on a malformed ota_settings.json, says so, keeps serving the lock and still
    # installs the offered update.
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    lab.flash(make_app_image("1.0.0", size=SIZE))
    data = _BAD_SETTINGS[kind]
    junk = lab.work / "junk.bin"
    junk.write_bytes(data)
    script = lab.work / "junk.py"
    script.write_text(JUNK)
    src = data.decode() if kind == "one-megabyte" else str(junk)
    w = lab.boot(script=script, max_boots=1, env={"OTAKIT_JUNK": src})
    assert w.ended == "finished" and not w.error, w.log
    result = lab.boot(heapsize=HEAP)
    assert not result.error and "Traceback" not in result.log, result.log[-3000:]
    assert re.search(r"^ota: BAD_SETTINGS: ota_settings.json[ :].*; using defaults$", result.log,
                     re.M), result.log[-3000:]
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log[-3000:]
    assert "app: boot confirmed" in result.log


@pytest.mark.parametrize(("board", "chip_id"), [("esp32s3", 9), ("esp32c3", 5)])
def test_example_app_updates_on_s3_and_c3(tmp_path: Path, board: str, chip_id: int) -> None:
    # The example app passes no chip id: the agent takes it from the running image's header,
    # so a release for the board's chip is installed and one for another chip refused.
    with Lab(tmp_path / "lab", board=board) as lab:
        chip = lab.board.chip
        lab.publish(make_app_image("1.1.0", size=SIZE, chip=chip), "1.1.0", 2)
        lab.flash(make_app_image("1.0.0", size=SIZE, chip=chip), local_port=free_port())
        script = lab.work / "local_client.py"
        script.write_text(CLIENT)
        result = lab.boot(script=script, heapsize=HEAP, env={"OTAKIT_LOCAL": "GET /info"})
        infos = [body for status, body in answers(result, "GET /info") if "200" in status]
        assert len(infos) == 2, result.log[-3000:]
        before, after = (info(i) for i in infos)
        assert before["hardware"] == f"{board} (chip id {chip_id})"
        assert after["firmware"] == "1.1.0 (ota_1)" and after["release"] == "2"
