"""Cohorts and pins (docs/format.md §2.7): `otakit rollout cohort` / `pin` re-sign the channel's
manifest; simulated boards in the cohort take the release, the others hold (NOT_IN_COHORT)
without fetching a payload byte; a pinned board holds (PINNED), also on the next release. The
device's parsing of the fields is strict and bounded, on the real MicroPython unix port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleethelpers import SIZE, STEP, blob_gets, device_id, statuses, step
from otakit import rollout
from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.errors import RepoError
from otakit.keys import generate_key, write_keypair
from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR
from otakit.sim.lab import PRODUCT, Lab


def uid(i: int) -> bytes:
    return b"\x24\x0a\xc4\x00\x02" + bytes([i])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with Lab(tmp_path_factory.mktemp("cohort") / "lab") as the_lab:
        (the_lab.work / "step.py").write_text(STEP)
        yield the_lab


def run_device(lab: Lab, i: int) -> tuple[str, dict]:
    lab.flash(make_app_image("1.0.0", size=SIZE), uid=uid(i), origin=(1, 0))
    result = step(lab)
    assert f"DEVICE {device_id(uid(i))}" in result.log, result.log
    return result.last.version, statuses(result)[-1]


def test_cohort_and_pins_on_simulated_boards(lab: Lab, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", "pw")
    key = write_keypair(lab.key, tmp_path / "keys", "release", b"pw")[0]
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    where = ["--repo", str(lab.repo.root), "--product", PRODUCT, "--board", lab.board.name,
             "--key", str(key)]
    assert main(["rollout", "cohort", "add", *where, "--name", "canary",
                 device_id(uid(1)), device_id(uid(2))]) == 0
    assert "cohort canary (2 devices)" in capsys.readouterr().out
    assert main(["rollout", "cohort", "remove", *where, "--name", "canary",
                 device_id(uid(2))]) == 0
    body = lab.repo.current(PRODUCT, lab.board.name, lab.channel)
    assert body is not None and body.extra["cohort"]["members"] == [
        rollout.member(device_id(uid(1)))]

    version, st = run_device(lab, 2)  # not in the cohort: holds, fetches no payload
    assert version == "1.0.0" and (st["state"], st["reason"]) == ("held", "NOT_IN_COHORT")
    assert "cohort canary" in st["detail"] and blob_gets(lab) == 0
    version, st = run_device(lab, 1)  # the member takes it
    assert version == "1.1.0" and st["state"] == "up_to_date" and blob_gets(lab) == 1

    assert main(["rollout", "cohort", "clear", *where]) == 0
    assert main(["rollout", "pin", *where, device_id(uid(3)), "1"]) == 0
    assert "1 pinned device(s)" in capsys.readouterr().out
    version, st = run_device(lab, 3)
    assert version == "1.0.0" and (st["state"], st["reason"]) == ("held", "PINNED")
    # the pin outlives the release: the next one keeps it; the cohort does not
    lab.publish(make_app_image("1.2.0", size=SIZE), "1.2.0", 3)
    body = lab.repo.current(PRODUCT, lab.board.name, lab.channel)
    assert body is not None and "cohort" not in body.extra and len(body.extra["pins"]) == 1
    version, st = run_device(lab, 3)
    assert version == "1.0.0" and st["reason"] == "PINNED"
    blobs = blob_gets(lab)
    assert main(["rollout", "unpin", *where, device_id(uid(3))]) == 0
    version, st = run_device(lab, 3)
    assert version == "1.2.0" and blob_gets(lab) == blobs + 1


def test_host_refusals(lab: Lab) -> None:
    lab.publish(make_app_image("2.0.0", size=SIZE), "2.0.0", 10)
    w = (PRODUCT, lab.board.name, lab.channel)
    for bad in (lambda: rollout.cohort(lab.repo, w, lab.key, "Canary", add=["abcdefgh1"]),
                lambda: rollout.cohort(lab.repo, w, lab.key, "c", add=["short"]),
                lambda: rollout.pin(lab.repo, w, lab.key, "abc def ghi", 1)):
        with pytest.raises(RepoError) as e:
            bad()
        assert e.value.reason == "BAD_ARGUMENT"
    ids = [f"device-{i:04d}" for i in range(65)]
    rollout.cohort(lab.repo, w, lab.key, "big", add=ids[:64])
    with pytest.raises(RepoError, match="at most 64"):
        rollout.cohort(lab.repo, w, lab.key, "big", add=ids[64:])
    with pytest.raises(RepoError, match="cohort 'big'"):
        rollout.cohort(lab.repo, w, lab.key, "other", add=ids[:1])
    with pytest.raises(RepoError) as e:
        rollout.cohort(lab.repo, w, generate_key("ed25519"), None)
    assert e.value.reason == "VERIFY_FAILED"


# fields.fill on decoded bodies, then fleet.held for a device id; one line per case.
SCRIPT = r"""
import sys, json
from ota.manifest import Manifest
from ota.fields import fill
from ota.errors import ManifestError
cases = json.loads(sys.stdin.read())
for body, dev in cases:
    m = Manifest()
    try:
        fill(m, "ed25519", b"12345678", body)
    except ManifestError as e:
        print(e.reason, e.detail)
        continue
    from ota.fleet import held
    print("HELD", json.dumps(held(m, dev)))
