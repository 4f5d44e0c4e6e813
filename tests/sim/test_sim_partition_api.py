"""esp32.Partition on the simulated board: the exact surface of ground truth sections 1 and 8."""

from __future__ import annotations

import ast

from simhelpers import lines


def results(r) -> list:
    assert r.ended == "finished" and not r.error, r.log
    return [ast.literal_eval(x) for x in lines(r, "R:")]


def test_find_returns_lists_in_table_order(flash, device):
    r = device(flash, """
        R([label(p) for p in P.find()])
        R([label(p) for p in P.find(P.TYPE_DATA)])
        R([label(p) for p in P.find(P.TYPE_DATA, label="vfs")])
        R([label(p) for p in P.find(type=P.TYPE_DATA, subtype=0x02)])
        R(P.find(P.TYPE_APP, 0xff, "nope"))
        R(type(P.find()).__name__)
    """)
    assert results(r) == [["ota_0", "ota_1"], ["nvs", "otadata", "phy_init", "vfs"], ["vfs"],
                          ["nvs"], [], "list"]


def test_info_repr_and_runtime_vfs(flash, device):
    r = device(flash, """
        R(P("ota_0").info())
        R(P.find(P.TYPE_DATA, label="vfs")[0].info())
        R(repr(P("otadata")))
    """)
    assert results(r) == [
        (0, 16, 0x10000, 0x180000, "ota_0", False),
        (1, 0x81, 0x310000, 0xF0000, "vfs", False),
        "<Partition type=1, subtype=0, address=53248, size=8192, label=otadata, encrypted=0>"]


def test_constructor_errors_and_no_eq(flash, device):
    r = device(flash, """
        for args in (("nope",), (5,), ("ota_0", 4096, 1)):
            try:
                P(*args)
                R("no error")
            except Exception as e:
                R((type(e).__name__, e.args[:1]))
        try:
            P("ota_0", block_size=4096)
        except TypeError:
            R("TypeError")
        R(P("ota_0") == P("ota_0"), P("ota_0").info() == P("ota_0").info())
        R(P("nvs").info()[4], label(P(P.BOOT)), label(P(P.RUNNING)))
    """)
    assert results(r) == [("OSError", (2,)), ("ValueError", ()),
                          ("TypeError",
                           ("function takes 2 positional arguments but 3 were given",)),
                          "TypeError", (False, True), ("nvs", "ota_0", "ota_0")]


def test_two_arg_writeblocks_erases_and_needs_whole_sectors(flash, device):
    r = device(flash, """
        p = P("ota_1")
        p.writeblocks(0, bytearray(b"\\x0f" * 4096))
        p.writeblocks(0, bytearray(b"\\xf0" * 4096))     # erase first: not AND
        b = bytearray(8); p.readblocks(0, b); R(bytes(b))
        try:
            p.writeblocks(1, bytearray(100))
        except OSError as e:
            R(e.args)
        b = bytearray(8); p.readblocks(1, b); R(bytes(b))   # nothing written
        try:
            p.writeblocks(p.ioctl(4, 0) + 1, bytearray(4096))   # offset > size
        except OSError as e:
            R(e.args)
    """)
    assert results(r) == [b"\xf0" * 8, (-260, "ESP_ERR_INVALID_SIZE"), b"\xff" * 8,
                          (-258, "ESP_ERR_INVALID_ARG")]


def test_three_arg_writeblocks_never_erases(flash, device):
    r = device(flash, """
        p = P("ota_1")
        p.writeblocks(0, bytearray(b"\\x0f" * 4096))
        p.writeblocks(0, b"\\xf0\\xff\\x33", 1)        # any offset/length, NOR AND
        b = bytearray(5); p.readblocks(0, b); R(bytes(b))
        p.writeblocks(0, b"\\xff\\xff", 4094)          # crosses nothing, still AND
        p.readblocks(0, b, 4093); R(bytes(b[:3]))
        try:
            p.writeblocks(0, bytearray(8), p.info()[3] - 4)
        except OSError as e:
            R(e.args)
    """)
    assert results(r) == [b"\x0f\x00\x0f\x03\x0f", b"\x0f\x0f\x0f",
                          (-260, "ESP_ERR_INVALID_SIZE")]


