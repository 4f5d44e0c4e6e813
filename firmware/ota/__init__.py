# ota: signed, power-safe over-the-air updates for MicroPython on ESP32.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Public API. Imports are deferred, so `import ota` costs almost no RAM until a piece is used:
#   ota.boot(checks, timeout_ms)      first thing at every boot: confirm or roll back a trial
#   ota.Config(url, product, board, ...)
#   ota.Agent(config)                 check() / install(offer) / update() / run() / status()
# (Agent and Config are factories for ota.agent.Agent and ota.config.Config.)
__version__ = "0.1.0"


def boot(checks=(), timeout_ms=30000, **kw):
    from .trial import boot as _boot
    try:
        return _boot(checks, timeout_ms, **kw)
    finally:
        release("trial", "state")


def release(*names):
    # Forget ota submodules that are no longer needed, so their code can be collected when the
    # package is loaded as .mpy (interned names stay). The next import loads them again.
    import sys
    ota = sys.modules[__name__]
    for name in names:
        if sys.modules.pop(__name__ + "." + name, None) is not None and hasattr(ota, name):
            delattr(ota, name)
    import gc
    gc.collect()


def Config(*args, **kw):  # noqa: N802 - reads like the class it makes
    from .config import Config as _Config
    return _Config(*args, **kw)


def Agent(*args, **kw):  # noqa: N802
    from .agent import Agent as _Agent
    return _Agent(*args, **kw)
