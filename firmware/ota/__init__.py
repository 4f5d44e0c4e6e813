# ota: signed, power-safe over-the-air updates for MicroPython on ESP32.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Public API. Imports are deferred, so `import ota` costs almost no RAM until a piece is used:
#   ota.boot(checks, timeout_ms)      first thing at every boot: confirm or roll back a trial
#   ota.Config(url, product, board, ...)
#   ota.Agent(config)                 check() / install(offer) / update() / run() / status()
# (Agent and Config are factories for ota.agent.Agent and ota.config.Config.)
__version__ = "0.1.0"


# The submodules that stay loaded: their objects (the Agent and its State, Config, Slot, the
# error classes every phase raises, the update loop and its policy) live as long as the app.
RESIDENT = ("agent", "config", "errors", "slot", "state", "updater", "policy", "settings")


def boot(checks=(), timeout_ms=30000, **kw):
    from .trial import boot as _boot
    try:
        return _boot(checks, timeout_ms, **kw)
    finally:
        release()


def release(only=None):
    # The one rule for phase code: forget every ota submodule not in RESIDENT, so its code can
    # be collected when the package is loaded as .mpy (interned names stay; a module still in
    # use stays alive through its functions until they return). The next import loads it again.
    # only: a tuple of names: forget just these (what a resident function loaded for one call,
    # within a phase whose other modules are still in use: ota.state).
    import sys
    ota = sys.modules[__name__]
    prefix = __name__ + "."
    for key in [k for k in sys.modules if k.startswith(prefix)]:
        name = key[len(prefix):]
        if (name in only) if only else (name not in RESIDENT):
            del sys.modules[key]
            if hasattr(ota, name):
                delattr(ota, name)
    import gc
    gc.collect()


def Config(*args, **kw):  # noqa: N802 - reads like the class it makes
    from .config import Config as _Config
    return _Config(*args, **kw)


def Agent(*args, **kw):  # noqa: N802
    from .agent import Agent as _Agent
    return _Agent(*args, **kw)
