"""Security scenarios on the simulated board: anti-rollback, freshness, keys and keyrings.

Each test names the threat of docs/threat-model.md it answers. A refusal is judged by what a user
would see: the reason code the agent reports, which image runs, the otadata entries, the agent's
NVS state, and whether the device downloaded anything.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from scenario import (HEAP, SIZE, blob_requests, last, manifest_by_hand, otadata, prepare,
                        publish_by_hand, step, write)

from otakit.appimage import make_app_image
from otakit.keys import ED25519, RSA_PSS, PrivateKey, generate_key
from otakit.paths import FIRMWARE_DIR
from otakit.sim.flash import create_flash
from otakit.sim.lab import PRODUCT, Lab
from otakit.sim.runner import run


@pytest.fixture(scope="module")
def keypool() -> dict[str, PrivateKey]:
    """Keys made once for the module (RSA key generation is slow): roots, releases, dev."""
    return {"root1": generate_key(RSA_PSS), "root2": generate_key(RSA_PSS),
            "root3": generate_key(ED25519), "rel2": generate_key(RSA_PSS),
            "rel3": generate_key(ED25519), "dev_root": generate_key(ED25519),
            "dev_rel": generate_key(ED25519)}


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab") as the_lab:
        prepare(the_lab)
        the_lab.flash(make_app_image("1.0.0", size=SIZE))
        yield the_lab


def image(version: str, **kw: object) -> bytes:
    return make_app_image(version, size=SIZE, **kw)  # type: ignore[arg-type]


# --- anti-rollback ---------------------------------------------------------------------------

def test_downgrade_to_a_lower_sequence_is_refused_before_download(lab: Lab) -> None:
    lab.publish(image("1.1.0"), "1.1.0", 3)
    old = lab.manifest_path.read_bytes()
    step(lab)
    lab.publish(image("1.2.0"), "1.2.0", 4)
    step(lab)
    assert lab.nvs()["seq"] == 4
    blobs = len(blob_requests(lab))
    lab.manifest_path.write_bytes(old)  # the old, validly signed sequence-3 manifest again
    result = step(lab)
    assert last(result)["reason"] == "OLD_REVISION"  # a superseded document (its revision)
    assert result.last.version == "1.2.0" and len(result.boots) == 1
    assert len(blob_requests(lab)) == blobs  # refused before anything was downloaded
    publish_by_hand(lab, image("0.9.0"), sequence=1, version="0.9.0")  # a fresh low one
    assert last(step(lab))["reason"] == "ROLLBACK"  # newest revision, old sequence
    assert len(blob_requests(lab)) == blobs


def test_security_version_below_the_floor_is_refused_before_download(lab: Lab) -> None:
    lab.publish(image("1.1.0"), "1.1.0", 2, security_version=5)
    step(lab)
    assert lab.nvs()["floor"] == 5
    blobs = len(blob_requests(lab))
    publish_by_hand(lab, image("1.0.0"), sequence=3, security_version=4, version="1.0.0")
    result = step(lab)
    assert last(result)["reason"] == "SECURITY_FLOOR"
    assert result.last.version == "1.1.0" and otadata(lab)[-1] == (2, "VALID")
    assert len(blob_requests(lab)) == blobs


def test_floor_rises_only_after_a_confirmed_boot(lab: Lab) -> None:
    # installed but not yet rebooted: the floor has not moved
    lab.publish(image("1.1.0"), "1.1.0", 2, security_version=3)
    lab.provision(reset=False)
    step(lab)
    nvs = lab.nvs()
    assert nvs["t_sv"] == 3 and nvs.get("floor", 0) == 0 and nvs.get("seq", 0) == 0
    # a trial that fails (crash) rolls back: the floor still has not moved
    lab.provision()
    lab.publish(image("1.2.0", behaviour="crash"), "1.2.0", 3, security_version=4)
    result = step(lab)
    assert "BOOT rolled_back" in result.log, result.log
    assert lab.nvs().get("floor", 0) == 0
    # a confirmed trial raises it
    lab.publish(image("1.3.0"), "1.3.0", 4, security_version=4)
    result = step(lab)
    assert "BOOT confirmed" in result.log
    assert lab.nvs()["floor"] == 4 and lab.nvs()["seq"] == 4


def test_roll_forward_re_release_of_older_code_is_installed(lab: Lab) -> None:
    lab.publish(image("1.1.0"), "1.1.0", 2, security_version=1)
    step(lab)
    # "reset to older firmware": the 1.0.0 code again, as a new sequence, same security version
    lab.publish(image("1.0.0"), "1.0.0", 3, security_version=1)
    result = step(lab)
    assert "BOOT confirmed" in result.log, result.log
    assert result.last.version == "1.0.0" and lab.nvs()["seq"] == 3
    assert lab.nvs()["floor"] == 1


def test_wiping_user_data_never_lowers_the_floor(lab: Lab) -> None:
    lab.publish(image("1.1.0"), "1.1.0", 2, security_version=2)
    step(lab)
    before = {k: lab.nvs()[k] for k in ("seq", "floor")}
    # the vfs spans from the end of the last partition to the end of flash (MicroPython >= 1.26)
    start = max(p.offset + p.size for p in lab.board.partitions)
    flash = bytearray(lab.flash_path.read_bytes())
    flash[start:] = b"\xff" * (len(flash) - start)  # factory-reset the user data
    lab.flash_path.write_bytes(bytes(flash))
    lab.provision()  # the app's settings are gone: provision again
    assert {k: lab.nvs()[k] for k in ("seq", "floor")} == before
    publish_by_hand(lab, image("1.0.0"), sequence=3, security_version=1, version="1.0.0")
    assert last(step(lab))["reason"] == "SECURITY_FLOOR"


# --- freshness -------------------------------------------------------------------------------

def test_expired_manifest_is_refused_when_the_clock_is_set(lab: Lab) -> None:
    publish_by_hand(lab, image("1.1.0"), sequence=2, expires=int(time.time()) - 60)
    result = step(lab)
    assert last(result)["reason"] == "EXPIRED"
    assert blob_requests(lab) == [] and len(result.boots) == 1


def test_without_a_clock_sequence_monotonicity_still_holds(lab: Lab) -> None:
    # documented: no clock (and no TLS Date) means expiry cannot be judged ...
    lab.provision(clock=0)
    publish_by_hand(lab, image("1.1.0"), sequence=2, expires=int(time.time()) - 60,
                    version="1.1.0")
    result = step(lab)
    assert "BOOT confirmed" in result.log
    # ... but a replayed older manifest is still refused by its sequence
    publish_by_hand(lab, image("1.0.0"), sequence=1, version="1.0.0")
    assert last(step(lab))["reason"] == "ROLLBACK"


def test_frozen_channel_is_reported_and_refresh_keeps_the_device_up_to_date(lab: Lab) -> None:
    now = int(time.time())
    lab.publish(image("1.1.0"), "1.1.0", 2, expires=now + 3600)
    step(lab)
    # an attacker (or a forgetful publisher) serves the same release past its expiry
    stale = manifest_by_hand(lab, image("1.1.0"), sequence=2, version="1.1.0",
                             expires=now - 60)
    lab.manifest_path.write_bytes(stale)
    assert last(step(lab))["reason"] == "EXPIRED"  # the freeze is visible
    blobs = len(blob_requests(lab))
    res = lab.repo.refresh(PRODUCT, lab.board.name, lab.channel, now + 30 * 86400, lab.key)
    assert res.body.sequence == 2 and res.body.expires == now + 30 * 86400
    result = step(lab)
    assert last(result)["state"] == "up_to_date" and lab.nvs()["seq"] == 2
    assert len(blob_requests(lab)) == blobs and len(result.boots) == 1


# --- keys and keyrings -----------------------------------------------------------------------

@pytest.fixture
def rooted(tmp_path: Path, keypool: dict[str, PrivateKey]):
    """A lab whose firmware bakes root1 (threshold 1) besides the initial release key."""
    with Lab(tmp_path / "lab", roots=[keypool["root1"]]) as the_lab:
        prepare(the_lab)
        the_lab.flash(make_app_image("1.0.0", size=SIZE))
        yield the_lab


def test_keyring_rotation_and_revocation(rooted: Lab, keypool: dict[str, PrivateKey]) -> None:
    lab, rel2 = rooted, keypool["rel2"]
    # rotation: keyring v1 delegates to rel2 (and drops the baked-in key)
    lab.sign_keyring([rel2], 1)
    lab.publish(image("1.1.0"), "1.1.0", 2, key=rel2)
    result = step(lab)
    assert "BOOT confirmed" in result.log, result.log
    assert last(result)["keyring_version"] == 1
    # the baked-in key is no longer trusted once a keyring was accepted
    publish_by_hand(lab, image("1.2.0"), sequence=3, version="1.2.0")
    assert last(step(lab))["reason"] == "UNKNOWN_KEY"
    # revocation: keyring v2 leaves rel2 out; a release signed by it is refused
    lab.sign_keyring([keypool["rel3"]], 2)
    publish_by_hand(lab, image("1.2.0"), rel2, sequence=3, version="1.2.0")
    result = step(lab)
    assert last(result)["reason"] == "UNKNOWN_KEY" and last(result)["keyring_version"] == 2
    publish_by_hand(lab, image("1.2.0"), keypool["rel3"], sequence=3, version="1.2.0")
    assert "BOOT confirmed" in step(lab).log


def test_older_keyring_is_refused(rooted: Lab, keypool: dict[str, PrivateKey]) -> None:
    lab = rooted
    v1 = lab.sign_keyring([keypool["rel2"]], 1)
    lab.sign_keyring([keypool["rel3"]], 2)
    lab.publish(image("1.1.0"), "1.1.0", 2, key=keypool["rel3"])
    step(lab)
    write(lab.repo.keyring_path(PRODUCT), v1)  # replay: v1 still trusts rel2
    publish_by_hand(lab, image("1.2.0"), keypool["rel2"], sequence=3, version="1.2.0")
    result = step(lab)
    assert last(result)["reason"] == "KEYRING_ROLLBACK"
    assert last(result)["keyring_version"] == 2 and result.last.version == "1.1.0"
    # the same version with other content is refused too
    lab.sign_keyring([keypool["rel2"], keypool["rel3"]], 2)
    assert last(step(lab))["reason"] == "KEYRING_ROLLBACK"


def test_expired_keyring_is_refused(rooted: Lab, keypool: dict[str, PrivateKey]) -> None:
    lab = rooted
    lab.sign_keyring([keypool["rel2"]], 1, expires=int(time.time()) - 60)
    lab.publish(image("1.1.0"), "1.1.0", 2, key=keypool["rel2"])
    result = step(lab)
    assert last(result)["reason"] == "EXPIRED" and "keyring" in last(result)["detail"]
    assert blob_requests(lab) == []


def test_keyring_threshold_two_of_three(tmp_path: Path, keypool: dict[str, PrivateKey]) -> None:
    roots = [keypool["root1"], keypool["root2"], keypool["root3"]]
    with Lab(tmp_path / "lab", roots=roots, threshold=2) as lab:
        prepare(lab)
        lab.flash(image("1.0.0"))
        lab.publish(image("1.1.0"), "1.1.0", 2, key=keypool["rel2"])
        lab.sign_keyring([keypool["rel2"]], 1, roots=[keypool["root2"]])
        assert last(step(lab))["reason"] == "BAD_SIGNATURE"  # 1 of 2
        lab.sign_keyring([keypool["rel2"]], 1, roots=[keypool["root2"], keypool["dev_root"]])
        assert last(step(lab))["reason"] == "BAD_SIGNATURE"  # a stranger does not count
        lab.sign_keyring([keypool["rel2"]], 1, roots=[keypool["root3"], keypool["root2"]])
        assert "BOOT confirmed" in step(lab).log


def test_new_root_needs_both_thresholds(tmp_path: Path, keypool: dict[str, PrivateKey]) -> None:
    old, new = keypool["root1"], keypool["root2"]
    with Lab(tmp_path / "lab", roots=[old]) as lab:
        prepare(lab)
        lab.flash(image("1.0.0"))
        lab.publish(image("1.1.0"), "1.1.0", 2, key=keypool["rel2"])
        # a keyring signed by the new root only: firmware with the old root refuses it
        lab.sign_keyring([keypool["rel2"]], 1, roots=[new])
        assert last(step(lab))["reason"] == "UNKNOWN_KEY"
        # signed by both: the old firmware accepts it ...
        lab.sign_keyring([keypool["rel2"]], 1, roots=[old, new])
        assert "BOOT confirmed" in step(lab).log
        # ... and so does the firmware update that bakes the new root only
        lab.bake_keys([lab.key], [new])
        lab.publish(image("1.2.0"), "1.2.0", 3, key=keypool["rel2"])
        result = step(lab)
        assert "BOOT confirmed" in result.log and last(result)["keyring_version"] == 1
        # from then on the old root alone is not enough
        lab.sign_keyring([keypool["rel2"]], 2, roots=[old])
        assert last(step(lab))["reason"] == "UNKNOWN_KEY"


def test_production_firmware_refuses_development_signing(
        rooted: Lab, keypool: dict[str, PrivateKey]) -> None:
    lab = rooted
    dev_rel, dev_root = keypool["dev_rel"], keypool["dev_root"]
    lab.sign_keyring([lab.key], 1)  # the production keyring (firmware with ROOTS needs one)
    # a release signed by a development key
    lab.publish(image("1.1.0"), "1.1.0", 2, key=dev_rel)
    assert last(step(lab))["reason"] == "UNKNOWN_KEY"
    # a development keyring (dev root) delegating to it
    lab.sign_keyring([dev_rel], 1, roots=[dev_root], env="development")
    assert last(step(lab))["reason"] == "UNKNOWN_KEY"
    # even signed by the production root, a development keyring is not for this firmware
    lab.sign_keyring([dev_rel], 1, env="development")
    result = step(lab)
    assert last(result)["reason"] == "WRONG_ENV"
    assert result.last.version == "1.0.0" and blob_requests(lab) == []
    # development firmware with the development root takes it
    lab.bake_keys([lab.key], [dev_root], env="development")
    lab.sign_keyring([dev_rel], 1, roots=[dev_root], env="development")
    assert "BOOT confirmed" in step(lab).log


# Written onto the board's filesystem by someone with file access (an app bug, a left-open REPL):
# modules that would replace the agent, the keyring and the app, and a boot.py and main.py.
PLANT = """\
import os
evil = 'print("PLANTED %s")\\nraise SystemExit\\n'
for name in ("ota.py", "ota_keys.py", "doorlock.py", "boot.py", "main.py"):
    with open(name, "w") as f:
        f.write(evil % name)
