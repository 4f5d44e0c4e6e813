"""esp32.NVS on the simulated board: ESP-IDF semantics, persistence, atomicity under power cuts."""

from __future__ import annotations

import ast

import pytest
from simhelpers import lines

from otakit.sim.inspect import read_state


def results(r) -> list:
    assert r.ended == "finished" and not r.error, r.log
    return [ast.literal_eval(x) for x in lines(r, "R:")]


def test_nvs_errors_and_values(flash, device):
    r = device(flash, """
        n = esp32.NVS("otakit")
        for f in (lambda: n.get_i32("missing"), lambda: n.erase_key("missing"),
                  lambda: esp32.NVS("x" * 16), lambda: n.set_i32("k" * 16, 1)):
            try:
                f(); R("no error")
            except OSError as e:
                R(e.args)
        n.set_i32("floor", -7); R(n.get_i32("floor"))
        n.set_blob("blob", b"\\x01\\x02\\x03")
        buf = bytearray(8); R((n.get_blob("blob", buf), bytes(buf)))
        try:
            n.get_blob("blob", bytearray(2))
        except OSError as e:
            R(e.args)
        try:
            n.get_i32("blob")
        except OSError as e:
            R(e.args)
        try:
            esp32.NVS("other").get_i32("floor")
        except OSError as e:
            R("ns" if e.args[0] == -4354 else "leak")
        n.erase_key("floor")
        try:
            n.get_i32("floor")
        except OSError as e:
            R(e.args)
        n.commit()
        R(repr(n))
    """)
    assert results(r) == [
        (-4354, "ESP_ERR_NVS_NOT_FOUND"), (-4354, "ESP_ERR_NVS_NOT_FOUND"),
        (-4361, "ESP_ERR_NVS_KEY_TOO_LONG"), (-4361, "ESP_ERR_NVS_KEY_TOO_LONG"),
        -7, (3, b"\x01\x02\x03" + b"\x00" * 5), (-4364, "ESP_ERR_NVS_INVALID_LENGTH"),
        (-4355, "ESP_ERR_NVS_TYPE_MISMATCH"), "ns", (-4354, "ESP_ERR_NVS_NOT_FOUND"),
        "<NVS namespace>"]


def test_namespaces_are_separate_and_values_persist_across_resets(flash, device):
    r = device(flash, """
        a = esp32.NVS("a"); b = esp32.NVS("b")
        try:
            n = a.get_i32("boots")
        except OSError:
            n = 0
        a.set_i32("boots", n + 1)
        try:
            b.get_i32("boots"); R("leak")
        except OSError:
            pass
        R(n)
        if n < 2:
            machine.reset()
    """)
    assert results(r) == [0, 1, 2]
    assert read_state(flash).nvs == {"a": {"boots": 3}}


def test_set_is_persisted_without_commit(flash, device):
    """ESP-IDF writes on set; commit() is a no-op (NVSHandleSimple::commit)."""
    r = device(flash, """
        n = esp32.NVS("s"); n.set_i32("x", 1); n.set_blob("y", b"ab")
        machine.reset()                     # no commit(), and the process is killed
    """, max_boots=1)
    assert r.ended == "max_boots"
    assert read_state(flash).nvs == {"s": {"x": 1, "y": b"ab"}}


def test_compaction_keeps_the_live_set(flash, device):
    r = device(flash, """
        n = esp32.NVS("c")
        for i in range(40):
            n.set_blob("b%d" % (i % 3), bytes([i]) * 500)
            n.set_i32("i", i)
        R([n.get_i32("i")] + [n.get_blob("b%d" % k, bytearray(600)) for k in range(3)])
    """)
    assert results(r) == [[39, 500, 500, 500]]
    nvs = read_state(flash).nvs["c"]
    assert nvs["i"] == 39 and nvs["b0"] == bytes([39]) * 500 and nvs["b2"] == bytes([38]) * 500


UPDATE = """
n = esp32.NVS("ota")
n.set_i32("seq", 2)
n.set_blob("state", b"installed-2")
for i in range(12):
    n.set_blob("pad", bytes([i]) * 700)   # forces a compaction to the other half
n.set_i32("floor", 2)
"""


@pytest.mark.slow
def test_every_cut_in_nvs_writes_leaves_old_or_new_value(flash, device, tmp_path):
    device(flash, """
        n = esp32.NVS("ota"); n.set_i32("seq", 1); n.set_blob("state", b"installed-1")
    """)
    base = flash.read_bytes()
    dry = device(flash, UPDATE)
    assert dry.ended == "finished"
    total = dry.ops
    assert total > 20
    for cut in range(1, total + 1):
        flash.write_bytes(base)
        r = device(flash, UPDATE, cut_at=cut, restart_after_cut=False)
        assert r.ended == "power_cut", cut
        nvs = read_state(flash).nvs["ota"]
        assert nvs["seq"] in (1, 2), cut
        assert nvs["state"] in (b"installed-1", b"installed-2"), cut
        if nvs["state"] == b"installed-2":
            assert nvs["seq"] == 2, cut  # sets are persisted in order
        if "floor" in nvs:
            assert nvs["floor"] == 2 and nvs["pad"] == bytes([11]) * 700, cut
        # the device reads the same thing and can keep writing
        r = device(flash, """
            n = esp32.NVS("ota"); R(n.get_i32("seq")); n.set_i32("after", 1); R(n.get_i32("after"))
        """)
        assert [ast.literal_eval(x) for x in lines(r, "R:")] == [nvs["seq"], 1], (cut, r.log)
