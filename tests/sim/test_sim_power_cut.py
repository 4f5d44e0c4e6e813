"""Power cuts at every mutating flash operation of an update: the bootloader's rules still hold.

The scripted update is what the agent does: stream an image into the next slot with 2-arg
writeblocks, set_boot, reset, then confirm on the trial boot. A cut at any operation (torn erase
or torn write, app slot or otadata) must leave a flash image that boots the old or the new image,
never neither. Until the confirmation (mark_app_valid, which rewrites its otadata sector in
place) has completed, a cut means the old image: an unconfirmed trial is aborted at power-on.
"""

from __future__ import annotations

import ast

import pytest
from simhelpers import lines

from otakit.sim.inspect import read_state

UPDATE = """
if esp32.sim_firmware()[1] == "1.0.0" and label(P(P.BOOT)) == "ota_0":
    write_image(P(P.RUNNING).get_next_update(), "{image}")
    P(P.RUNNING).get_next_update().set_boot()
    machine.reset()
elif label(P(P.RUNNING)) == label(P(P.BOOT)):
    P.mark_app_valid_cancel_rollback()
    esp32.NVS("ota").set_i32("confirmed", 2)
"""
OBSERVE = "R((label(P(P.RUNNING)), esp32.sim_firmware()[1], otadata()))\n"


@pytest.mark.slow
def test_cut_at_every_operation_of_an_update_boots_old_or_new(flash, device, images):
    device(flash, "pass\n")  # first boot: otadata {1, VALID}, littlefs formatted
    base = flash.read_bytes()
    script = UPDATE.format(image=images["v2"])
    dry = device(flash, script)
    assert [b.version for b in dry.boots] == ["1.0.0", "2.0.0"]
    total = dry.ops
    versions = []
    for cut in range(1, total + 1):
        flash.write_bytes(base)
        r = device(flash, script, cut_at=cut, restart_after_cut=False)
        assert r.ended == "power_cut", (cut, r.log)
        obs = device(flash, OBSERVE)
        assert obs.ended == "finished", (cut, obs.log)
        slot, version, _ = ast.literal_eval(lines(obs, "R:")[0])
        assert (slot, version) in (("ota_0", "1.0.0"), ("ota_1", "2.0.0")), (cut, obs.log)
        assert read_state(flash).next_boot in ("ota_0", "ota_1")
        versions.append(version)
    # old until the confirmation is on flash, new from then on (cuts in the NVS write after it)
    first_new = versions.index("2.0.0")
    assert set(versions[:first_new]) == {"1.0.0"} and set(versions[first_new:]) == {"2.0.0"}
    assert 0 < total - first_new <= 4  # only cuts in the final NVS set see the new image
