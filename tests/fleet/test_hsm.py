"""Release signing through PKCS#11: keys generated inside a SoftHSM2 token the test creates,
non-extractable; `otakit keygen --pkcs11` and `otakit release --key pkcs11:...`; a simulated board
installs the release signed inside the token."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fleethelpers import STEP, statuses, step
from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.keys import export_keyring, load_key
from otakit.manifest import verify_manifest
from otakit.mpy import compile_to_mpy
from otakit.sim.lab import Lab

SOFTHSM_UTIL = shutil.which("softhsm2-util")
MODULE = next((m for m in ("/usr/lib/softhsm/libsofthsm2.so",
                           "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
               if os.path.exists(m)), None)
PIN = "246810"
pytestmark = pytest.mark.skipif(not (SOFTHSM_UTIL and MODULE), reason="SoftHSM2 is not installed "
                                "(scripts/install-system-deps.sh installs softhsm2 as root)")


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh SoftHSM2 token (its own SOFTHSM2_CONF); returns the URI prefix for its keys."""
    d = tmp_path_factory.mktemp("softhsm")
    (d / "tokens").mkdir()
    conf = d / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {d / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by the module when it is first loaded
    label = f"otakit-test-{os.getpid()}"
    subprocess.run([SOFTHSM_UTIL, "--init-token", "--free", "--label", label, "--pin", PIN,
                    "--so-pin", "13579bdf"], check=True, capture_output=True)
    return f"pkcs11:token={label};object="


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OTAKIT_PKCS11_PIN", PIN)
    monkeypatch.setenv("OTAKIT_PKCS11_MODULE", MODULE)  # type: ignore[arg-type]
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("alg", ["rsa3072-pss", "ed25519"])
def test_keygen_in_token_and_release_signed_inside_it(token: str, cli_env: Path, alg: str,
                                                      capsys: pytest.CaptureFixture) -> None:
    uri = token + f"release-{alg}"
    assert main(["keygen", "--alg", alg, "--pkcs11", uri, "--out", "keys"]) == 0
    out = capsys.readouterr().out
    assert "non-extractable" in out and not Path("keys/release.pem").exists()
    pub = load_key("keys/release.pub.pem")
    Path("app.bin").write_bytes(make_app_image("1.1.0"))
    assert main(["release", "--key", uri, "--repo", "repo", "--product", "door", "--board",
                 "esp32", "--version", "1.1.0", "--sequence", "1", "--support-end",
                 "2031-12-31", "app.bin"]) == 0
    manifest = Path("repo/door/esp32/stable/manifest").read_bytes()
    m = verify_manifest(manifest, {pub.key_id: pub})
    assert m.envelope.key_id == pub.key_id and m.envelope.alg == pub.alg
    # a rollout re-signs through the token too
    assert main(["rollout", "start", "--repo", "repo", "--product", "door", "--board", "esp32",
                 "--key", uri, "--percent", "10"]) == 0
    assert main(["verify", "--repo", "repo", "--key", "keys/release.pub.pem"]) == 0
    # same label again is refused; the key cannot be exported
    assert main(["keygen", "--alg", alg, "--pkcs11", uri, "--out", "other"]) == 1
    assert "already has a key" in capsys.readouterr().err


def test_private_key_never_leaves_the_token(token: str, cli_env: Path) -> None:
    import pkcs11  # noqa: PLC0415
    from pkcs11 import Attribute, ObjectClass  # noqa: PLC0415

    from otakit.errors import KeyFileError  # noqa: PLC0415
    from otakit.hsm import _session, generate_in_token, parse_uri  # noqa: PLC0415

    uri = token + "sealed"
    key = generate_in_token(uri, "rsa3072-pss-sha256")
    with pytest.raises(KeyFileError) as e:
        key.private_pem(None)
    assert e.value.reason == "NOT_EXTRACTABLE"
    with _session(parse_uri(uri)) as s:
        priv = s.get_key(ObjectClass.PRIVATE_KEY, label="sealed")
        assert priv[Attribute.SENSITIVE] is True and priv[Attribute.EXTRACTABLE] is False
        assert priv[Attribute.NEVER_EXTRACTABLE] is True
        for secret in (Attribute.PRIVATE_EXPONENT, Attribute.PRIME_1):
            with pytest.raises(pkcs11.AttributeSensitive):
                priv[secret]
        with pytest.raises(pkcs11.PKCS11Error):  # no wrapping it out either
            s.generate_key(pkcs11.KeyType.AES, 256, template={Attribute.WRAP: True}).wrap_key(
                priv)


def test_wrong_pin_and_missing_key_are_one_line_errors(token: str, cli_env: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    Path("app.bin").write_bytes(make_app_image("1.1.0"))
    args = ["release", "--repo", "repo", "--product", "door", "--board", "esp32", "--version",
            "1", "--sequence", "1", "--support-end", "2031-12-31", "app.bin"]
    assert main([*args[:1], "--key", token + "no-such-key", *args[1:]]) == 1
    assert "no single public key" in capsys.readouterr().err
    monkeypatch.setenv("OTAKIT_PKCS11_PIN", "000000")
    assert main([*args[:1], "--key", token + "sealed", *args[1:]]) == 1
    assert "wrong PIN" in capsys.readouterr().err


def test_board_installs_a_release_signed_in_the_token(token: str, cli_env: Path,
                                                      tmp_path: Path) -> None:
    from otakit.hsm import generate_in_token  # noqa: PLC0415

    key = generate_in_token(token + "fleet-ed", "ed25519")
    with Lab(tmp_path / "lab") as lab:
        lab.key = key  # the release is signed inside the token
        ring = lab.work / "ota_keys.py"
        ring.write_text(export_keyring([key]))  # the board trusts the token's key only
        compile_to_mpy([ring], lab.device_dir)
        (lab.work / "step.py").write_text(STEP)
        lab.flash(make_app_image("1.0.0", size=64 * 1024), telemetry=False)
        lab.publish(make_app_image("1.1.0", size=64 * 1024), "1.1.0", 2)
        result = step(lab)
        assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
        assert statuses(result)[-1]["state"] == "up_to_date"
