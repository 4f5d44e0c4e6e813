"""Issue 15, attacks 1, 2, 3 and 11: replayed, validly signed documents must never move a device
backwards or sideways (docs/threat-model.md). Each test is the attack, driven through the real
agent on the simulated board with the loopback server; an attacker holds no signing key, so every
manifest here is one the vendor signed at some time (signed from raw JSON bodies).

What a user would notice is judged: the reason code the agent reports, which image runs, the
otadata entries, the agent's NVS records, status(), and whether anything was downloaded.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest
from scenario import HEAP, SIZE, blob_requests, last, otadata, prepare, step

from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.manifest import sign_manifest
from otakit.sim.lab import PRODUCT, SUPPORT_END, Lab
from otakit.sim.runner import RunResult

# Boot, then one check without installing (the user postponed it): the agent has seen the
# manifest. Prints the status like scenario.STEP.
CHECK_ONLY = """\
import json, ota
cfg = json.load(open("ota_config.json"))
ota.boot(checks=(), timeout_ms=5000)
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"]))
agent.check_sync()
print("STATUS " + json.dumps(agent.status()))
"""


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab") as the_lab:
        prepare(the_lab)
        the_lab.flash(image("1.0.0"))
        yield the_lab


def image(version: str, **kw: object) -> bytes:
    return make_app_image(version, size=SIZE, **kw)  # type: ignore[arg-type]


def signed(lab: Lab, img: bytes, *, version: str, sequence: int, revision: int,
           channel: str = "stable", security_version: int = 0,
           support_end: str = SUPPORT_END, created: int | None = None,
           **extra: object) -> bytes:
    """A manifest the vendor signed (raw JSON body, docs/format.md §2), its payload stored."""
    sha = hashlib.sha256(img).hexdigest()
    blob = lab.repo.payload_path(sha)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(img)
    body = {"product": PRODUCT, "board": lab.board.name, "chip_id": lab.board.chip_id,
            "channel": channel, "version": version, "sequence": sequence,
            "security_version": security_version, "revision": revision,
            "payload": {"path": f"blobs/sha256/{sha}", "size": len(img), "sha256": sha,
                        "encoding": "raw"},
            "created": created or int(time.time()), "support_end": support_end, **extra}
    return sign_manifest(json.dumps(body, separators=(",", ":")).encode(), lab.key)


def serve(lab: Lab, manifest: bytes) -> None:
    """What the device's stable URL answers (the vendor publishing, or an attacker replaying)."""
    lab.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    lab.manifest_path.write_bytes(manifest)


def check_only(lab: Lab) -> dict:
    script = lab.work / "check_only.py"
    script.write_text(CHECK_ONLY)
    result = lab.boot(script=script, heapsize=HEAP, max_boots=1)
    found = re.findall(r"^STATUS (.*)$", result.log, re.M)
    assert found, result.log
    return json.loads(found[-1])


def nothing_changed(lab: Lab, result: RunResult, version: str, blobs: int) -> None:
    # refused before any download: the same image runs, no reboot, nothing fetched
    assert result.last.version == version and len(result.boots) == 1, result.log
    assert len(blob_requests(lab)) == blobs


# --- 1. channel hop -------------------------------------------------------------------------

def test_attack_channel_hop(lab: Lab) -> None:
    serve(lab, signed(lab, image("1.1.0"), version="1.1.0", sequence=2, revision=1))
    assert "BOOT confirmed" in step(lab).log
    blobs = len(blob_requests(lab))
    # the signed beta manifest (higher sequence, its own channel's revisions) at the stable URL
    beta = signed(lab, image("2.0.0-beta"), version="2.0.0-beta", sequence=5, revision=40,
                  channel="beta")
    serve(lab, beta)
    result = step(lab)
    s = last(result)
    assert s["reason"] == "WRONG_CHANNEL" and "beta" in s["detail"]
    nothing_changed(lab, result, "1.1.0", blobs)
    assert lab.nvs()["seq"] == 2 and s["revision"] == 1  # stays on stable
    # the real stable security fix, with a sequence below beta's, then installs
    serve(lab, signed(lab, image("1.2.0"), version="1.2.0", sequence=3, revision=2,
                      security_version=1))
    result = step(lab)
    assert "BOOT confirmed" in result.log, result.log
    assert result.last.version == "1.2.0" and lab.nvs()["seq"] == 3
    assert last(result)["state"] == "up_to_date" and last(result)["revision"] == 2


def test_a_device_set_to_beta_takes_beta_and_starts_its_revisions_at_zero(lab: Lab) -> None:
    # changing channel is a setting: the other channel's revisions are its own
    serve(lab, signed(lab, image("1.1.0"), version="1.1.0", sequence=2, revision=30))
    assert "BOOT confirmed" in step(lab).log
    lab.channel = "beta"
    lab.provision()
    serve(lab, signed(lab, image("2.0.0-beta"), version="2.0.0-beta", sequence=5, revision=1,
                      channel="beta"))
    result = step(lab)
    assert "BOOT confirmed" in result.log, result.log
    assert result.last.version == "2.0.0-beta" and last(result)["revision"] == 1


# --- 2. undoing an abort or a pause ------------------------------------------------------------

