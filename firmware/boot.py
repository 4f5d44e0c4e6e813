# boot.py: runs first at every boot, before main.py. Frozen into a product's firmware (with
# main.py), where it takes precedence over a boot.py on the filesystem. The update agent's boot
# step (confirm or roll back a trial boot) runs at the top of main.py, where the app's health
# checks are defined.
#
# Only code in the signed firmware is imported. MicroPython searches the filesystem first
# (sys.path is ["", ".frozen", "/lib"]), so a module written there could replace a frozen one
# (the agent, the keyring, the app) or add to it. When the agent is frozen, the filesystem
# entries leave sys.path; on a development board, whose agent is in /lib (otakit deploy), they
# stay. (ETSI EN 303 645 5.3-1; docs/security.md.)
import gc
import os
import sys


def _frozen_only():
    vfs = os.getcwd().rstrip("/") + "/"  # the filesystem's root: "/" on a board
    keep = [p for p in sys.path if p and not (p + "/").startswith(vfs)]
    saved = sys.path[:]
    sys.path[:] = keep
    try:
        import ota  # noqa: F401 - found among the firmware's own modules, or not at all
    except ImportError:
        sys.path[:] = saved  # a development board: the agent is on the filesystem


_frozen_only()
del _frozen_only
gc.collect()
