"""The power-cut campaign's scenarios (`SCENARIOS`) and the device scripts they run.

Each scenario is one update cycle on the simulated board (`otakit.sim.campaign` describes them);
the scripts here are what the device runs: a bare agent script (`DEVICE_SCRIPT`) or the example
door-lock app (`APP_SCRIPT`, after `APP_SETUP` wrote the user's files `APP_USER_FILES`). The
``bundle`` scenario's setup (`setup_bundle`) puts the release as a bundle file on the board's
filesystem, which the bare script installs offline (`bundle_script`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otakit.sim.lab import Lab

HEAP = "128K"

# The device: confirm or roll back, save the app's own state as an app would, then check for
# updates until one attempt does not fail (at most 3), resetting after an install. UNHEALTHY (set
# in a first line by `device_script`) names a version whose health check fails.
DEVICE_SCRIPT = """\
import esp32, json, machine, os, ota, _simflash

def settings_ok():
    return json.load(open("ota_config.json"))["product"] == "doorlock"

def healthy():
    return esp32.sim_firmware()[1] != UNHEALTHY

outcome, detail = ota.boot(checks=(settings_ok, healthy), timeout_ms=5000)
print("BOOT " + outcome)
try:
    boots = json.load(open("lock.json"))["boots"]
except (OSError, ValueError, KeyError):
    boots = 0
with open("lock.tmp", "w") as f:
    json.dump({"locked": True, "boots": boots + 1}, f)
os.rename("lock.tmp", "lock.json")
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"]))

def progress(done, total):
    if done == total:
        print("DOWNLOADED %d" % _simflash.ops_total())

agent.on_progress = progress
for i in range(3):
    installed = agent.update_sync()
    print("STATUS " + json.dumps(agent.status()))
    if installed:
        machine.reset()
    if agent.status()["state"] != "failed":
        break
"""

# A change of the user's update settings at every boot of ``settings`` (before the app runs): a
# vfs write under the cuts; ota_settings.json must be the old or the new file, never torn. The
# user moves to another time zone (APP_SETUP's is +60 min); neither sets a maintenance window, so
# that the update never waits for the hour the campaign happens to run at (until 2026-12-07 a
# window of 01:00-22:30 postponed every run made after 21:30 UTC).
SETTINGS_CHANGE = """\
from ota.settings import Settings
Settings().set_window(None, None, tz_min=120)
"""

# The example app itself (firmware/doorlock.py, with the lab's policy: first check at once, one
# check per boot, no notice delay), then the agent's status after one more check for the oracle.
APP_SCRIPT = """\
import json, ota, _simflash, doorlock

progress = doorlock.progress

def counted(done, total):
    progress(done, total)
    if done == total:
        print("DOWNLOADED %d" % _simflash.ops_total())

