"""Shared fixtures: ../shared (vectors, real firmware) and a working directory for CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.paths import ROOT

SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (vectors, real firmware); skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (as in a user's checkout): third-party vectors and real "
                    "firmware images are not available")
    return SHARED


@pytest.fixture(scope="session")
def real_firmware_dir(shared_dir: Path) -> Path:
    d = shared_dir / "firmware"
    if not d.is_dir():
        pytest.skip("../shared/firmware is absent: no real MicroPython images to test with")
    return d


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory for CLI tests: an Ed25519 key pair in keys/ (passphrase "pw", given
    through OTAKIT_KEY_PASSPHRASE) and a 1.1.0 app image, app.bin."""
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", "pw")
    monkeypatch.chdir(tmp_path)
    assert main(["keygen", "--alg", "ed25519", "--out", "keys"]) == 0
    Path("app.bin").write_bytes(make_app_image("1.1.0"))
    return tmp_path
