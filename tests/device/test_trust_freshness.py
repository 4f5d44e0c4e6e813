"""Attacks 4 and 6 of issue 15 and the download deadline, through the real agent on the simulated
board and the real server (docs/threat-model.md): a 304 hiding a frozen channel, revocation
suppressed by a mirror, and a payload dripped slower than the minimum rate.

One agent lives for several checks of a boot (as the update loop's does), its clock set per
check (Agent.clock), while an app task keeps counting the turns it gets.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from scenario import HEAP, SIZE, blob_requests, prepare, statuses, write

from otakit.appimage import make_app_image
from otakit.keys import ED25519, PrivateKey, generate_key
from otakit.manifest import sign_manifest
from otakit.sim.lab import PRODUCT, SUPPORT_END, Lab
from otakit.sim.mitm import NOT_MODIFIED, TamperProxy
from otakit.sim.oracle import lab_kept_progress
from otakit.sim.runner import RunResult

# Confirm/roll back at boot, then one check (and install) per entry of cfg "clocks" (Unix
# seconds the device clock shows; 0: the real clock) with the same agent, printing its status
# (and the turns an app task got meanwhile) as one JSON line after each. cfg "extra": more
# ota.Config keywords.
SCRIPT = """\
import asyncio, json, machine, time, ota
cfg = json.load(open("ota_config.json"))
print("BOOT " + ota.boot(checks=(), timeout_ms=5000)[0])
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"],
                             **cfg.get("extra", {})))
turns = [0]
async def app():
    while True:
        turns[0] += 1
        await asyncio.sleep_ms(5)
async def update():
    t = asyncio.create_task(app())
    try:
        return await agent.update()
    finally:
        t.cancel()
for c in cfg.get("clocks", [0]):
    agent.clock = (lambda: c) if c else time.time
    turns[0] = 0
    installed = asyncio.run(update())
    s = agent.status()
    s["app_turns"] = turns[0]
    print("STATUS " + json.dumps(s))
    if installed:
        machine.reset()
"""


def run_checks(lab: Lab, **settings: object) -> RunResult:
    lab.provision(**settings)
    return lab.boot(script=lab.work / "checks.py", heapsize=HEAP)


def setup(lab: Lab) -> Lab:
    prepare(lab)
    (lab.work / "checks.py").write_text(SCRIPT)
    lab.flash(make_app_image("1.0.0", size=SIZE))
    return lab


def image(version: str) -> bytes:
    return make_app_image(version, size=SIZE)


def manifest_requests(lab: Lab) -> list[int]:
    return [status for _, path, status in lab.requests() if path.endswith("/manifest")]


def signed(lab: Lab, key: PrivateKey, sequence: int, **fields: object) -> bytes:
    """A manifest of version 1.<sequence>.0 from a raw JSON body (revision and min_keyring
    included), its payload stored, published at the lab's channel."""
    img = image(f"1.{sequence}.0")
    sha = hashlib.sha256(img).hexdigest()
    write(lab.repo.payload_path(sha), img)
    body = {"product": PRODUCT, "board": lab.board.name, "chip_id": lab.board.chip_id,
            "channel": lab.channel, "version": f"1.{sequence}.0", "sequence": sequence,
            "revision": sequence, "min_keyring": 0, "security_version": 0,
            "payload": {"path": f"blobs/sha256/{sha}", "size": len(img), "sha256": sha,
                        "encoding": "raw"},
            "created": int(time.time()), "expires": int(time.time()) + 30 * 86400,
            "support_end": SUPPORT_END, **fields}
    data = sign_manifest(json.dumps(body, separators=(",", ":")).encode(), key)
    write(lab.manifest_path, data)
    return data


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab", alg=ED25519) as the_lab:
        yield setup(the_lab)


# --- attack 4: a 304 hides a frozen channel ------------------------------------------------

def test_attack_304_frozen_channel(lab: Lab) -> None:
    now = int(time.time())
    lab.publish(image("1.1.0"), "1.1.0", 2, expires=now + 3600)
    # boot 1 installs 1.1.0; after the reset one agent checks twice: up to date, then (its clock
    # two hours on, the manifest expired meanwhile) the honest server's 304 for the same ETag
    result = run_checks(lab, clocks=[now, now + 7200])
    assert "BOOT confirmed" in result.log, result.log
    s = statuses(result)
    assert s[-2]["state"] == "up_to_date" and s[-2]["installed_sequence"] == 2
    assert manifest_requests(lab)[-1] == 304  # nothing new was sent ...
    assert s[-1]["state"] == "failed" and s[-1]["reason"] == "EXPIRED"  # ... yet it expired
    assert "expired" in s[-1]["detail"] and s[-1]["app_turns"] > 0

    # a man in the middle answers 304 to everything: with nothing cached (a fresh agent) it is
    # asked once more without If-None-Match, then refused; never "up to date"
    with TamperProxy(lab.url) as mitm:
        mitm.answer = lambda path: NOT_MODIFIED if path.endswith("/manifest") else None
        result = run_checks(lab, url=mitm.url, clocks=[now])
        s = statuses(result)
        assert [x["reason"] for x in s] == ["BAD_RESPONSE"] and s[0]["state"] == "failed"
        assert len([p for p in mitm.seen if p.endswith("/manifest")]) == 2
        # with a verdict cached from the real server, its 304s cannot outlive the expiry either
        seen = [0]

        def honest_first(path: str) -> bytes | None:
            if not path.endswith("/manifest"):
                return None
            seen[0] += 1
            return None if seen[0] == 1 else NOT_MODIFIED

        mitm.answer = honest_first
        s = statuses(run_checks(lab, url=mitm.url, clocks=[now, now + 1800, now + 7200]))
        assert [x["state"] for x in s] == ["up_to_date", "up_to_date", "failed"]
        assert s[-1]["reason"] == "EXPIRED" and seen[0] == 3
    assert lab.nvs()["seq"] == 2 and lab.state().next_boot == "ota_1"