os.mkdir("lib")
with open("lib/ota.py", "w") as f:
    f.write(evil % "lib/ota.py")
print("PLANTED:", sorted(os.listdir()))
"""


def test_code_on_the_filesystem_is_never_imported(lab: Lab) -> None:
    # 5.3-1 / threat model "code injection through the filesystem": MicroPython looks on the
    # filesystem before the frozen modules, so these would shadow the agent, its keys and the app.
    # The firmware's frozen boot.py takes the filesystem off sys.path; its frozen main.py runs,
    # not the planted one; the update goes through with the frozen agent and keys.
    lab.publish(image("1.1.0"), "1.1.0", 2)
    plant = lab.work / "plant.py"
    plant.write_text(PLANT)
    planted = lab.boot(script=plant, max_boots=1)
    assert "PLANTED: [" in planted.log and "'ota_keys.py'" in planted.log, planted.log
    result = lab.boot(heapsize=HEAP)  # boot.py and main.py as frozen in the firmware: the lock
    assert "PLANTED " not in result.log, result.log[-2000:]
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log[-2000:]
    assert "app: boot confirmed ota_1" in result.log


DEV_BOARD = """\
import os, sys
if "lib" not in os.listdir():
    os.mkdir("lib")
    with open("lib/ota.py", "w") as f:
        f.write('print("AGENT FROM THE FILESYSTEM")\\n')
else:
    import ota
print("PATH", sys.path[sys.path.index(".frozen"):])
"""


def test_a_development_board_keeps_its_agent_on_the_filesystem(tmp_path: Path) -> None:
    # Stock MicroPython with the agent copied to /lib (otakit deploy): nothing is frozen, so
    # boot.py leaves sys.path as it was and the agent imports from the filesystem.
    app = tmp_path / "app"  # the firmware: only the example boot.py is frozen
    app.mkdir()
    (app / "boot.py").write_bytes((FIRMWARE_DIR / "boot.py").read_bytes())
    flash = create_flash("esp32", image("1.0.0"), tmp_path / "flash.img")
    script = tmp_path / "dev.py"
    script.write_text(DEV_BOARD)
    for _ in range(2):  # the first boot writes /lib/ota.py, the second imports it
        result = run(flash, script=script, app_dir=app, max_boots=1)
    assert "AGENT FROM THE FILESYSTEM" in result.log, result.log
    assert "PATH ['.frozen', '/flash/lib']" in result.log
