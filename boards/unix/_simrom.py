# _simrom.py: the simulated board's frozen-code mode (boards/unix/_simboot.py, OTAKIT_SIM_ROMFS).
# MIT license; Copyright (c) 2026 otakit contributors
#
# Loaded only in that mode, so that its names do not count among the simulator's own in the
# other one (_simboot pads those to a pool boundary).
import os


def _vuint(f):
    n = 0
    while True:
        b = f.read(1)[0]
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n


def intern_names(top="/rom"):
    # The frozen-code mode: on a board, the names of frozen modules are compiled into the
    # firmware's own qstr pool, in flash; a module executed from ROMFS interns them on the heap
    # when it is imported. So that the budget models frozen code, every name in the .mpy files of
    # the ROMFS image (each file's qstr table) is interned now, before the budget is set aside.
    for e in os.ilistdir(top):
        name = e[0]
        path = top + "/" + name
        if e[1] == 0x4000:
            intern_names(path)
        elif name.endswith(".mpy"):
            with open(path, "rb") as f:
                if f.read(4)[0] != 0x4D:  # "M": not a compiled module
                    continue
                n = _vuint(f)
                _vuint(f)  # the constant objects, after the names
                for _ in range(n):
                    v = _vuint(f)
                    if not v & 1:  # a static name (odd) is the firmware's already
                        getattr(None, f.read(v >> 1).decode(), None)  # interns it
                        f.read(1)


def mount():
    # The frozen-code mode (OTAKIT_SIM_ROMFS, otakit.sim.runner): the app's modules in a ROMFS
    # image, mounted at /rom in the app directory's place on sys.path. Imports from it execute the
    # bytecode in place. The image is read into the heap before the budget is set aside, so it
    # stays outside the budget, as frozen code in a board's flash does.
    import sys
    import vfs

    path = os.getenv("OTAKIT_SIM_ROMFS")
    data = bytearray(os.stat(path)[6])
    with open(path, "rb") as f:
        f.readinto(data)
    vfs.mount(vfs.VfsRom(data), "/rom")
    sys.path.insert(1, "/rom")  # after the simulator's modules, where the app directory was
