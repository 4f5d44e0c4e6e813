"""The simulated bootloader and otadata: ground truth sections 4.1-4.4 and 8, step by step."""

from __future__ import annotations

import ast
import struct
from pathlib import Path

from simhelpers import STEP_COUNTER, lines

from otakit.sim.inspect import ABORTED, NEW, PENDING, VALID, ota_crc, otadata_entry, read_state

OTADATA = 0xD000

# A script that does one step per boot; the step number lives in a file on the vfs.
STEPS = STEP_COUNTER + """R((step, label(P(P.RUNNING)), label(P(P.BOOT)), esp32.sim_firmware()[1], otadata()))
"""


def steps(r) -> list:
    return [ast.literal_eval(x) for x in lines(r, "R:")]


def entries(flash: Path) -> list:
    return [None if e.seq == 0xFFFFFFFF else (e.seq, e.state) for e in read_state(flash).otadata]


def test_crc_vectors_and_first_boot_entry(flash, device):
    assert ota_crc(1) == 0x4743989A
    assert ota_crc(2) == 0x55F63774
    r = device(flash, "P('ota_1').writeblocks(0, b'')\n")
    raw = flash.read_bytes()
    assert raw[OTADATA:OTADATA + 32] == bytes.fromhex("01000000" + "ff" * 20 + "02000000"
                                                      "9a984347")
    assert "otadata blank: writing otadata[0] seq=1 VALID" in r.log
    assert raw[OTADATA + 0x1000:OTADATA + 0x2000] == b"\xff" * 0x1000


def test_rollback_sequence_from_fresh_flash(flash, device, images):
    """Ground truth 4.2: every step from a fresh esptool flash to set_boot(ota_0)."""
    r = device(flash, STEPS + f"""
if step == 0:
    write_image(P(P.RUNNING).get_next_update(), "{images['v2']}")
    P("ota_1").set_boot(); R(otadata()); machine.reset()
if step == 1:
    machine.reset()                          # the trial boot is not confirmed
if step == 2:
    P("ota_1").set_boot(); R(otadata()); machine.reset()
if step == 3:
    P.mark_app_valid_cancel_rollback(); R(otadata()); machine.reset()
if step == 4:
    P("ota_0").set_boot(); R(otadata())
""")
    assert steps(r) == [
        (0, "ota_0", "ota_0", "1.0.0", [(1, VALID), None]),
        [(1, VALID), (2, NEW)],
        (1, "ota_1", "ota_1", "2.0.0", [(1, VALID), (2, PENDING)]),
        (2, "ota_0", "ota_0", "1.0.0", [(1, VALID), (2, ABORTED)]),
        [(1, VALID), (2, NEW)],
        (3, "ota_1", "ota_1", "2.0.0", [(1, VALID), (2, PENDING)]),
        [(1, VALID), (2, VALID)],
        (4, "ota_1", "ota_1", "2.0.0", [(1, VALID), (2, VALID)]),
        [(3, NEW), (2, VALID)],
    ]
    assert r.ended == "finished" and len(r.boots) == 5


def test_confirmed_update_then_switch_back(flash, device, images):
    r = device(flash, STEPS + f"""
if step == 0:
    write_image(P("ota_1"), "{images['v2']}")
    P("ota_1").set_boot(); machine.reset()
if step == 1:
    P.mark_app_valid_cancel_rollback(); R(otadata())
    machine.reset()
if step == 2:
    P("ota_0").set_boot(); R(otadata())
""")
    got = steps(r)
    assert got[1] == (1, "ota_1", "ota_1", "2.0.0", [(1, VALID), (2, PENDING)])
    assert got[2] == [(1, VALID), (2, VALID)]
    assert got[3] == (2, "ota_1", "ota_1", "2.0.0", [(1, VALID), (2, VALID)])
    assert got[4] == [(3, NEW), (2, VALID)]
    assert entries(flash) == [(3, NEW), (2, VALID)]
    assert read_state(flash).next_boot == "ota_0"


