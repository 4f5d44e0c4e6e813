"""machine on the simulated board: resets, watchdog, deep sleep, unique_id, Pin, heap budget."""

from __future__ import annotations

import ast
import re

from simhelpers import LARGEST_BLOCK, STEP_COUNTER, UID, lines


def results(r) -> list:
    return [ast.literal_eval(x) for x in lines(r, "R:")]


STEP = STEP_COUNTER


def test_reset_cannot_be_caught(flash, device):
    r = device(flash, STEP + """
if step == 0:
    try:
        machine.reset()
    except BaseException:
        R("caught")
    R("after")
R(("boot", step, machine.reset_cause()))
""")
    assert results(r) == [("boot", 1, 5)]
    assert [b.ended for b in r.boots] == ["reset", "done"]


def test_wdt_timeout_resets_even_in_a_busy_loop(flash, device):
    r = device(flash, STEP + """
R(("boot", step, machine.reset_cause()))
if step == 0:
    w = machine.WDT(timeout=300)
    for i in range(5):
        import time; time.sleep_ms(100); w.feed()
    R("fed")
    while True:
        pass
""")
    assert results(r) == [("boot", 0, 1), "fed", ("boot", 1, 3)]
    assert [b.ended for b in r.boots] == ["wdt", "done"]


def test_unique_id_is_stable_per_image(flash, device):
    r = device(flash, STEP + "R(machine.unique_id())\nif step == 0:\n    machine.reset()\n")
    assert results(r) == [UID, UID]


def test_pins_led_and_button(flash, device):
    r = device(flash, """
        led = machine.Pin(2, machine.Pin.OUT)
        led.on(); a = led.value(); led.off(); R((a, led.value()))
        btn = machine.Pin(0, machine.Pin.IN, machine.Pin.PULL_UP)
        R(btn.value())
        b4 = machine.Pin(4, machine.Pin.IN, machine.Pin.PULL_UP)
        R(b4.value())
        b4.sim_set(0); R(b4())
        try:
            machine.Pin(99)
        except ValueError:
            R("invalid")
    """, env={"OTAKIT_SIM_PIN_0": "0"})
    assert results(r) == [(1, 0), 0, 1, 0, "invalid"]


def test_device_sees_its_heap_budget_in_one_piece(flash, device):
    # The budget, less the pool that holds the device's first names (640 entries, about 7 KB on
    # the 64-bit unix port) and this script's own code (~2.5 KB), is free; and it is one region,
    # as on a board, not holes left by the simulator's own boot: the largest single allocation
    # is nearly all of it (it was under a third before the simulator filled its holes).
    r = device(flash, LARGEST_BLOCK + "R((FREE, LARGEST))\n", heapsize="56K")
    free, largest = results(r)[0]
    assert 56 * 1024 - 10 * 1024 < free <= 56 * 1024
    assert largest > 0.85 * free


def test_device_names_start_in_a_pool_of_their_own(flash, device):
    # Interned names live in heap pools that double in size (20, 40, ... entries). The
    # simulator fills the five pools its own names need (620 entries), so the device's first
    # name opens a 640-entry pool: what a board spends on pools for 301-620 device names.
    r = device(flash, """
import micropython
micropython.qstr_info()
""")
    m = re.search(r"n_pool=(\d+), n_qstr=(\d+)", r.log)
    assert m, r.log
    assert int(m.group(1)) == 6 and 620 < int(m.group(2)) <= 640


def test_env_vars_reach_the_device_and_vfs_is_cwd(flash, device):
    r = device(flash, """
        import os
        R((os.getenv("SERVER_URL"), os.getcwd()))
        with open("/flash/user.cfg", "w") as f:
            f.write("x")
        R(os.listdir("/flash"))
    """, env={"SERVER_URL": "http://127.0.0.1:1"})
    assert results(r) == [("http://127.0.0.1:1", "/flash"), ["user.cfg"]]


def test_app_dir_boot_and_main_run_in_order(flash, tmp_path):
    from otakit.sim.runner import run

    app = tmp_path / "fw"
    app.mkdir()
    (app / "boot.py").write_text("print('R:', repr('boot'))\n")
    (app / "helper.py").write_text("X = 'helper'\n")
    (app / "main.py").write_text("import helper\nprint('R:', repr(helper.X))\n")
    r = run(flash, app_dir=app)
    assert results(r) == ["boot", "helper"] and r.ended == "finished"


def test_script_exception_is_reported(flash, device):
    r = device(flash, "raise ValueError('boom')\n")
    assert r.error and "ValueError: boom" in r.log and r.ended == "finished"


def test_hang_image_times_out(tmp_path, device):
    from otakit.appimage import make_app_image
    from otakit.sim.flash import create_flash

    flash = create_flash("esp32", make_app_image("1.0.0", behaviour="hang"), tmp_path / "h.img")
    r = device(flash, "R('never')\n", timeout=2)
    assert r.ended == "timeout" and r.boots[0].version == "1.0.0"


def test_vfs_file_cannot_shadow_board_modules(flash, device):
    r = device(flash, """
        import sys
        with open("esp32.py", "w") as f:
            f.write("SHADOW = 1\\n")
        R([p for p in sys.path if not p.startswith("/") or p.startswith("/flash")])
    """)
    r2 = device(flash, "R(hasattr(esp32, 'SHADOW'))\n")
    assert results(r)[0] == ["", ".frozen", "/flash/lib"] and results(r2) == [False]


def test_filesystem_modules_are_found_before_frozen_ones(flash, device, tmp_path):
    # On a board sys.path is ["", ".frozen", "/lib"]: a module on the filesystem shadows a frozen
    # one of the same name (firmware/boot.py takes the filesystem off the path for that). The app
    # directory stands for the frozen modules here, so it comes after the filesystem too.
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "shadowed.py").write_text("WHERE = 'frozen'\n")
    r = device(flash, """
import sys
with open("shadowed.py", "w") as f:
    f.write("WHERE = 'filesystem'\\n")
import shadowed
R(shadowed.WHERE)
R(sys.path.index("") < sys.path.index(".frozen") < sys.path.index("/flash/lib"))
""")
    assert results(r) == ["filesystem", True]
