"""Shared fixtures: the repository's trees, ../shared, and the real MicroPython port."""

from __future__ import annotations

from pathlib import Path

import pytest

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
