"""`otakit release --sbom`: a CycloneDX SBOM beside the payload, bound by hash in the manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.boards import load_board
from otakit.cli import main
from otakit.manifest import parse_unverified
from otakit.paths import FIRMWARE_DIR
from otakit.sbom import make_sbom


def _components(doc: dict) -> dict[str, dict]:
    return {c["bom-ref"]: c for c in doc["components"]}


def test_release_attaches_a_bound_sbom(env: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["release", "--key", "keys/release.pem", "--repo", "repo", "--product", "door",
                 "--board", "esp32", "--version", "1.1.0", "--sequence", "1", "--support-end",
                 "2031-12-31", "--sbom", "app.bin"]) == 0
    assert "sbom:" in capsys.readouterr().out
    body = parse_unverified(Path("repo/door/esp32/stable/manifest").read_bytes()).body
    assert body.sbom is not None
    data = (Path("repo") / body.sbom["path"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == body.sbom["sha256"]
    assert len(data) == body.sbom["size"]
    doc = json.loads(data)
    assert (doc["bomFormat"], doc["specVersion"], doc["version"]) == ("CycloneDX", "1.5", 1)
    assert doc["serialNumber"].startswith("urn:uuid:")
    fw = doc["metadata"]["component"]
    assert (fw["type"], fw["name"], fw["version"]) == ("firmware", "door", "1.1.0")
    assert fw["hashes"] == [{"alg": "SHA-256", "content": body.payload.sha256}]
    comps = _components(doc)
    assert comps["esp-idf"]["version"].startswith("v")  # the sim image's app descriptor
    assert comps["otakit-agent"]["version"] == "0.1.0"
    agent = comps["frozen:ota/agent.py"]
    assert agent["hashes"][0]["content"] == hashlib.sha256(
        (FIRMWARE_DIR / "ota" / "agent.py").read_bytes()).hexdigest()
    refs = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    assert set(refs["firmware"]) == set(comps)
    assert main(["verify", "--repo", "repo", "--key", "keys/release.pub.pem"]) == 0
    # an altered SBOM is caught
    (Path("repo") / body.sbom["path"]).write_bytes(data.replace(b"CycloneDX", b"CycloneDY"))
    capsys.readouterr()
    assert main(["verify", "--repo", "repo", "--key", "keys/release.pub.pem"]) == 1
    assert "MISSING_SBOM" in capsys.readouterr().err


def test_sbom_is_deterministic_and_uses_a_frozen_dir(tmp_path: Path) -> None:
    frozen = tmp_path / "frozen"
    (frozen / "ota").mkdir(parents=True)
    (frozen / "ota" / "__init__.py").write_text('__version__ = "9.8.7"\n')
    (frozen / "app.mpy").write_bytes(b"M\x06")
    image = make_app_image("2.0.0")
    board = load_board("esp32")
    a = make_sbom(image, board, "door", "2.0.0", frozen, 1767225600)
    assert a == make_sbom(image, board, "door", "2.0.0", frozen, 1767225600)
    comps = _components(json.loads(a))
    assert comps["otakit-agent"]["version"] == "9.8.7"
    assert comps["frozen:app.mpy"]["hashes"][0]["content"] == hashlib.sha256(b"M\x06").hexdigest()
    assert "frozen:ota/agent.py" not in comps


def test_sbom_of_a_real_micropython_image(real_firmware_dir: Path) -> None:
    image = (real_firmware_dir / "ESP32_GENERIC-OTA-20250415-v1.25.0.app.bin")
    if not image.is_file():
        pytest.skip("the real v1.25.0 app image is absent")
    doc = json.loads(make_sbom(image.read_bytes(), load_board("esp32"), "door", "1.25.0"))
    comps = _components(doc)
    assert comps["micropython"]["version"] == "v1.25.0"
    assert comps["esp-idf"]["version"] == "v5.2.2"
    found = {c["name"] for c in doc["components"] if any(
        p == {"name": "otakit:found-in-image", "value": "true"} for p in c.get("properties", []))}
    assert {"asyncio/core.py", "umqtt/simple.py", "requests/__init__.py"} <= found
