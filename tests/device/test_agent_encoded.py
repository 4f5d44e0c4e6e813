"""Deflate and delta releases end to end: real server, real unix port, simulated flash.

Judged as in test_agent.py: which image runs, what the device asked the server for, the reason
code it reports, and what the flash holds (the running slot, the base of a delta, is never
written).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
from scenario import HEAP, blob_requests, last, otadata, prepare, statuses, step
from test_agent import SIZE

from otakit.appimage import make_app_image, rebuild_with_module
from otakit.payloads import deflate
from otakit.sim.lab import Lab
from otakit.sim.oracle import lab_kept_progress

OLD = make_app_image("1.0.0", size=SIZE, seed="firmware")
NEW = make_app_image("1.1.0", size=SIZE, seed="firmware")  # the same code, another version


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab") as the_lab:
        prepare(the_lab)
        the_lab.flash(OLD)
        yield the_lab


def slot_bytes(lab: Lab, label: str, n: int) -> bytes:
    part = lab.board.partition(label)
    return lab.flash_path.read_bytes()[part.offset:part.offset + n]


def fetched(lab: Lab) -> list[str]:
    return [path.rsplit("/", 1)[1] for _, path, _ in blob_requests(lab)]


def test_deflate_release_installs_from_the_compressed_payload(lab: Lab) -> None:
    image = make_app_image("1.1.0", size=SIZE, compressible=True)
    pub = lab.publish(image, "1.1.0", 2, deflate=True)
    (rep,) = pub.body.payloads
    assert rep.encoding == "deflate" and rep.size < len(image)
    result = step(lab)
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
    assert "BOOT confirmed" in result.log
    assert fetched(lab) == [rep.sha256]  # only the compressed payload went over the air
    assert slot_bytes(lab, "ota_1", len(image)) == image


def test_delta_release_is_applied_against_the_running_image(lab: Lab) -> None:
    pub = lab.publish(NEW, "1.1.0", 2, deflate=True, delta_bases=(OLD,))
    delta = next(r for r in pub.body.payloads if r.encoding == "delta")
    assert delta.size < SIZE // 50
    result = step(lab)
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
    assert fetched(lab) == [delta.sha256]
    assert slot_bytes(lab, "ota_1", len(NEW)) == NEW
    assert slot_bytes(lab, "ota_0", len(OLD)) == OLD  # the base was only read
    assert otadata(lab) == [(1, "VALID"), (2, "VALID")]


@pytest.mark.parametrize("also_deflate", [False, True], ids=["raw", "deflate"])
def test_wrong_base_falls_back_to_the_full_image(lab: Lab, also_deflate: bool) -> None:
    other = make_app_image("0.9.0", size=SIZE, seed="firmware")
    pub = lab.publish(NEW, "1.1.0", 2, deflate=also_deflate, delta_bases=(other,))
    result = step(lab)
    assert result.last.version == "1.1.0" and "BOOT confirmed" in result.log, result.log
    want = pub.body.payloads[0].sha256 if also_deflate else pub.body.payload.sha256
    assert fetched(lab) == [want]


def _tamper(blob: Path) -> None:
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x04
    blob.write_bytes(bytes(data))


def test_tampered_patch_is_refused_and_the_raw_image_installs(lab: Lab) -> None:
    pub = lab.publish(NEW, "1.1.0", 2, delta_bases=(OLD,))
    (delta,) = pub.body.payloads
    _tamper(pub.blobs[delta.sha256])
    result = step(lab)
    assert "ota: delta payload refused (HASH_MISMATCH" in result.log, result.log
    # the signed raw payload in the same check, not the broken delta again at every check
    assert fetched(lab) == [delta.sha256, pub.body.payload.sha256]
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
    assert slot_bytes(lab, "ota_1", len(NEW)) == NEW
    assert slot_bytes(lab, "ota_0", len(OLD)) == OLD


def test_tampered_patch_and_raw_payload_are_refused_and_boot_target_unchanged(lab: Lab) -> None:
    pub = lab.publish(NEW, "1.1.0", 2, delta_bases=(OLD,))
    (delta,) = pub.body.payloads
    _tamper(pub.blobs[delta.sha256])
    _tamper(lab.repo.payload_path(pub.body.payload.sha256))
    result = step(lab)
    assert len(result.boots) == 1
    last = statuses(result)[-1]
    assert last["reason"] == "HASH_MISMATCH", last
    assert otadata(lab) == [(1, "VALID")]
    assert lab.state().next_boot == "ota_0"
    assert slot_bytes(lab, "ota_0", len(OLD)) == OLD


def test_power_cut_during_delta_apply_keeps_the_base_and_completes_later(lab: Lab) -> None:
    lab.publish(NEW, "1.1.0", 2, delta_bases=(OLD,))
    flashed = lab.flash_path.read_bytes()
    dry = step(lab)
    assert [b.version for b in dry.boots] == ["1.0.0", "1.1.0"], dry.log
    total = dry.ops
    # the slot writes of the apply come first (NVS, otadata and confirmation after them)
    cuts = sorted({1, 2, 3, total // 8, total // 4, 3 * total // 8, total // 2, 3 * total // 4,
                   total - 2, total - 1})
    mid_apply = 0
    for cut in cuts:
        lab.flash_path.write_bytes(flashed)
        r = lab.boot(script=lab.work / "step.py", heapsize=HEAP, cut_at=cut,
                     restart_after_cut=False)
        assert r.ended == "power_cut", (cut, r.log)
        assert slot_bytes(lab, "ota_0", len(OLD)) == OLD, cut  # the base is never written
        part = slot_bytes(lab, "ota_1", len(NEW))
        done = sum(part[i:i + 4096] == NEW[i:i + 4096] for i in range(0, len(NEW), 4096))
        mid_apply += 0 < done < -(-len(NEW) // 4096)
        again = step(lab)  # power on again: boots a signed image, then finishes the update
        assert again.boots[0].version in ("1.0.0", "1.1.0"), (cut, again.log)
        assert again.last.version == "1.1.0", (cut, again.log)
        assert slot_bytes(lab, "ota_1", len(NEW)) == NEW, cut
        assert lab.nvs()["seq"] == 2, cut
    assert mid_apply >= 4  # the samples do hit the apply itself


# --- resume: an interrupted encoded download fetches at most one chunk again ------------------

def _blob_log(lab: Lab) -> list[tuple[int, int]]:
    """(status, body bytes sent) of every payload request, from the server's access log."""
    out = []
    for line in lab.access_log.getvalue().splitlines():
        parts = line.split()
        if len(parts) >= 6 and "/blobs/" in parts[3]:
            out.append((int(parts[4]), int(parts[5])))
    return out


