"""Shared fixtures: ../shared (vectors, real firmware) and a working directory for CLI tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.keys import RSA_PSS, PrivateKey, normalize_alg
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


@pytest.fixture(scope="session", autouse=True)
def one_rsa_lab_key() -> Iterator[None]:
    """One RSA-3072 release key per test process for every `otakit.sim.lab.Lab` made with an
    RSA key (the default), generated at its first use instead of once per lab (0.2-0.3 s of CPU
    each, about a hundred labs). The labs stay independent (each its own repository, server and
    board, which trusts only its lab's key), so a shared key changes nothing a test asserts; the
    keys a test makes itself (`otakit.keys.generate_key`) are new ones, as before."""
    import otakit.sim.lab as lab_module  # noqa: PLC0415

    real = lab_module.generate_key
    shared: list[PrivateKey] = []

    def lab_key(alg: str = RSA_PSS) -> PrivateKey:
        if normalize_alg(alg) != RSA_PSS:
            return real(alg)
        if not shared:
            shared.append(real(alg))
        return shared[0]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab_module, "generate_key", lab_key)
        yield


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory for CLI tests: an Ed25519 key pair in keys/ (passphrase "pw", given
    through OTAKIT_KEY_PASSPHRASE) and a 1.1.0 app image, app.bin."""
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", "pw")
    monkeypatch.chdir(tmp_path)
    assert main(["keygen", "--alg", "ed25519", "--out", "keys"]) == 0
    Path("app.bin").write_bytes(make_app_image("1.1.0"))
    return tmp_path


# The longest tests (minutes or tens of seconds each on a loaded 2-core machine), started first:
# `make test` spreads the tests over the cores (pytest-xdist, -n auto --dist worksteal: each
# worker starts on a contiguous share of the collection, and one that runs out takes half of the
# queue of another), so one of these collected late would run alone at the end of the run while
# the other cores sit idle. The rest keep their collection order.
LONGEST_FIRST = (
    "tests/sim/test_sim_campaign.py::test_reduced_campaign_survives_every_cut",
    "tests/device/test_crypto.py::test_random_host_signatures_verify_and_bit_flips_are_refused",
    "tests/device/test_strictjson.py::test_host_and_device_agree_on_10000_generated_bodies",
    "tests/device/test_bundle.py::test_bundle_install_survives_power_cuts",
    "tests/device/test_revert.py::test_power_cuts_during_a_revert_leave_a_signed_release_and_finish_it",
    "tests/host/test_quality.py::test_host_package_type_checks",
    "tests/host/test_quickstart.py::test_quickstart_runs_as_written",
    "tests/device/test_manifest.py::test_every_vector_gives_its_expected_result",
    "tests/sim/test_sim_power_cut.py::test_cut_at_every_operation_of_an_update_boots_old_or_new",
    "tests/sim/test_sim_nvs.py::test_every_cut_in_nvs_writes_leaves_old_or_new_value",
    "tests/device/test_fuzz.py::test_fixed_seed_sample_has_no_failures",
    "tests/device/test_manifest.py::test_every_single_bit_flip_is_refused",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the `LONGEST_FIRST` tests (with all their parameters) first, in that order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("[", 1)[0], len(rank)))