doorlock.progress = counted
doorlock.main()
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"]))
agent.check_sync()
print("STATUS " + json.dumps(agent.status()))
"""

# Before the cut update of ``app``: the user names the lock and chooses update settings, as a
# user would; these files must come through every run byte for byte.
APP_USER_FILES = ["lock_config.json", "ota_settings.json"]
APP_SETUP = """\
import doorlock
from ota.settings import Settings
store = doorlock.lock_store()
cfg = store.load()
cfg["name"] = "Back door"
store.save(cfg)
Settings().set(notify=True, auto_install=True)
Settings().set_window(None, None, tz_min=60)  # no window: any time of day (SETTINGS_CHANGE)
print("SETUP done")
"""


@dataclass(frozen=True)
class Scenario:
    """One update cycle to cut: ``size`` bytes per image; ``crash``: the new image crashes;
    ``second``: the board already runs a release installed by the agent (1.1.0 in ota_1,
    confirmed), and the update cut is the next one, 1.1.0 -> 1.2.0, back into ota_0; ``app``:
    the device runs the example door-lock app instead of a bare agent script; ``unhealthy``: the
    new image boots but its health check fails (the agent rolls back); ``encoding``: the
    release is also published as a "deflate" or "delta" (from the old image) payload, which the
    agent takes; ``keyring``: the release is signed by a new key that only a keyring document
    (signed by the firmware's root key, fetched in the same check) trusts; ``settings``: the
    app's user changes the update settings at every boot; ``chain``: two consecutive updates,
    1.0.0 -> 1.1.0 -> 1.2.0, a cut in each (the first's install/trial/confirm, the second's
    whole cycle); ``revert``: a signed revert (docs/format.md §2.6) from 1.1.0 back to 1.0.0,
    still in the other slot (`revert_setup`): nothing is downloaded, the "new" release is the
    older one, and the installed sequence goes down to it once its trial is confirmed;
    ``bundle``: the device installs the release offline, from a bundle file on its
    filesystem (`setup_bundle`, `bundle_script`), never asking the server."""

    name: str
    size: int
    crash: bool = False
    second: bool = False
    app: bool = False
    unhealthy: bool = False
    encoding: str = ""
    keyring: bool = False
    settings: bool = False
    chain: bool = False
    revert: bool = False
    bundle: bool = False

    @property
    def rejects(self) -> bool:
        """Whether the new release must end refused (its boot crashes or fails its checks)."""
        return self.crash or self.unhealthy


def device_script(scenario: Scenario, unhealthy: str | None) -> str:
    """The script the device runs at every boot of ``scenario``."""
    if scenario.app:
        return (SETTINGS_CHANGE if scenario.settings else "") + APP_SCRIPT
    if scenario.bundle:
        return bundle_script(unhealthy)
    return f"UNHEALTHY = {unhealthy!r}\n" + DEVICE_SCRIPT


def revert_setup(lab: Lab, script: Path, size: int) -> tuple[bytes, bytes, int]:
    """The ``revert`` scenario up to its cut: the board runs 1.0.0 (sequence 1: its frozen
    origin, so the agent does not download it), the agent updates it to 1.1.0 (sequence 2; both
    security version 1, so the floor is 1) uncut, then `otakit revert` publishes the revert to
    1.0.0. Returns (the running image 1.1.0, the revert's target 1.0.0, the revert's revision).
    """
    from otakit.appimage import make_app_image  # noqa: PLC0415 - the lane's imports only
    from otakit.revert import make_revert  # noqa: PLC0415
    from otakit.sim.inspect import read_state  # noqa: PLC0415
    from otakit.sim.lab import PRODUCT  # noqa: PLC0415
    from otakit.sim.runner import run  # noqa: PLC0415

    first = make_app_image("1.0.0", size=size, seed="old")
    later = make_app_image("1.1.0", size=size, seed="new")
    lab.flash(first, origin=(1, 1))
    lab.publish(first, "1.0.0", 1, security_version=1)
    lab.publish(later, "1.1.0", 2, security_version=1)
    result = run(lab.flash_path, script=script, app_dir=lab.device_dir, max_boots=10,
                 heapsize=HEAP, timeout=60)
    if read_state(lab.flash_path).nvs.get("otakit", {}).get("seq") != 2:
        raise RuntimeError("the update before the revert failed:\n" + result.log)
    body = make_revert(lab.repo, (PRODUCT, lab.board.name, lab.channel), lab.key)
    return later, first, body.revision


# --- bundle: an offline install from a file on the board's filesystem -------------------------
BUNDLE_FILE = "bundle.otab"


def bundle_script(unhealthy: str | None) -> str:
    """The bare script with the check replaced by the install of `BUNDLE_FILE` (at every boot:
    after a cut it resumes, after the update it finds the release up to date)."""
    script = DEVICE_SCRIPT.replace("agent.update_sync()",
                                   f"agent.install_file_sync({BUNDLE_FILE!r})")
    assert script != DEVICE_SCRIPT
    return f"UNHEALTHY = {unhealthy!r}\n" + script


def setup_bundle(lab: Lab, work: Path) -> None:
    """Make the lab's published release into a bundle (`otakit.bundle`) and copy it onto the
    board's filesystem with one boot, before the starting image is kept."""
    from otakit.bundle import make_bundle  # noqa: PLC0415
    from otakit.sim.bundle import copy_script  # noqa: PLC0415
    from otakit.sim.lab import PRODUCT  # noqa: PLC0415

    info = make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel, work / BUNDLE_FILE)
    script = work / "copy_bundle.py"
    script.write_text(copy_script(info.header.size))
    result = lab.boot(script=script, max_boots=1, heapsize=HEAP,
                      env={"OTAKIT_BUNDLE_SRC": str(info.path.resolve())})
    if "COPIED" not in result.log:
        raise RuntimeError("the bundle scenario's copy failed:\n" + result.log)


SCENARIOS = {s.name: s for s in (Scenario("small", 256 * 1024),
                                 Scenario("large", 1_500_000),
                                 Scenario("rollback", 64 * 1024, crash=True),
                                 Scenario("second", 256 * 1024, second=True),
                                 Scenario("app", 256 * 1024, app=True),
                                 Scenario("unhealthy", 64 * 1024, unhealthy=True),
                                 Scenario("chain", 128 * 1024, chain=True),
                                 Scenario("deflate", 256 * 1024, encoding="deflate"),
                                 Scenario("delta", 256 * 1024, encoding="delta"),
                                 Scenario("keyring", 128 * 1024, keyring=True),
                                 Scenario("settings", 128 * 1024, app=True, settings=True),
                                 Scenario("revert", 128 * 1024, revert=True),
                                 Scenario("bundle", 128 * 1024, bundle=True))}