def _interrupted_install(lab: Lab, old: bytes, new: bytes, encoding: str) -> None:
    """Publish ``new`` as ``encoding`` over ``old``, drop the connection late in the largest
    chunk but the first, then check again: the download resumes at that chunk's start and ends
    on the new image, having fetched at most that chunk's bytes twice."""
    lab.flash(old)
    if encoding == "deflate":
        pub = lab.publish(new, "1.1.0", 2, deflate=True)
    else:
        pub = lab.publish(new, "1.1.0", 2, delta_bases=(old,))
    (rep,) = pub.body.payloads
    assert rep.encoding == encoding and rep.chunk and rep.chunks and len(rep.chunks) >= 3
    k = max(range(1, len(rep.chunks)), key=lambda i: rep.chunks[i])
    offset = sum(rep.chunks[:k])
    drop = offset + rep.chunks[k] * 9 // 10  # late in chunk k: the most to fetch again
    lab.faults.drop_after = drop
    lab.faults.only = "/blobs/"
    first = step(lab)
    assert last(first)["reason"] == "SHORT_READ", first.log
    # the durable resume point (the progress records in the slot): chunk k's start
    assert lab_kept_progress(lab, bytes.fromhex(rep.sha256)[:8], len(new)) == k * rep.chunk
    lab.faults.clear()
    again = step(lab)
    assert len(again.boots) == 2 and "BOOT confirmed" in again.log, again.log
    assert lab.nvs()["seq"] == 2 and otadata(lab) == [(1, "VALID"), (2, "VALID")]
    assert slot_bytes(lab, "ota_1", len(new)) == new
    assert slot_bytes(lab, "ota_0", len(old)) == old
    log = _blob_log(lab)
    assert log == [(200, drop), (206, rep.size - offset)], log  # a Range from chunk k
    fetched_again = sum(n for _, n in log) - rep.size
    assert 0 < fetched_again <= rep.chunks[k] <= 65536 + 128  # 64 KB + one chunk's overhead


