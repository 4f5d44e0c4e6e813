"""The simulator's fault model beyond a torn cut (docs/simulator.md): a brown-out that also tears
the operation before the cut, and silent corruption of a write (a flipped bit, a program that
leaves the old bytes) that only a read-back can see — and the real agent's read-back refusing a
silently corrupted slot before it calls set_boot.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.keys import ED25519
from otakit.sim.inspect import read_state
from otakit.sim.lab import Lab

# Block 1 of ota_1 holds 0x00 (setup); the test erases and programs it with 0x55 (2-arg
# writeblocks: an erase op, then a write op).
FILL = """
p = P(P.RUNNING).get_next_update()
p.writeblocks(1, bytearray(4096))
"""
PROGRAM = """
p = P(P.RUNNING).get_next_update()
p.writeblocks(1, bytearray(b"\\x55" * 4096))
"""
DUMP = """
p = P(P.RUNNING).get_next_update()
b = bytearray(4096)
p.readblocks(1, b)
R((b[0], b[2047], b[2048], b[4095]))
"""


def _block1(device, flash) -> tuple[int, ...]:
    r = device(flash, DUMP)
    return eval(next(ln[3:] for ln in r.log.splitlines() if ln.startswith("R: ")))


@pytest.mark.parametrize("brownout", [False, True])
def test_a_brownout_tears_the_operation_before_the_cut(flash, device, brownout) -> None:
    device(flash, FILL)
    assert _block1(device, flash) == (0, 0, 0, 0)
    dry = device(flash, PROGRAM)  # the boot's own ops (otadata, vfs) come first
    cut = dry.ops  # the program of block 1; the op before it is the erase of its sector
    device(flash, FILL)
    env = {"OTAKIT_SIM_BROWNOUT": "1"} if brownout else {}
    # (the fault module and its 4 KiB buffer are on the heap too)
    r = device(flash, PROGRAM, cut_at=cut, restart_after_cut=False, env=env, heapsize="128K")
    assert r.ended == "power_cut", r.log
    # the torn write stores its first half; with a brown-out, the erase that had returned
    # before it loses its second half too: the old 0x00 bytes are back there
    assert _block1(device, flash) == ((0x55, 0x55, 0, 0) if brownout else (0x55, 0x55, 0xFF, 0xFF))


SCRIPT = """\
import json, ota
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"]))
print("INSTALLED" if agent.update_sync() else "FAILED " + json.dumps(agent.status()))
"""


@pytest.mark.parametrize("fault", ["flip", "stale"])
def test_the_read_back_refuses_a_silently_corrupted_slot_before_set_boot(
        tmp_path: Path, fault: str) -> None:
    new = make_app_image("1.1.0", size=64 * 1024, seed="new")
    with Lab(tmp_path / "lab", alg=ED25519) as lab:
        lab.flash(make_app_image("1.0.0", size=64 * 1024, seed="old"))
        lab.publish(new, "1.1.0", 2, security_version=1)
        slot = next(s for s in lab.state().slots if s.label == "ota_1")
        at = slot.offset + 5 * 4096 + 123  # inside block 5 of the slot the agent writes
        script = tmp_path / "update.py"
        script.write_text(SCRIPT)
        r = lab.boot(script=script, max_boots=1, heapsize="128K",
                     env={"OTAKIT_SIM_FAULT": f"{fault}:{at}"})
        assert "FAILED" in r.log, r.log
        status = json.loads(r.log.split("FAILED ", 1)[1].splitlines()[0])
        # each block is read back from flash as it is written and hashed: the image the slot
        # holds is not the signed one (download.Writer; docs/format.md §5 HASH_MISMATCH)
        assert status["reason"] == "HASH_MISMATCH" and "read back" in status["detail"], status
        st = lab.state()
        # the fault really left the slot different from the signed image (the flash, read
        # outside the agent) ...
        data = lab.flash_path.read_bytes()
        assert data[at] != new[at - slot.offset]
        # ... and the agent never made it bootable: the next reset boots the old slot, and no
        # trial is staged
        assert st.next_boot == "ota_0"
        assert "t_seq" not in st.nvs.get("otakit", {})
        # without the fault, the next attempt installs it (the slot is written again)
        r = lab.boot(script=script, max_boots=1, heapsize="128K")
        assert "INSTALLED" in r.log, r.log
        assert lab.state().next_boot == "ota_1"
        assert lab.flash_path.read_bytes()[slot.offset:slot.offset + len(new)] == new
