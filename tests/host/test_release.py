"""Host manifest parser (vectors), app image checks, and the release repository's rules."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from esptool.bin_image import ELFSection, ESP32FirmwareImage

from otakit import keys
from otakit.appimage import make_app_image
from otakit.boards import load_board
from otakit.errors import ImageError, ManifestError, RepoError
from otakit.image import FIRMWARE_BIN_HINT, check_app_image
from otakit.manifest import parse_unverified, verify_manifest
from otakit.manifest_body import parse_body
from otakit.paths import ROOT
from otakit.repo import ReleaseRequest, Repository, parse_expiry

VECTORS = ROOT / "tests" / "vectors"
INDEX = json.loads((VECTORS / "index.json").read_text())
NOW = 1767225600  # 2026-01-01
BOARD = load_board("esp32")


@pytest.fixture(scope="module")
def ring() -> dict[bytes, keys.PublicKey]:
    return keys.load_keyring_module(VECTORS / INDEX["keyring"])


@pytest.fixture(scope="module")
def key() -> keys.PrivateKey:
    return keys.load_private_key(VECTORS / "keys" / "test-only-ed25519.pem")


@pytest.mark.parametrize("vector", INDEX["vectors"], ids=lambda v: v["file"])
def test_host_parser_gives_each_vector_its_expected_result(vector: dict, ring: dict) -> None:
    data = (VECTORS / INDEX["manifest_dir"] / vector["file"]).read_bytes()
    if vector["expect"] != "OK":
        with pytest.raises(ManifestError) as e:
            verify_manifest(data, ring)
        assert e.value.reason == vector["expect"]
        return
    m = verify_manifest(data, ring)
    f = vector["fields"]
    assert (m.envelope.alg, m.envelope.key_id.hex()) == (f["alg"], f["key_id"])
    b = m.body
    assert (b.product, b.board, b.chip_id, b.channel, b.version, b.sequence) == (
        f["product"], f["board"], f["chip_id"], f["channel"], f["version"], f["sequence"])
    assert (b.payload.path, b.payload.size, b.payload.sha256, b.payload.encoding) == (
        f["path"], f["size"], f["sha256"], f["encoding"])
    assert (b.expires, b.notes, b.security, b.disruption) == (
        f["expires"], f["notes"], f["security"], f["disruption"])
    assert (b.rollout, b.sbom) == (f["rollout"], f["sbom"])
    assert (b.revision, b.required_keyring) == (f["revision"], f["min_keyring"])
    assert [{"base_size": None, "base_sha256": None, **r.to_dict()} for r in b.payloads] == (
        f["payloads"])


def test_signature_is_checked_before_the_body_is_parsed(ring: dict) -> None:
    data = (VECTORS / "manifests" / "body-not-json.bin").read_bytes()
    tampered = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(ManifestError) as e:
        verify_manifest(tampered, ring)
    assert e.value.reason == "BAD_SIGNATURE"


def test_body_round_trips_and_unknown_fields_are_kept() -> None:
    data = (VECTORS / "manifests" / "ok-unknown-field-ignored.bin").read_bytes()
    m = parse_unverified(data)
    assert not m.verified and m.body.extra == {"x-future": {"a": [1, 2.5, None]}}
    assert parse_body(m.body.to_json()) == m.body


# --- app images -----------------------------------------------------------------------------

def _full_firmware_bin(app: bytes) -> bytes:
    """A bootloader-like image at 0 (bootloader descriptor magic 0x50 at 0x20), then a
    partition table at 0x7000 and the app at 0xF000: the layout of a MicroPython firmware.bin."""
    boot = ESP32FirmwareImage()
    boot.entrypoint, boot.flash_mode, boot.flash_size_freq = 0x40080400, 2, 0x20
    boot.segments = [ELFSection(b".dram0.bootdesc", 0x3FFF0000, b"\x50" + b"\0" * 79, 0),
                     ELFSection(b".iram_loader.text", 0x40078000, b"\x22" * 512, 0)]
    out = bytearray(boot.save(None))
    out += b"\xff" * (0x7000 - len(out)) + struct.pack("<H", 0x50AA) + b"\xff" * (0x8000 - 2)
    return bytes(out[:0xF000]) + app


def test_valid_app_image_is_accepted() -> None:
    info = check_app_image(make_app_image("1.0.0"), BOARD)
    assert info.chip_id == 0 and info.app_version == "1.0.0" and len(info.sha256) == 64


def test_full_firmware_bin_is_refused_with_a_hint() -> None:
    with pytest.raises(ImageError) as e:
        check_app_image(_full_firmware_bin(make_app_image("1.0.0")), BOARD)
    assert str(e.value) == FIRMWARE_BIN_HINT and e.value.reason == "BAD_IMAGE"


def test_image_for_another_chip_is_refused() -> None:
    with pytest.raises(ImageError, match="chip id 5") as e:
        check_app_image(make_app_image("1.0.0", chip="esp32c3"), BOARD)
    assert e.value.reason == "BAD_IMAGE"


def test_image_too_large_for_the_slot_is_refused() -> None:
    big = make_app_image("1.0.0", size=BOARD.ota_slot_size + 4096)
    with pytest.raises(ImageError, match="OTA slot holds 1572864") as e:
        check_app_image(big, BOARD)
    assert e.value.reason == "PAYLOAD_TOO_LARGE"
    assert check_app_image(big, load_board("esp32-8mb")).size == len(big)


@pytest.mark.parametrize("damage", ["truncate", "flip", "trailing", "magic", "not-an-image"])
def test_damaged_images_are_refused(damage: str) -> None:
    img = bytearray(make_app_image("1.0.0"))
    if damage == "truncate":
        img = img[:-100]
    elif damage == "flip":
        img[4096] ^= 1
    elif damage == "trailing":
        img += b"\xff" * 16
    elif damage == "magic":
        img[0] = 0xE8
    else:
        img = bytearray(b"hello world" * 50)
    with pytest.raises(ImageError) as e:
        check_app_image(bytes(img), BOARD)
    assert e.value.reason == "BAD_IMAGE"


@pytest.mark.parametrize(("name", "reason"), [
    ("ESP32_GENERIC-OTA-20250415-v1.25.0.app.bin", None),
    ("ESP32_GENERIC-OTA-v1.21.0.app.bin", None),
    ("ESP32_GENERIC-20240602-v1.23.0.app.bin", "PAYLOAD_TOO_LARGE"),
    ("ESP32_GENERIC-OTA-20250415-v1.25.0.bin", "BAD_IMAGE"),
    ("ESP32_GENERIC_C3-20250415-v1.25.0.bin", "BAD_IMAGE"),
])
def test_real_micropython_images(real_firmware_dir: Path, name: str, reason: str | None) -> None:
    path = real_firmware_dir / name
    if not path.is_file():
        pytest.skip(f"{name} is absent")
    data = path.read_bytes()
    if reason is None:
        assert check_app_image(data, BOARD).size == len(data)
        return
    with pytest.raises(ImageError) as e:
        check_app_image(data, BOARD)
    assert e.value.reason == reason


# --- the repository -------------------------------------------------------------------------

def _req(seq: int, **kw: object) -> ReleaseRequest:
    args: dict = {"product": "door-lock", "board": BOARD, "channel": "stable",
                  "version": f"1.{seq}.0", "sequence": seq}
    args.update(kw)
    return ReleaseRequest(**args)


def test_publish_writes_payload_and_manifest_that_verify(tmp_path: Path, key, ring) -> None:
    repo = Repository(tmp_path)
    img = make_app_image("1.1.0")
    res = repo.publish(_req(1, support_end="2030-12-31", notes="hi"), img, key, now=NOW)
    assert res.manifest_path == tmp_path / "door-lock/esp32/stable/manifest"
    assert res.payload_path.read_bytes() == img
    assert res.payload_path.name == res.body.payload.sha256
    m = verify_manifest(res.manifest_path.read_bytes(), ring)
    assert m.body == res.body and m.body.created == NOW and m.body.chip_id == 0
    assert repo.verify(ring).ok
    # no temporary files left (.otakit/releases: the release history, otakit.revert)
    assert [p.name for p in tmp_path.rglob(".*") if p.name != ".otakit"] == []


def test_sequence_must_increase(tmp_path: Path, key) -> None:
    repo = Repository(tmp_path)
    repo.publish(_req(5, support_end="2030-12-31"), make_app_image("a"), key, now=NOW)
    for seq in (5, 4):
        with pytest.raises(RepoError, match="is not above") as e:
            repo.publish(_req(seq), make_app_image("b"), key, now=NOW)
        assert e.value.reason == "ROLLBACK"
    repo.publish(_req(6), make_app_image("b"), key, now=NOW)
    other = repo.publish(_req(1, channel="beta", support_end="2030-12-31"),
                         make_app_image("c"), key, now=NOW)
    assert other.body.sequence == 1  # channels are independent


def test_security_version_is_inherited_and_never_lowered(tmp_path: Path, key) -> None:
    repo = Repository(tmp_path)
    repo.publish(_req(1, support_end="2030-12-31", security_version=4), make_app_image("a"), key,
                 now=NOW)
    assert repo.publish(_req(2), make_app_image("b"), key, now=NOW).body.security_version == 4
    with pytest.raises(RepoError, match="below") as e:
        repo.publish(_req(3, security_version=3), make_app_image("c"), key, now=NOW)
    assert e.value.reason == "SECURITY_FLOOR"


def test_support_end_required_first_inherited_after_never_shortened(tmp_path: Path, key) -> None:
    repo = Repository(tmp_path)
    with pytest.raises(RepoError, match="--support-end"):
        repo.publish(_req(1), make_app_image("a"), key, now=NOW)
    repo.publish(_req(1, support_end="2030-12-31"), make_app_image("a"), key, now=NOW)
    res = repo.publish(_req(2), make_app_image("b"), key, now=NOW)
    assert res.body.support_end == "2030-12-31"
    with pytest.raises(RepoError, match="shorten"):
        repo.publish(_req(3, support_end="2030-12-30"), make_app_image("c"), key, now=NOW)
    with pytest.raises(RepoError, match="in the past"):
        repo.publish(_req(1, channel="x", support_end="2025-12-31"), make_app_image("c"), key,
                     now=NOW)
    with pytest.raises(RepoError, match="not a YYYY-MM-DD"):
        repo.publish(_req(1, channel="y", support_end="2030-02-30"), make_app_image("c"), key,
                     now=NOW)
    assert repo.publish(_req(3, support_end="2031-01-01"), make_app_image("c"), key,
                        now=NOW).body.support_end == "2031-01-01"


def test_refused_release_writes_nothing(tmp_path: Path, key) -> None:
    repo = Repository(tmp_path)
    with pytest.raises(ImageError):
        repo.publish(_req(1, support_end="2030-12-31"), make_app_image("a", chip="esp32c3"), key)
    with pytest.raises(ManifestError, match="over the 4096-byte") as e:
        repo.publish(_req(1, support_end="2030-12-31", notes="€" * 1024,
                          security={"severity": "low", "risk": "€" * 512}),
                     make_app_image("a"), key, now=NOW)
    assert e.value.reason == "TOO_LARGE"
    assert list(tmp_path.iterdir()) == []


def test_verify_reports_a_changed_byte_in_manifest_or_payload(tmp_path: Path, key, ring) -> None:
    repo = Repository(tmp_path)
    res = repo.publish(_req(1, support_end="2030-12-31"), make_app_image("a"), key, now=NOW)
    good_manifest, good_payload = res.manifest_path.read_bytes(), res.payload_path.read_bytes()
    for path, good, offset, expect in (
            (res.manifest_path, good_manifest, 40, "BAD_SIGNATURE"),
            (res.payload_path, good_payload, 5000, "HASH_MISMATCH")):
        bad = bytearray(good)
        bad[offset] ^= 0x01
        path.write_bytes(bytes(bad))
        report = repo.verify(ring)
        assert not report.ok and any(expect in p for p in report.problems), report.problems
        path.write_bytes(good)
    res.payload_path.unlink()
    assert any("MISSING_PAYLOAD" in p for p in repo.verify(ring).problems)


def test_verify_refuses_a_manifest_moved_to_another_channel(tmp_path: Path, key, ring) -> None:
    repo = Repository(tmp_path)
    res = repo.publish(_req(1, support_end="2030-12-31"), make_app_image("a"), key, now=NOW)
    moved = repo.manifest_path("door-lock", "esp32", "beta")
    moved.parent.mkdir(parents=True)
    moved.write_bytes(res.manifest)
    assert any("WRONG_PLACE" in p for p in repo.verify(ring).problems)


def test_verify_with_an_untrusted_key_fails(tmp_path: Path, key) -> None:
    repo = Repository(tmp_path)
    repo.publish(_req(1, support_end="2030-12-31"), make_app_image("a"), key, now=NOW)
    other = keys.generate_key("ed25519")
    assert any("UNKNOWN_KEY" in p for p in repo.verify({other.key_id: other}).problems)


@pytest.mark.parametrize(("text", "expect"), [
    ("90d", NOW + 90 * 86400), ("12h", NOW + 12 * 3600), ("2w", NOW + 14 * 86400),
    ("2030-01-01", 1893456000), ("2030-01-01T00:00:00Z", 1893456000),
    ("2030-01-01T01:00:00+01:00", 1893456000), ("1893456000", 1893456000)])
def test_parse_expiry(text: str, expect: int) -> None:
    assert parse_expiry(text, NOW) == expect


@pytest.mark.parametrize("text", ["yesterday", "2020-01-01", "0", "-5d", "5y"])
def test_parse_expiry_refuses_past_or_unparseable(text: str) -> None:
    with pytest.raises(RepoError):
        parse_expiry(text, NOW)