def test_tie_goes_to_entry_0(flash, device, images):
    device(flash, f"write_image(P('ota_1'), '{images['v2']}')\n")
    data = bytearray(flash.read_bytes())
    data[OTADATA:OTADATA + 32] = otadata_entry(2, VALID)
    data[OTADATA + 0x1000:OTADATA + 0x1000 + 32] = otadata_entry(2, NEW)
    flash.write_bytes(bytes(data))
    r = device(flash, "R((label(P(P.RUNNING)), otadata()))\n")
    assert steps(r) == [("ota_1", [(2, VALID), (2, NEW)])]  # entry 1's NEW never became PENDING


def test_set_boot_on_running_slot_in_sector_1_wins_the_tie(flash, device, images):
    """4.3: set_boot(RUNNING) writes NEW with the same seq into sector 0, which wins the tie."""
    r = device(flash, STEPS + f"""
if step == 0:
    write_image(P("ota_1"), "{images['v2']}"); P("ota_1").set_boot(); machine.reset()
if step == 1:
    P.mark_app_valid_cancel_rollback(); P(P.RUNNING).set_boot(); R(otadata()); machine.reset()
""")
    got = steps(r)
    assert got[2] == [(2, NEW), (2, VALID)]
    assert got[3] == (2, "ota_1", "ota_1", "2.0.0", [(2, PENDING), (2, VALID)])


def test_unconfirmed_crash_image_rolls_back(flash, device, images):
    r = device(flash, STEPS + f"""
if step == 0:
    write_image(P("ota_1"), "{images['crash']}"); P("ota_1").set_boot(); machine.reset()
""")
    assert [(b.slot, b.ended) for b in r.boots] == [("ota_0", "reset"), ("ota_1", "panic"),
                                                   ("ota_0", "done")]
    assert "Guru Meditation Error" in r.boots[1].log
    assert steps(r)[-1] == (1, "ota_0", "ota_0", "1.0.0", [(1, VALID), (2, ABORTED)])


def test_bootloader_first_image_passes_set_boot_then_falls_back(flash, device, images):
    """4.3 item 6: a full firmware.bin in a slot validates, and the bootloader refuses it."""
    r = device(flash, STEPS + f"""
if step == 0:
    write_image(P("ota_1"), "{images['fwbin']}"); P("ota_1").set_boot(); R("set_boot ok")
    machine.reset()
if step == 1:
    R((P(P.RUNNING).info() == P(P.BOOT).info()))
    machine.reset()
""")
    got = steps(r)
    assert got[1] == "set_boot ok"
    assert got[2] == (1, "ota_0", "ota_1", "1.0.0", [(1, VALID), (2, PENDING)])
    assert got[3] is False  # the check the agent must make before marking valid
    boot2 = r.boots[1].log
    assert "overlaps bootloader data" in boot2
    assert "OTA app partition slot 1 is not bootable" in boot2
    assert got[4] == (2, "ota_0", "ota_0", "1.0.0", [(1, VALID), (2, ABORTED)])
    assert "not bootable" not in r.boots[2].log  # ABORTED: not even tried


def test_mark_valid_after_fallback_marks_the_broken_slot(flash, device, images):
    """4.4: mark_app_valid acts on the ACTIVE entry, so after a fallback it blesses the broken
    slot and every later boot tries it and falls back (why the agent checks RUNNING is BOOT)."""
    r = device(flash, STEPS + f"""
if step == 0:
    write_image(P("ota_1"), "{images['fwbin']}"); P("ota_1").set_boot(); machine.reset()
if step == 1:
    P.mark_app_valid_cancel_rollback(); R(otadata()); machine.reset()
""")
    got = steps(r)
    assert got[2] == [(1, VALID), (2, VALID)]
    assert got[3] == (2, "ota_0", "ota_1", "1.0.0", [(1, VALID), (2, VALID)])
    assert "OTA app partition slot 1 is not bootable" in r.boots[2].log


