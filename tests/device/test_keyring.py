"""Keyring documents (docs/format.md §7): the device parser and the host tools against the
shared vectors in tests/vectors/keyrings/, and the host CLI (keyring sign|show, key export with
roots, refresh)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from otakit import keys
from otakit.cli import main
from otakit.errors import ManifestError
from otakit.keyring import parse_unverified, verify_keyring
from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR, ROOT

VECTORS = ROOT / "tests" / "vectors"
INDEX = json.loads((VECTORS / "keyrings.json").read_text())

SCRIPT = r"""
import sys, json
from vector_roots import ROOTS
from ota.keyring import parse
from ota.errors import ManifestError
for line in sys.stdin.read().split():
    name, threshold = line.split(",")
    with open(name, "rb") as f:
        data = f.read()
    try:
        k = parse(data, ROOTS, int(threshold), "door-lock", "production")
        print(name, "OK", k.version, len(k.keys))
    except ManifestError as e:
        print(name, e.reason)
"""


def test_device_gives_every_keyring_vector_its_expected_result(tmp_path: Path) -> None:
    script = tmp_path / "kr.py"
    script.write_text(SCRIPT)
    stdin = "\n".join(f"{v['file']},{v['threshold']}" for v in INDEX["vectors"])
    # sources are compiled on the device heap here (a board has them frozen): 96K leaves room
    r = run_micropython([str(script)], path=[FIRMWARE_DIR, VECTORS], heapsize="96K",
                        cwd=VECTORS / INDEX["keyring_dir"], input_data=stdin.encode())
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    got = {line.split()[0]: line.split()[1:] for line in r.stdout.decode().splitlines()}
    wrong = [f"{v['file']}: expected {v['expect']}, got {got.get(v['file'])}"
             for v in INDEX["vectors"] if got.get(v["file"], ["?"])[0] != v["expect"]]
    assert not wrong, "\n".join(wrong)
    assert got["ok-ed25519-root.bin"] == ["OK", "7", "2"]


def test_host_gives_every_keyring_vector_its_expected_result() -> None:
    _, roots, _, _ = keys.load_trust_module(VECTORS / INDEX["roots"])
    for v in INDEX["vectors"]:
        data = (VECTORS / INDEX["keyring_dir"] / v["file"]).read_bytes()
        try:
            verify_keyring(data, roots, v["threshold"], "door-lock", "production")
            result = "OK"
        except ManifestError as e:
            result = e.reason
        assert result == v["expect"], v["file"]


def _cli(*args: str) -> int:
    return main(list(args))


def test_cli_keyring_sign_show_export_and_refresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("root1", "root2", "release"):
        assert _cli("keygen", "--alg", "ed25519", "--out", "k", "--name", name,
                    "--insecure-no-passphrase") == 0
    assert _cli("key", "export", "--micropython", "--root", "k/root1.pub.pem", "--root",
                "k/root2.pub.pem", "--threshold", "2", "--out", "ota_keys.py") == 0
    text = Path("ota_keys.py").read_text()
    assert "KEYS = {\n}" in text and "THRESHOLD = 2" in text and 'ENV = "production"' in text
    # one root signs, the second adds its signature later (offline, elsewhere)
    assert _cli("keyring", "sign", "--root", "k/root1.pem", "--key", "k/release.pub.pem",
                "--product", "door", "--version", "1", "--expires", "30d", "--out", "kr") == 0
    capsys.readouterr()
    assert _cli("keyring", "show", "kr", "--keyring", "ota_keys.py") == 1
    assert "1 of 2 root signatures" in capsys.readouterr().err
    assert _cli("keyring", "sign", "--root", "k/root2.pem", "--add-to", "kr", "--out", "kr2",
                "--repo", "repo") == 0
    assert _cli("keyring", "show", "kr2", "--keyring", "ota_keys.py") == 0
    out = capsys.readouterr().out
    assert "verified: 2 of threshold 2" in out and "version: 1" in out
    assert Path("repo/door/keyring").read_bytes() == Path("kr2").read_bytes()
    # an older (or same-version, other-content) keyring cannot be published over it
    assert _cli("keyring", "sign", "--root", "k/root1.pem", "--root", "k/root2.pem", "--key",
                "k/root1.pub.pem", "--product", "door", "--version", "1", "--repo", "repo") == 1
    assert "does not follow the published version 1" in capsys.readouterr().err
    assert parse_unverified(Path("kr2").read_bytes()).body.version == 1


def test_refresh_resigns_with_a_later_expiry_and_the_same_sequence(tmp_path: Path) -> None:
    from otakit.appimage import make_app_image
    from otakit.boards import load_board
    from otakit.errors import RepoError
    from otakit.manifest import verify_manifest
    from otakit.repo import ReleaseRequest, Repository

    key = keys.generate_key(keys.ED25519)
    repo = Repository(tmp_path / "repo")
    now = int(time.time())
    req = ReleaseRequest(product="door", board=load_board("esp32"), channel="stable",
                         version="1.0.0", sequence=5, expires=now + 60, support_end="2031-01-01")
    first = repo.publish(req, make_app_image("1.0.0", size=8192), key, now)
    res = repo.refresh("door", "esp32", "stable", now + 86400, key, now)
    m = verify_manifest(res.manifest, {key.key_id: key}).body
    assert m.sequence == 5 and m.expires == now + 86400
    assert m.payload == first.body.payload and m.created == first.body.created
    with pytest.raises(RepoError):
        repo.refresh("door", "esp32", "stable", now + 3600, key, now)  # not later