def test_interrupted_deflate_download_resumes_at_a_chunk(lab: Lab) -> None:
    old = make_app_image("1.0.0", size=384 * 1024, compressible=True)
    new = make_app_image("1.1.0", size=384 * 1024, compressible=True, seed="new")
    _interrupted_install(lab, old, new, "deflate")


def test_interrupted_delta_download_resumes_at_a_segment(lab: Lab) -> None:
    old = make_app_image("1.0.0", size=384 * 1024, compressible=True)
    # a relinked image with 100 KB of new code: the delta spans several segments
    new = rebuild_with_module(old, at=0.3, removed=1536, added=100_000)
    _interrupted_install(lab, old, new, "delta")


def test_real_micropython_rebuild_installs_as_a_delta(lab: Lab, real_firmware_dir: Path) -> None:
    v125 = (real_firmware_dir / "ESP32_GENERIC-OTA-20250415-v1.25.0.app.bin").read_bytes()
    rebuilt = rebuild_with_module(v125)
    lab.flash(v125)
    pub = lab.publish(rebuilt, "1.25.0-1", 2, deflate=True, delta_bases=(v125,))
    delta = next(r for r in pub.body.payloads if r.encoding == "delta")
    assert delta.size < len(rebuilt) // 100
    result = step(lab, timeout=180)
    assert "BOOT confirmed" in result.log, result.log
    assert fetched(lab) == [delta.sha256]
    assert slot_bytes(lab, "ota_1", len(rebuilt)) == rebuilt


# The app's side of an install: a task counting its turns while the agent checks and installs.
# (The decode's pacing itself is judged in test_encoded.py, on a clock the test moves.)
APP_STEP = """\
import asyncio, json, machine, ota
cfg = json.load(open("ota_config.json"))
outcome, detail = ota.boot(checks=(), timeout_ms=5000)
print("BOOT " + outcome)
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"]))
ticks = [0]

async def app():
    while True:
        ticks[0] += 1
        await asyncio.sleep_ms(0)

async def main():
    t = asyncio.create_task(app())
    installed = await agent.update()
    t.cancel()
    print("APP " + json.dumps({"ticks": ticks[0]}))
    print("STATUS " + json.dumps(agent.status()))
    return installed

if asyncio.run(main()):
    machine.reset()
"""


def _bomb(size: int) -> bytes:
    """``size`` bytes of DEFLATE (the signed delta's length) that inflate to a patch header and
    then about a thousand zero-length operations per byte: no output, all work."""
    header = struct.pack("<4sBII", b"OTPD", 1, len(NEW), len(OLD))
    bomb = deflate(header + b"\0" * (3 * 1_000_000))
    assert len(bomb) > size  # truncated to the signed length: still ~size * 1000 operations
    return bomb[:size]


def test_attack_delta_cpu_bomb(lab: Lab) -> None:
    pub = lab.publish(NEW, "1.1.0", 2, delta_bases=(OLD,))
    (delta,) = pub.body.payloads
    blob = pub.blobs[delta.sha256]
    blob.write_bytes(_bomb(delta.size))  # a mirror serves the bomb in place of the delta
    (lab.work / "app_step.py").write_text(APP_STEP)
    result = lab.boot(script=lab.work / "app_step.py", heapsize=HEAP)
    # refused at once, by its operation count: 65 empty operations, not a million
    m = re.search(r"^ota: delta payload refused \(BAD_PATCH: (\d+) operations", result.log, re.M)
    assert m and int(m.group(1)) <= 65, result.log
    # the app's task kept running through the whole check and install (the agent yields after
    # every 10 ms of work, so the count follows the time taken, not the blocks written)
    app = json.loads(re.search(r"^APP (.*)$", result.log, re.M).group(1))  # type: ignore[union-attr]
    assert app["ticks"] >= 20, app
    # then the signed raw image was installed in the same check: the bomb was fetched once
    assert fetched(lab) == [delta.sha256, pub.body.payload.sha256]
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
    assert "BOOT confirmed" in result.log
    assert slot_bytes(lab, "ota_1", len(NEW)) == NEW
    assert slot_bytes(lab, "ota_0", len(OLD)) == OLD