def test_deep_sleep_wake_skips_otadata(flash, device, images):
    """4.2 item 6: set_boot then deepsleep wakes into the OLD app; NEW stays NEW."""
    r = device(flash, STEPS + f"""
if step == 0:
    write_image(P("ota_1"), "{images['v2']}"); P("ota_1").set_boot(); machine.deepsleep(10)
if step == 1:
    R(machine.reset_cause() == machine.DEEPSLEEP_RESET); machine.reset()
""")
    got = steps(r)
    assert [b.reason for b in r.boots] == ["poweron", "deepsleep", "reset"]
    assert got[1] == (1, "ota_0", "ota_1", "1.0.0", [(1, VALID), (2, NEW)])
    assert got[2] is True
    assert "Fast booting" in r.boots[1].log
    assert got[3] == (2, "ota_1", "ota_1", "2.0.0", [(1, VALID), (2, PENDING)])


def test_pending_app_that_deep_sleeps_is_not_aborted_until_hard_reset(flash, device, images):
    r = device(flash, STEPS + f"""
if step == 0:
    write_image(P("ota_1"), "{images['v2']}"); P("ota_1").set_boot(); machine.reset()
if step in (1, 2):
    machine.deepsleep(1)
if step == 3:
    machine.reset()
""")
    got = steps(r)
    assert got[2] == (2, "ota_1", "ota_1", "2.0.0", [(1, VALID), (2, PENDING)])
    assert got[3] == (3, "ota_1", "ota_1", "2.0.0", [(1, VALID), (2, PENDING)])
    assert got[4] == (4, "ota_0", "ota_0", "1.0.0", [(1, VALID), (2, ABORTED)])


def test_soft_reset_keeps_running_partition(flash, device, images):
    r = device(flash, STEPS + f"""
if step == 0:
    write_image(P("ota_1"), "{images['v2']}"); P("ota_1").set_boot(); machine.soft_reset()
""")
    got = steps(r)
    assert [b.reason for b in r.boots] == ["poweron", "soft"]
    assert got[1] == (1, "ota_0", "ota_1", "1.0.0", [(1, VALID), (2, NEW)])
    assert "bootloader" not in r.boots[1].log


def test_no_bootable_app_is_a_boot_loop(flash, device):
    data = bytearray(flash.read_bytes())
    data[0x10000:0x10000 + 0x1000] = b"\xff" * 0x1000
    flash.write_bytes(bytes(data))
    r = device(flash, "R('never')\n")
    assert r.ended == "boot_loop"
    assert "No bootable app partitions" in r.log
    assert r.boots[-1].slot is None and r.boots[-1].ended == "nobootable"


def test_crash_image_only_slot_is_a_boot_loop(tmp_path, images, device):
    from otakit.sim.flash import create_flash

    flash = create_flash("esp32", images["crash"].read_bytes(), tmp_path / "c.img")
    r = device(flash, "R('never')\n")
    assert r.ended == "boot_loop"
    assert [b.ended for b in r.boots] == ["panic", "panic"]


def test_bad_partition_table_md5_does_not_boot(flash, device):
    data = bytearray(flash.read_bytes())
    data[0x8000 + 32 + 20] ^= 0x01  # inside otadata's label
    flash.write_bytes(bytes(data))
    r = device(flash, "R('never')\n")
    assert r.ended == "boot_loop" and "partition table" in r.log


def test_torn_otadata_write_leaves_the_other_entry_active(flash, device, images):
    """8 item 11: power lost in the erase or the write of an otadata sector."""
    device(flash, f"write_image(P('ota_1'), '{images['v2']}')\n")
    base = flash.read_bytes()
    dry = device(flash, "P('ota_1').set_boot()\n")
    assert entries(flash) == [(1, VALID), (2, NEW)]
    for cut in (dry.ops - 1, dry.ops):  # set_boot = erase sector 1, then write 32 bytes
        flash.write_bytes(base)
        r = device(flash, "P('ota_1').set_boot()\n", cut_at=cut, restart_after_cut=False)
        assert r.ended == "power_cut" and r.cut
        st = read_state(flash)
        assert not st.otadata[1].valid and st.next_boot == "ota_0"
        r = device(flash, "R(label(P(P.RUNNING)))\n")
        assert steps(r) == ["ota_0"]
    seq = struct.unpack("<I", flash.read_bytes()[OTADATA + 0x1000:OTADATA + 0x1004])[0]
    assert seq == 2  # the torn write left a prefix: seq written, state and CRC still 0xFF
