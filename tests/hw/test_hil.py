"""Hardware-in-the-loop suite: a real ESP32 board on a serial port. `make hil PORT=/dev/ttyUSB0`.

NOT RUN ON THE MACHINE THAT WROTE IT: it has no ESP32 and no serial port; without a port every
test here is skipped with that reason. What it does, in order (one board, state carries over):
1. flash the firmware built by `otakit build` (agent + keyring frozen) with --erase-otadata, and
   check the board boots ota_0;
2. deploy the device settings and boot.py/main.py with `otakit deploy`;
3. sign a newer release, serve it with `otakit serve` on this host, let the agent update, reset,
   and check the board now runs the other slot and has confirmed it;
4. forced rollback: install one more release, keep it from confirming (main.py removed), reset
   twice, and check the bootloader went back to the slot that was running.

Environment: OTAKIT_HIL_PORT (make hil sets it from PORT), OTAKIT_HIL_BOARD (esp32),
OTAKIT_HIL_FIRMWARE (firmware.bin from `otakit build`), OTAKIT_HIL_APP (its micropython.bin, the
image released as the update), OTAKIT_HIL_KEY (the private key whose public half the firmware's
keyring holds; its passphrase in OTAKIT_KEY_PASSPHRASE), OTAKIT_HIL_HOST (this host's address as
the board sees it), OTAKIT_HIL_WIFI_SSID and OTAKIT_HIL_WIFI_PASSWORD.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otakit.boards import load_board

PORT = os.environ.get("OTAKIT_HIL_PORT", "")
NEEDED = ("OTAKIT_HIL_FIRMWARE", "OTAKIT_HIL_APP", "OTAKIT_HIL_KEY", "OTAKIT_HIL_HOST",
          "OTAKIT_HIL_WIFI_SSID")

pytestmark = [
    pytest.mark.skipif(not PORT, reason="no board: the hardware-in-the-loop suite needs a real "
                       "ESP32 on a serial port (make hil PORT=/dev/ttyUSB0); not run here"),
    pytest.mark.skipif(bool(PORT) and not all(os.environ.get(v) for v in NEEDED),
                       reason="set " + ", ".join(NEEDED) + " (see tests/hw/test_hil.py)"),
]
BOARD = os.environ.get("OTAKIT_HIL_BOARD", "esp32")
PRODUCT = "hil"


def otakit(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "otakit", *args], capture_output=True,
                          text=True, check=False, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def device(code: str, timeout: float = 120) -> str:
    """Run ``code`` on the board through mpremote and return what it printed."""
    proc = subprocess.run([sys.executable, "-m", "mpremote", "connect", PORT, "exec", code],
                          capture_output=True, text=True, check=False, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def running_slot() -> str:
    out = device("import esp32\nprint('SLOT', esp32.Partition(esp32.Partition.RUNNING)"
                 ".info()[4])")
    return out.split("SLOT", 1)[1].split()[0]


def hard_reset_and_wait(seconds: float = 8) -> None:
    subprocess.run([sys.executable, "-m", "mpremote", "connect", PORT, "reset"],
                   capture_output=True, check=False, timeout=60)
    time.sleep(seconds)


UPDATE = """
import asyncio, json, network, time, ota
w = network.WLAN(network.STA_IF)
w.active(True)
w.connect({ssid!r}, {password!r})
for _ in range(200):
    if w.isconnected():
        break
    time.sleep_ms(100)
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], chip_id={chip_id}))
print("UPDATED", asyncio.run(agent.update()), agent.status())
"""


def run_update() -> str:
    code = UPDATE.format(ssid=os.environ["OTAKIT_HIL_WIFI_SSID"],
                         password=os.environ.get("OTAKIT_HIL_WIFI_PASSWORD", ""),
                         chip_id=load_board(BOARD).chip_id)
    return device(code, timeout=600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A release repository served by `otakit serve` on this host for the board."""
    root = tmp_path_factory.mktemp("hil")
    repo_dir = root / "repo"
    repo_dir.mkdir()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "otakit", "serve", "--repo", str(repo_dir),
                               "--host", "0.0.0.0", "--port", str(port)])  # noqa: S104
    time.sleep(2)
    try:
        yield repo_dir, f"http://{os.environ['OTAKIT_HIL_HOST']}:{port}/repo"
    finally:
        server.terminate()
        server.wait(10)


def release(repo_dir: Path, version: str, sequence: int) -> None:
    otakit("release", "--key", os.environ["OTAKIT_HIL_KEY"], "--repo", str(repo_dir),
           "--product", PRODUCT, "--board", BOARD, "--version", version,
           "--sequence", str(sequence), os.environ["OTAKIT_HIL_APP"])


def test_1_flash_boots_ota_0() -> None:
    otakit("flash", "--board", BOARD, "--port", PORT, "--erase-otadata",
           os.environ.get("OTAKIT_HIL_FIRMWARE", ""))
    time.sleep(8)
    assert running_slot() == "ota_0"


def test_2_deploy_settings(repo: tuple[Path, str], tmp_path: Path) -> None:
    _, url = repo
    config = tmp_path / "ota_config.json"
    config.write_text(json.dumps({"url": url, "product": PRODUCT, "board": BOARD,
                                  "interval_s": 3600}))
    keyring = tmp_path / "ota_keys.py"
    otakit("key", "export", "--micropython", "--out", str(keyring), os.environ["OTAKIT_HIL_KEY"])
    otakit("deploy", "--board", BOARD, "--port", PORT, "--config", str(config), "--keyring",
           str(keyring))
    time.sleep(8)
    assert "ota_config.json" in device("import os\nprint(os.listdir())")


def test_3_update_from_local_serve(repo: tuple[Path, str]) -> None:
    repo_dir, _ = repo
    release(repo_dir, "2.0.0", 2)
    out = run_update()
    assert "UPDATED True" in out, out
    hard_reset_and_wait(15)  # trial boot: main.py runs ota.boot() and confirms
    assert running_slot() == "ota_1"
    hard_reset_and_wait(10)  # confirmed: stays on ota_1
    assert running_slot() == "ota_1"


def test_4_forced_rollback(repo: tuple[Path, str]) -> None:
    repo_dir, _ = repo
    release(repo_dir, "3.0.0", 3)
    assert "UPDATED True" in run_update()
    device("import os\nos.rename('main.py', 'main.hil')")  # nothing confirms the trial boot
    try:
        hard_reset_and_wait(10)
        assert running_slot() == "ota_0"  # the trial image runs, unconfirmed
        hard_reset_and_wait(10)  # PENDING_VERIFY -> ABORTED: the bootloader rolls back
        assert running_slot() == "ota_1"
    finally:
        device("import os\nos.rename('main.hil', 'main.py')")
