"""The update agent end to end: real server on loopback, real unix port, simulated flash.

Every scenario stands up a `Lab` (keys, a release repository served by `otakit serve`'s server,
a simulated ESP32 flashed with 1.0.0) and runs the real agent on the board, then judges by what
a user would see: which image runs, the otadata entries, the agent's NVS state, what the device
asked the server for, and the reason code the agent reports.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.sim.flash import make_firmware_bin
from otakit.sim.lab import Lab
from scenario import HEAP, blob_requests, otadata, prepare, publish_by_hand, statuses, step

SIZE = 96 * 1024


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab") as the_lab:
        prepare(the_lab)
        the_lab.flash(make_app_image("1.0.0", size=SIZE))
        yield the_lab


def test_update_installs_and_confirms(lab: Lab) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2, security_version=1)
    result = step(lab)
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
    assert [b.slot for b in result.boots] == ["ota_0", "ota_1"]
    assert "BOOT confirmed" in result.log
    assert otadata(lab) == [(1, "VALID"), (2, "VALID")]
    nvs = lab.nvs()
    assert nvs["seq"] == 2 and nvs["floor"] == 1
    assert "t_seq" not in nvs and "d_off" not in nvs  # nothing left half-done
    assert statuses(result)[-1]["state"] == "up_to_date"


def test_up_to_date_downloads_nothing(lab: Lab) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    step(lab)
    blobs_before = len(blob_requests(lab))
    lab.provision(checks=3)
    result = step(lab)
    assert len(result.boots) == 1 and result.last.version == "1.1.0"
    assert [s["state"] for s in statuses(result)] == ["up_to_date"] * 3
    manifests = [r for r in lab.requests() if r[1].endswith("/manifest")]
    assert [s for _, _, s in manifests[-3:]] == [200, 304, 304]  # ETag: not even re-fetched
    assert len(blob_requests(lab)) == blobs_before


def test_failed_trial_rolls_back_and_is_never_retried(lab: Lab) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    step(lab)
    lab.publish(make_app_image("1.2.0", size=SIZE, behaviour="crash"), "1.2.0", 3)
    result = step(lab)
    assert [b.version for b in result.boots] == ["1.1.0", "1.2.0", "1.1.0"], result.log
    assert result.boots[1].ended == "panic"
    assert "BOOT rolled_back" in result.log
    assert otadata(lab)[-1] == (3, "ABORTED") or (3, "ABORTED") in otadata(lab)
    nvs = lab.nvs()
    assert nvs["seq"] == 2  # the confirmed release is still the installed one
    last = statuses(result)[-1]
    assert last["bad_sequences"] == [3]
    assert last["reason"] == "KNOWN_BAD"
    blobs = len(blob_requests(lab))
    again = step(lab)
    assert len(again.boots) == 1 and again.last.version == "1.1.0"
    assert statuses(again)[-1]["reason"] == "KNOWN_BAD"
    assert len(blob_requests(lab)) == blobs  # refused before downloading


def test_rollback_reason_is_kept_for_reporting(lab: Lab) -> None:
    lab.publish(make_app_image("1.2.0", size=SIZE, behaviour="crash"), "1.2.0", 2)
    result = step(lab)
    report = re.search(r"ota: rolled back from sequence 2 \(([^)]*)\)", result.log)
    assert report and report[1].startswith("ROLLED_BACK")
    last = statuses(result)[-1]
    assert last["reason"] == "KNOWN_BAD"  # the check after the rollback refused it again
    assert last["rollback"].startswith("2 ROLLED_BACK")  # and why it rolled back is kept
    assert lab.nvs()["rb"] == 2 and lab.nvs()["rb_rsn"] == b"ROLLED_BACK"


HEALTH = """\
import asyncio, esp32, json, machine, ota
P = esp32.Partition
on_new_image = P(P.RUNNING).info()[4] == "ota_1"

