"""Quality gates: every device module compiles with mpy-cross (as it is frozen or deployed), the
device code type-checks against micropython-esp32-stubs, the host package type-checks
(scripts/typecheck.py, basedpyright)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otakit.mpy import mpy_cross_binary
from otakit.paths import FIRMWARE_DIR, ROOT

DEVICE_SOURCES = sorted(FIRMWARE_DIR.rglob("*.py"))


@pytest.mark.parametrize("src", DEVICE_SOURCES, ids=lambda p: str(p.relative_to(FIRMWARE_DIR)))
def test_device_module_compiles_with_mpy_cross(src: Path, tmp_path: Path) -> None:
    for march in ("xtensawin", "rv32imc"):  # ESP32/S3 and C3
        out = tmp_path / f"{src.stem}-{march}.mpy"
        proc = subprocess.run([mpy_cross_binary(), f"-march={march}", "-o", str(out), str(src)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes()[:1] == b"M"


def _typecheck(what: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "typecheck.py"), what],
                          capture_output=True, text=True, check=False, timeout=300)


@pytest.mark.slow
def test_firmware_type_checks_against_esp32_stubs() -> None:
    proc = _typecheck("firmware")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 errors" in proc.stdout


@pytest.mark.slow
def test_host_package_type_checks() -> None:
    proc = _typecheck("host")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 errors" in proc.stdout