def _undo(lab: Lab, state: str) -> None:
    created, img = int(time.time()), image("1.1.0")
    rollout = {"percent": 100, "salt": "r1", "state": "active"}
    active = signed(lab, img, version="1.1.0", sequence=2, revision=1, created=created,
                    rollout=rollout)
    serve(lab, active)
    s = check_only(lab)  # seen (offered), not installed yet
    assert s["state"] == "offered" and s["revision"] == 1
    # the operator withdraws it: the same release, sequence and created, re-signed
    serve(lab, signed(lab, img, version="1.1.0", sequence=2, revision=2, created=created,
                      rollout={**rollout, "state": state}))
    result = step(lab)
    assert last(result)["state"] == "held" and state in last(result)["detail"]
    assert last(result)["revision"] == 2
    blobs = len(blob_requests(lab))
    serve(lab, active)  # the attacker replays the earlier "active" manifest
    for _ in range(2):
        result = step(lab)
        assert last(result)["reason"] == "OLD_REVISION"
        nothing_changed(lab, result, "1.0.0", blobs)
    assert otadata(lab) == [(1, "VALID")] and "t_seq" not in lab.nvs()
    assert blobs == 0  # the withdrawn release was never downloaded


def test_attack_undo_abort(lab: Lab) -> None:
    _undo(lab, "aborted")


def test_attack_undo_pause(lab: Lab) -> None:
    _undo(lab, "paused")


def test_an_equal_revision_is_the_same_document(lab: Lab) -> None:
    doc = signed(lab, image("1.1.0"), version="1.1.0", sequence=2, revision=7)
    serve(lab, doc)
    assert "BOOT confirmed" in step(lab).log
    s = last(step(lab))  # the same document again: nothing new, processed normally
    assert s["state"] == "up_to_date" and s["reason"] is None and s["revision"] == 7


# --- 3. factory-fresh downgrade ------------------------------------------------------------------

def test_attack_factory_fresh_downgrade(lab: Lab, capsys: pytest.CaptureFixture) -> None:
    app = lab.work / "fw-1.9.0.bin"
    app.write_bytes(image("1.9.0"))
    # flashed at the factory with firmware built as sequence 10, security version 3
    assert main(["sim", "flash", "--board", lab.board.name, "--app", str(app), "--out",
                 str(lab.flash_path), "--sequence", "10", "--security-version", "3",
                 "--bare"]) == 0  # the lab provisions the board itself
    assert "born at sequence 10 security version 3" in capsys.readouterr().out
    lab.provision()
    assert "seq" not in lab.nvs() and "floor" not in lab.nvs()  # empty NVS
    # a replayed, validly signed manifest of an old, vulnerable release
    serve(lab, signed(lab, image("1.0.0"), version="1.0.0", sequence=1, revision=1))
    result = step(lab)
    assert last(result)["reason"] == "ROLLBACK" and "installed 10" in last(result)["detail"]
    nothing_changed(lab, result, "1.9.0", 0)
    # status() shows what the checks enforce (the firmware's own release), not the empty NVS
    assert (last(result)["installed_sequence"], last(result)["security_floor"]) == (10, 3)
    # a newer sequence built with an older security version
    serve(lab, signed(lab, image("1.9.1"), version="1.9.1", sequence=11, revision=2,
                      security_version=2))
    result = step(lab)
    assert last(result)["reason"] == "SECURITY_FLOOR" and "floor 3" in last(result)["detail"]
    nothing_changed(lab, result, "1.9.0", 0)
    # its own release is up to date; the next real one installs
    serve(lab, signed(lab, image("1.9.0"), version="1.9.0", sequence=10, revision=3,
                      security_version=3))
    assert last(step(lab))["state"] == "up_to_date" and blob_requests(lab) == []
    serve(lab, signed(lab, image("2.0.0"), version="2.0.0", sequence=11, revision=4,
                      security_version=3))
    result = step(lab)
    assert "BOOT confirmed" in result.log and result.last.version == "2.0.0"


def test_a_development_board_without_an_origin_starts_at_zero(lab: Lab) -> None:
    lab.flash(image("1.0.0"), origin=None)
    serve(lab, signed(lab, image("1.1.0"), version="1.1.0", sequence=1, revision=1))
    result = step(lab)
    assert "BOOT confirmed" in result.log and lab.nvs()["seq"] == 1


# --- 11. support end shortened by replay ---------------------------------------------------------

def test_attack_support_end_replay(lab: Lab) -> None:
    old = signed(lab, image("1.1.0"), version="1.1.0", sequence=2, revision=1,
                 support_end="2029-06-30")
    serve(lab, old)
    assert "BOOT confirmed" in step(lab).log
    serve(lab, signed(lab, image("1.2.0"), version="1.2.0", sequence=3, revision=2,
                      support_end="2031-12-31"))
    result = step(lab)
    assert "BOOT confirmed" in result.log and last(result)["support_end"] == "2031-12-31"
    serve(lab, old)  # the replayed old manifest with its earlier date
    s = last(step(lab))
    assert s["reason"] == "OLD_REVISION" and s["support_end"] == "2031-12-31"
    # any refused manifest, even the newest revision: a lower sequence
    serve(lab, signed(lab, image("1.1.0"), version="1.1.0", sequence=2, revision=3,
                      support_end="2029-06-30"))
    s = last(step(lab))
    assert s["reason"] == "ROLLBACK" and s["support_end"] == "2031-12-31"
    # even one that passes every check never moves it earlier; a later date extends it
    serve(lab, signed(lab, image("1.2.0"), version="1.2.0", sequence=3, revision=4,
                      support_end="2030-01-01"))
    s = last(step(lab))
    assert s["state"] == "up_to_date" and s["support_end"] == "2031-12-31"
    serve(lab, signed(lab, image("1.2.0"), version="1.2.0", sequence=3, revision=5,
                      support_end="2032-12-31"))
    assert last(step(lab))["support_end"] == "2032-12-31"
    assert lab.nvs()["eos"] == b"2032-12-31"
