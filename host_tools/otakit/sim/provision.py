"""Provision a simulated board as a factory would a real one: firmware with the agent, the
example app and the product's keyring frozen in, and the device's ``ota_config.json`` (and, for
encrypted payloads, its content key ``ota_content.key``) on its filesystem.

`otakit sim flash` calls this after writing the flash image. The firmware's frozen modules live
in the directory `firmware_dir` names beside the image (``flash.img`` -> ``flash.img.firmware/``):
``boot.py`` and ``main.py`` from ``firmware/``, the agent ``ota/`` and the example app
``doorlock`` compiled to .mpy, and the keyring module compiled to ``ota_keys.mpy``. `otakit sim
run` uses that directory as the board's frozen code unless ``--app-dir`` says otherwise. The
settings file is written by one boot of the board (a provisioning script instead of main.py),
so it lands on the simulated littlefs exactly as ``mpremote cp`` would put it on a board.

Invariants: the keyring is checked (`otakit.keys.load_keyring_module`) before anything is
written; a failed provisioning boot raises, it never leaves a half-provisioned board unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from otakit.errors import OtakitError
from otakit.keys import load_keyring_module
from otakit.mpy import compile_to_mpy
from otakit.paths import FIRMWARE_DIR

FIRMWARE_SUFFIX = ".firmware"

# Runs instead of main.py at the provisioning boot (boot.py has run): writes the settings file,
# and the CA certificate the config names ("ca_der": its DER bytes in hex, written as the file
# "ca" names, by default ota_ca.der).
PROVISION_ENV = "OTAKIT_PROVISION_CONFIG"
PROVISION_SCRIPT = """\
import binascii, json, os
cfg = json.loads(os.getenv("OTAKIT_PROVISION_CONFIG"))
der = cfg.pop("ca_der", None)
if der:
    cfg.setdefault("ca", "ota_ca.der")
    with open(cfg["ca"], "wb") as f:
        f.write(binascii.unhexlify(der))
key = cfg.pop("content_key", None)  # a content key file's line (otakit.contentkey)
if key:
    with open("ota_content.key", "w") as f:
        f.write(key)
    print("provisioned ota_content.key")
with open("ota_config.json", "w") as f:
    json.dump(cfg, f)
print("provisioned ota_config.json:", cfg)
"""


@dataclass(frozen=True)
class DeviceConfig:
    """The example app's ``ota_config.json`` for a simulated board (firmware/doorlock.py).

    The update policy is the simulation's: the first check at once, checks a second apart, no
    wait between the restart notice and the restart; ``checks`` ends the app after that many
    checks in one boot (0: never), so that ``otakit sim run`` ends. ``model`` is the model
    designation on the label (the device info shows it), ``ca`` the DER CA certificate for an
    https url (written onto the board as ``ota_ca.der``), ``local_port`` the port of the app's
    local interface (None: none).
    """

    url: str
    product: str
    board: str
    channel: str = "stable"
    checks: int = 1
    model: str | None = None
    ca: bytes | None = None
    local_port: int | None = None
    content_key: str | None = None  # a content key file's text: written as ota_content.key

    def to_json(self) -> dict[str, object]:
        """The file's fields (``ca_der``: the CA certificate, ``content_key``: the content key,
        each written to its own file by the provisioning boot)."""
        cfg: dict[str, object] = {
            "url": self.url.rstrip("/"), "product": self.product, "board": self.board,
            "channel": self.channel, "first_s": 0, "check_s": 1, "notice_s": 0,
            "max_checks": self.checks}
        if self.model:
            cfg["model"] = self.model
        if self.ca:
            cfg["ca_der"] = self.ca.hex()
        if self.local_port:
            cfg["local_port"] = self.local_port
        if self.content_key:
            cfg["content_key"] = self.content_key
        return cfg


def firmware_dir(image: str | os.PathLike[str]) -> Path:
    """The directory of the frozen modules of the firmware flashed into ``image``."""
    p = Path(image)
    return p.with_name(p.name + FIRMWARE_SUFFIX)


def freeze_firmware(image: str | os.PathLike[str], keyring: str | os.PathLike[str]) -> Path:
    """Write the firmware's frozen modules for ``image`` (`firmware_dir`): boot.py, main.py,
    the agent and the example app as .mpy, and ``keyring`` as ``ota_keys.mpy``.

    Raises:
        OtakitError: ``NO_KEYRING`` when ``keyring`` does not exist (run `otakit key export`);
            ``BAD_KEY`` when it is no keyring module; ``MPY_CROSS_FAILED``.
    """
    src = Path(keyring)
    if not src.is_file():
        raise OtakitError(f"no keyring module {src}: write it with `otakit key export "
                          "--micropython KEY.pub.pem`", reason="NO_KEYRING")
    load_keyring_module(src)  # a keyring, or BAD_KEY
    out = firmware_dir(image)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="otakit-keys-") as tmp:
        ring = Path(tmp) / "ota_keys.py"
        shutil.copyfile(src, ring)
        compile_to_mpy([ring], out)
    compile_to_mpy(sorted((FIRMWARE_DIR / "ota").glob("*.py")), out / "ota")
    compile_to_mpy([FIRMWARE_DIR / "doorlock.py", FIRMWARE_DIR / "lockui.py"], out)
    for name in ("boot.py", "main.py"):
        shutil.copyfile(FIRMWARE_DIR / name, out / name)
    return out


def write_config(image: str | os.PathLike[str], config: DeviceConfig,
                 app_dir: str | os.PathLike[str] | None = None) -> None:
    """Boot the board once to write ``config`` as ``ota_config.json`` on its filesystem.

    Raises:
        OtakitError: ``DEVICE_ERROR`` when the provisioning boot did not finish cleanly.
    """
    from otakit.sim.runner import run  # noqa: PLC0415 - the runner imports otakit.sim.flash

    with tempfile.TemporaryDirectory(prefix="otakit-provision-") as tmp:
        script = Path(tmp) / "provision.py"
        script.write_text(PROVISION_SCRIPT)
        # the factory's own boot, not the device's budget: a heap to spare (as otakit.sim.lab)
        result = run(image, script=script, app_dir=app_dir or firmware_dir(image), max_boots=1,
                     heapsize="128K", env={PROVISION_ENV: json.dumps(config.to_json())})
    if result.ended != "finished" or result.error:
        last = result.log.strip().splitlines()[-3:]
        raise OtakitError("the provisioning boot failed: " + " | ".join(last),
                          reason="DEVICE_ERROR")
