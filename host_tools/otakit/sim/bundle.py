"""A bundle file installed on the simulated board, as `otakit deploy --bundle` installs one on a
USB board (`otakit sim install`).

One boot (max_boots=1) runs `otakit.deploy`'s free-space check, a copy of the host's file into the
board's littlefs in 4 KB blocks (the unix port reads host paths, as mpremote writes a file to a
board; a full filesystem removes the part written) and the agent's install script, which removes
the file and prints the ``OTAKIT-BUNDLE`` line `otakit.deploy.bundle_outcome` reads. After an
install the board is powered on again and runs its firmware (main.py: the app's trial boot), as
the reset after a USB deploy does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from otakit.deploy import BUNDLE_INSTALL, BUNDLE_SPACE, BundleFile, bundle_outcome
from otakit.errors import OtakitError, ToolError
from otakit.sim.provision import firmware_dir
from otakit.sim.runner import run

_COPY = """\
try:
    with open(os.getenv("OTAKIT_BUNDLE_SRC"), "rb") as src, open("bundle.otab", "wb") as dst:
        buf = bytearray(4096)
        while True:
            n = src.readinto(buf)
            if not n:
                break
            dst.write(memoryview(buf)[:n])
except OSError as e:
    os.remove("bundle.otab")
    print("OTAKIT-NO-SPACE %d (%s)" % (free, e))
    raise SystemExit(1)
"""


def copy_script(size: int) -> str:
    """The device script that only copies the file ``$OTAKIT_BUNDLE_SRC`` of ``size`` bytes into
    the board's filesystem as ``bundle.otab`` and prints ``COPIED`` (the campaign's bundle
    scenario, `otakit.sim.scenarios.setup_bundle`)."""
    return BUNDLE_SPACE.format(size=size) + _COPY + 'print("COPIED")\n'


def install_bundle(image: Path, bundle: BundleFile, app_dir: Path | None = None,
                   heapsize: str = "112K") -> tuple[dict, list[str]]:
    """Install ``bundle`` on the simulated board ``image``: the outcome
    (`otakit.deploy.bundle_outcome`) and, after an install, the version each following boot ran.
    ``app_dir``: the firmware's frozen code [default: IMAGE.firmware/ when present].

    Raises:
        OtakitError: as `bundle_outcome`; ``DEVICE_ERROR`` when the boot did not report.
    """
    if app_dir is None and firmware_dir(image).is_dir():
        app_dir = firmware_dir(image)
    with tempfile.TemporaryDirectory(prefix="otakit-bundle-") as tmp:
        script = Path(tmp) / "bundle.py"
        script.write_text(BUNDLE_SPACE.format(size=bundle.header.size) + _COPY + BUNDLE_INSTALL)
        result = run(image, script=script, app_dir=app_dir, max_boots=1, heapsize=heapsize,
                     env={"OTAKIT_BUNDLE_SRC": str(bundle.path.resolve())})
    try:
        out = bundle_outcome(result.log)
    except ToolError:
        last = " | ".join(result.log.strip().splitlines()[-2:])
        raise OtakitError(f"the install boot failed: {last}", reason="DEVICE_ERROR") from None
    versions: list[str] = []
    if out["installed"]:
        trial = run(image, app_dir=app_dir, max_boots=3, heapsize=heapsize)
        versions = [b.version for b in trial.boots]
    return out, versions