def lock_works():  # fails on the new image
    return not on_new_image

async def network_up():  # hangs on the new image
    while on_new_image:
        await asyncio.sleep_ms(50)
    return True

checks = {"fails": (lock_works,), "hangs": (network_up,)}[FAULT]
outcome, detail = ota.boot(checks=checks, timeout_ms=300)
print("BOOT " + outcome)
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"]))
installed = agent.update_sync()
print("STATUS " + json.dumps(agent.status()))
if installed:
    machine.reset()
"""


# issue 16: the .mpy whole-update heap is 53 KB (52 KB for 3 MB on the 8 MB layout; bench.agent,
# 1 KB steps, the boot after the install and its telemetry report included; 57 KB until the heap
# work of 2026-12-08: the header code released before the body streams, the resident modules
# trimmed, the simulator's NVS state outside the budget, as on a board). The gate allows 3 KB
# more: inside the parallel test run the 8 MB case has failed 2 KB above its lone figure (a
# 285-byte import at the payload request), which a lone run never shows.
HEAP_LIMIT = "56K"


@pytest.mark.parametrize(("board", "size"), [("esp32", 1_000_000), ("esp32-8mb", 3_000_000)])
def test_whole_update_completes_in_the_56_kb_heap(tmp_path: Path, board: str, size: int) -> None:
    # the limit as a gate; bench.agent measures the smallest heap that works
    with Lab(tmp_path / "lab", board=board) as lab:
        lab.flash(make_app_image("1.0.0", size=SIZE))
        lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
        result = lab.install_once(HEAP_LIMIT)
        assert "INSTALLED" in result.log, result.log[-3000:]
        assert lab.state().next_boot == "ota_1"
        # the install's telemetry waits in NVS for the report after the reboot (ota.report)
        assert struct.unpack_from("<i", lab.nvs()["ins"])[0] == 2


@pytest.mark.parametrize("fault", ["fails", "hangs"])
def test_failed_health_check_rolls_back(lab: Lab, fault: str) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    script = lab.work / "health.py"
    script.write_text(HEALTH.replace("FAULT", repr(fault)))
    result = lab.boot(script=script, heapsize=HEAP)
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0", "1.0.0"], result.log
    assert result.boots[1].ended == "reset"  # ota.boot() reset without confirming
    assert "BOOT rolled_back" in result.log
    why = "returned False" if fault == "fails" else "did not finish within 300 ms"
    assert "(HEALTH_FAILED" in result.log and why in result.log
    last = statuses(result)[-1]
    assert last["rollback"].startswith("2 HEALTH_FAILED") and last["reason"] == "KNOWN_BAD"
    assert "seq" not in lab.nvs()  # 1.1.0 never became the installed release


def test_altered_payload_is_refused_and_boot_target_unchanged(lab: Lab) -> None:
    pub = lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    data = bytearray(pub.payload_path.read_bytes())
    data[SIZE // 2] ^= 0x01
    pub.payload_path.write_bytes(bytes(data))
    result = step(lab)
    assert len(result.boots) == 1
    assert statuses(result)[-1]["reason"] == "HASH_MISMATCH"
    assert otadata(lab) == [(1, "VALID")]
    assert lab.state().next_boot == "ota_0"
    assert len(blob_requests(lab)) == 1  # it was downloaded, then refused


def test_altered_manifest_is_refused_before_any_erase(lab: Lab) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    m = bytearray(lab.manifest_path.read_bytes())
    m[30] ^= 0x20  # inside the JSON body
    lab.manifest_path.write_bytes(bytes(m))
    slot = lab.board.partition("ota_1")
    pattern = bytes(range(256)) * (slot.size // 256)
    flash = bytearray(lab.flash_path.read_bytes())
    flash[slot.offset:slot.offset + slot.size] = pattern
    lab.flash_path.write_bytes(bytes(flash))
    result = step(lab)
    assert statuses(result)[-1]["reason"] == "BAD_SIGNATURE"
    data = lab.flash_path.read_bytes()
    assert data[slot.offset:slot.offset + slot.size] == pattern  # not one byte erased
    assert blob_requests(lab) == []


def test_payload_bigger_than_slot_is_refused_before_download(lab: Lab) -> None:
    big = lab.board.ota_slot_size + 4096
    publish_by_hand(lab, make_app_image("1.1.0", size=SIZE), payload_size=big)
    result = step(lab)
    assert statuses(result)[-1]["reason"] == "PAYLOAD_TOO_LARGE"
    assert blob_requests(lab) == []


def test_release_for_another_board_is_refused(lab: Lab) -> None:
    publish_by_hand(lab, make_app_image("1.1.0", size=SIZE), board="esp32-8mb")
    assert statuses(step(lab))[-1]["reason"] == "WRONG_BOARD"
    publish_by_hand(lab, make_app_image("1.1.0", chip="esp32c3", size=SIZE), chip_id=5)
    assert statuses(step(lab))[-1]["reason"] == "WRONG_BOARD"
    assert blob_requests(lab) == []


def test_full_firmware_bin_is_refused_before_set_boot(lab: Lab) -> None:
    firmware = make_firmware_bin(lab.board, make_app_image("1.1.0", size=SIZE))
    publish_by_hand(lab, firmware)
    result = step(lab)
    last = statuses(result)[-1]
    assert last["reason"] == "BAD_IMAGE" and "firmware.bin" in last["detail"]
    assert otadata(lab) == [(1, "VALID")]
    assert len(result.boots) == 1


@pytest.mark.parametrize("fault", ["500", "404", "down"])
def test_server_trouble_is_retried_later(lab: Lab, fault: str) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    if fault == "500":
        lab.faults.fail_status = 500
    elif fault == "404":
        saved = lab.manifest_path.read_bytes()
        lab.manifest_path.unlink()
    else:
        lab.provision(url="http://127.0.0.1:9")  # nothing listens on the discard port
    result = step(lab)
    last = statuses(result)[-1]
    assert last["state"] == "failed" and len(result.boots) == 1
    assert last["reason"] == {"500": "HTTP", "404": "HTTP", "down": "NETWORK"}[fault]
    assert otadata(lab) == [(1, "VALID")]
    # the trouble goes away: the next check installs
    lab.faults.fail_status = None
    if fault == "404":
        lab.manifest_path.write_bytes(saved)
    if fault == "down":
        lab.provision()
    result = step(lab)
    assert result.last.version == "1.1.0" and "BOOT confirmed" in result.log


def test_real_micropython_v125_installs(lab: Lab, real_firmware_dir: Path) -> None:
    image = (real_firmware_dir / "ESP32_GENERIC-OTA-20250415-v1.25.0.app.bin").read_bytes()
    lab.publish(image, "1.25.0", 2)
    result = step(lab, timeout=120)
    assert "BOOT confirmed" in result.log, result.log
    assert result.last.slot == "ota_1"
    assert otadata(lab) == [(1, "VALID"), (2, "VALID")]
    slot = lab.board.partition("ota_1")
    assert lab.flash_path.read_bytes()[slot.offset:slot.offset + len(image)] == image
    # what the board now says it runs, read from the real image's app descriptor (MicroPython
    # leaves its version and project name empty; its build date and ESP-IDF version are set)
    info = lab.work / "info.py"
    info.write_text(INFO)
    shown = lab.boot(script=info, heapsize=HEAP, max_boots=1).log
    assert "built: Apr 15 2025 15:01:47, ESP-IDF v5.2.2\n" in shown, shown
    assert "release: 2\n" in shown
    assert re.search(r"^firmware: MicroPython .* \(ota_1\)$", shown, re.M)


INFO = """\
import json, ota
cfg = json.load(open("ota_config.json"))
print(ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"])).device_info())
"""