"""

BASE = {"product": "doorlock", "board": "esp32", "chip_id": 0, "channel": "stable",
        "version": "1.1.0", "sequence": 5, "security_version": 0, "created": 1,
        "support_end": "2031-12-31", "revision": 1,
        "payload": {"path": "blobs/sha256/x", "size": 10, "sha256": "0" * 64,
                    "encoding": "raw"}}


def test_device_parsing_is_strict_and_bounded(tmp_path: Path) -> None:
    me, other = "0123456789abcdef01234567", "fedcba9876543210fedcba98"
    h = rollout.member(me)
    cases = [
        ({**BASE, "cohort": {"name": "canary", "members": [h]}}, me),
        ({**BASE, "cohort": {"name": "canary", "members": [h]}}, other),
        ({**BASE, "pins": [{"member": h, "sequence": 4}]}, me),
        ({**BASE, "pins": [{"member": h, "sequence": 5}]}, me),
        ({**BASE, "pins": [{"member": h, "sequence": 4}]}, other),
        ({**BASE, "cohort": {"name": "c", "members": ["0" * 16] * 64}}, other),
        ({**BASE, "cohort": {"name": "c", "members": ["0" * 16] * 65}}, me),
        ({**BASE, "cohort": {"name": "c", "members": []}}, me),
        ({**BASE, "cohort": {"name": "c", "members": [h.upper()]}}, me),
        ({**BASE, "cohort": {"name": "c", "members": [h + "0"]}}, me),
        ({**BASE, "cohort": {"name": "c", "members": [1]}}, me),
        ({**BASE, "cohort": {"name": "C!", "members": [h]}}, me),
        ({**BASE, "cohort": [h]}, me),
        ({**BASE, "pins": [{"member": h, "sequence": True}]}, me),
        ({**BASE, "pins": [{"member": h}]}, me),
        ({**BASE, "pins": [{"member": h, "sequence": 1}] * 33}, me),
        ({**BASE, "pins": {"member": h, "sequence": 1}}, me),
    ]
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    r = run_micropython([str(path)], path=[FIRMWARE_DIR], input_data=json.dumps(cases).encode(),
                        timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode().splitlines()
    assert out[0] == "HELD null"  # a member: offered
    assert out[1].startswith('HELD ["NOT_IN_COHORT"')
    assert out[2].startswith('HELD ["PINNED", "this device is pinned to sequence 4"')
    assert out[3:5] == ["HELD null"] * 2  # pinned at this sequence; another device
    assert out[5].startswith('HELD ["NOT_IN_COHORT"')  # 64 members parse
    assert out[6:] == ["BAD_BODY cohort.members"] * 5 + ["BAD_BODY name", "BAD_BODY cohort",
                                                         "BAD_BODY sequence",
                                                         "BAD_BODY missing sequence",
                                                         "BAD_BODY pins", "BAD_BODY pins"]