# --- attack 6: revocation suppression --------------------------------------------------------

@pytest.fixture
def rooted(tmp_path: Path):
    """Firmware baking a root key (ROOTS) and, as KEYS, the lab's release key: the compromised
    key of this attack."""
    root = generate_key(ED25519)
    with Lab(tmp_path / "lab", alg=ED25519, roots=[root]) as the_lab:
        yield setup(the_lab)


def test_attack_revocation_suppression(rooted: Lab) -> None:
    lab = rooted
    compromised = lab.key  # baked into the firmware as KEYS
    # (A) a mirror without the keyring document: the baked key is not trusted on its own
    signed(lab, compromised, 2)
    result = run_checks(lab)
    s = statuses(result)[-1]
    assert s["reason"] == "KEYRING_REQUIRED" and "404" in s["detail"]
    assert s["keyring_version"] == 0 and blob_requests(lab) == []
    assert result.last.version == "1.0.0" and len(result.boots) == 1
    # ... nor when the mirror pretends the (never fetched) keyring did not change
    with TamperProxy(lab.url) as mitm:
        mitm.answer = lambda path: NOT_MODIFIED if path.endswith("/keyring") else None
        s = statuses(run_checks(lab, url=mitm.url))[-1]
        assert s["reason"] == "BAD_RESPONSE" and s["keyring_version"] == 0
    assert blob_requests(lab) == []

    # (B) keyring v1 trusts K (compromised later); it expires in an hour
    now = int(time.time())
    k, k2 = generate_key(ED25519), generate_key(ED25519)
    v1 = lab.sign_keyring([k], 1, expires=now + 3600)
    signed(lab, k, 2, min_keyring=1)
    result = run_checks(lab)
    assert "BOOT confirmed" in result.log, result.log
    assert statuses(result)[-1]["keyring_version"] == 1 and lab.nvs()["seq"] == 2
    blobs = len(blob_requests(lab))
    # a manifest that needs keyring v2 on a device holding v1
    signed(lab, k, 3, min_keyring=2)
    s = statuses(run_checks(lab))[-1]
    assert s["reason"] == "KEYRING_REQUIRED" and s["keyring_version"] == 1
    # K is revoked by v2, which the mirror suppresses (it keeps serving v1): K-signed manifests
    # are taken at the latest until v1 expires
    signed(lab, k, 4, min_keyring=1)
    s = statuses(run_checks(lab, clocks=[now + 7200]))[-1]
    assert s["reason"] == "EXPIRED" and "keyring" in s["detail"]
    assert lab.nvs()["seq"] == 2 and len(blob_requests(lab)) == blobs
    # v2 (without K) reaches the device ...
    lab.sign_keyring([k2], 2, expires=now + 86400)
    signed(lab, k2, 5, min_keyring=2)
    result = run_checks(lab)
    assert "BOOT confirmed" in result.log, result.log
    assert statuses(result)[-1]["keyring_version"] == 2 and lab.nvs()["seq"] == 5
    # ... after which a replayed v1 is refused, and K with it
    write(lab.repo.keyring_path(PRODUCT), v1)
    signed(lab, k, 6, min_keyring=1)
    result = run_checks(lab)
    s = statuses(result)[-1]
    assert s["reason"] == "KEYRING_ROLLBACK" and s["keyring_version"] == 2
    assert result.last.version == "1.5.0" and lab.nvs()["seq"] == 5


# --- bounded work: the download deadline ---------------------------------------------------------

def test_download_deadline_slow_drip(lab: Lab) -> None:
    lab.publish(image("1.1.0"), "1.1.0", 2)
    # 1 KB every 0.25 s (4 KB/s) against a deadline of 1 s + 64 KB / 64 KB/s = 2 s
    lab.faults.drip, lab.faults.only = (1024, 0.25), "/blobs/"
    extra = {"deadline_s": 1, "min_rate": 64 * 1024}
    result = run_checks(lab, extra=extra)
    s = statuses(result)[-1]
    assert s["state"] == "failed" and s["reason"] == "DEADLINE", s
    assert s["app_turns"] > 0 and len(result.boots) == 1 and result.last.version == "1.0.0"
    new = image("1.1.0")
    kept = lab_kept_progress(lab, hashlib.sha256(new).digest()[:8], len(new))
    assert 0 < kept < SIZE and kept % 4096 == 0  # the blocks in flash: a resume point
    assert kept == s["progress"]
    # a link at full speed: the download resumes there (with a new deadline) and installs
    lab.faults.clear()
    result = run_checks(lab, extra=extra)
    assert "BOOT confirmed" in result.log, result.log
    assert statuses(result)[0]["resumed_from"] == kept
    # the resume is a Range request (the cut-off first request is logged only once the server
    # notices the dropped connection, so it may be logged before or after it, or not yet)
    assert 206 in [st for _, _, st in blob_requests(lab)] and lab.nvs()["seq"] == 2