def test_ioctl_and_block_sizes(flash, device):
    r = device(flash, """
        p = P.find(P.TYPE_APP, label="ota_1", block_size=512)[0]
        R([p.ioctl(c, 0) for c in (1, 2, 3, 4, 5, 6, 7)])
        q = P("ota_1")
        q.writeblocks(1, bytearray(4096))
        R(q.ioctl(6, 1), q.ioctl(4, 0), q.ioctl(5, 0))
        b = bytearray(4); q.readblocks(1, b, 4092); R(bytes(b))
        n = p.get_next_update()
        R(label(n), n.ioctl(5, 0))
        p.writeblocks(3, bytearray(b"\\x11" * 512))       # RMW keeps the rest of the sector
        b = bytearray(4); q.readblocks(0, b, 512 * 3 - 2); R(bytes(b))
        R(label(P("ota_0").get_next_update()), label(P("nvs").get_next_update()))
    """)
    assert results(r) == [[0, 0, 0, 0x180000 // 512, 512, -22, None], (0, 384, 4096),
                          b"\xff" * 4, ("ota_0", 4096), b"\xff\xff\x11\x11", ("ota_1", "ota_0")]


def test_read_range_errors(flash, device):
    r = device(flash, """
        p = P("phy_init")
        for blk, n, off in ((0, 4097, 0), (2, 1, 0), (0, 8, 4090)):
            try:
                p.readblocks(blk, bytearray(n), off)
                R("ok")
            except OSError as e:
                R(e.args)
    """)
    assert results(r) == [(-260, "ESP_ERR_INVALID_SIZE"), (-258, "ESP_ERR_INVALID_ARG"),
                          (-260, "ESP_ERR_INVALID_SIZE")]


def test_set_boot_validates_the_image(flash, device, images):
    r = device(flash, f"""
        def try_boot(p):
            try:
                p.set_boot(); R("ok")
            except OSError as e:
                R(e.args)
        try_boot(P("nvs"))                  # a data partition: validate fails first
        try_boot(P("ota_1"))                # blank slot
        write_image(P("ota_1"), "{images['v2']}")
        b = bytearray(1); P("ota_1").readblocks(0, b, 3000)
        P("ota_1").writeblocks(0, bytes([b[0] ^ 0x01]), 3000)   # one bit: 1->0 only if set
        b2 = bytearray(1); P("ota_1").readblocks(0, b2, 3000)
        if b2 == b:  # the bit was 0: flip another way
            P("ota_1").writeblocks(0, bytes([b[0] & 0xFE]), 3000)
        try_boot(P("ota_1"))                # corrupt: checksum/SHA fail
        write_image(P("ota_1"), "{images['v2']}")
        try_boot(P("ota_1"))
        R(otadata())
    """)
    assert results(r) == [(-5379, "ESP_ERR_OTA_VALIDATE_FAILED")] * 3 + ["ok",
                                                                         [(1, 2), (2, 0)]]


def test_mark_valid_on_fresh_flash_is_a_noop(flash, device):
    r = device(flash, """
        before = otadata()
        P.mark_app_valid_cancel_rollback()
        R(before, otadata())
    """)
    assert results(r) == [([(1, 2), None], [(1, 2), None])]
    assert r.ops == r.boots[0].ops  # only the first-boot otadata write and mkfs


def test_heap_locked_block_writes_do_not_allocate(flash, device):
    r = device(flash, """
        import micropython
        p = P("ota_1")
        buf = bytearray(4096)
        micropython.heap_lock()
        for blk in range(8):
            p.writeblocks(blk, buf)
            p.readblocks(blk, buf)
        p.ioctl(6, 9)
        p.writeblocks(9, buf, 0)
        micropython.heap_unlock()
        R("ok")
    """)
    assert results(r) == ["ok"]
