"""Payload encodings on the host: round trips (hypothesis), refusals, and the release command;
encrypted payloads and content keys."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otakit import contentkey
from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.payloads import (CHUNK, CRYPT_BLOCK, Encoded, EncryptError, PatchError,
                             apply_patch, decode_delta, decode_from, decrypt, decrypt_chunks,
                             deflate, deflate_chunked, delta_chunked, encode_delta, encrypt,
                             encrypt_chunks, inflate, make_patch, make_segments)
from otakit.repo import Repository


@given(st.binary(max_size=20_000), st.integers(9, 15))
def test_deflate_round_trips(data: bytes, wbits: int) -> None:
    assert inflate(deflate(data, wbits), wbits) == data


@st.composite
def pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A base and a new image made from it by replacing, inserting, deleting and moving runs."""
    words = draw(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=16))
    rng = random.Random(draw(st.integers(0, 2**32)))
    old = bytearray(b"".join(rng.choice(words) for _ in range(draw(st.integers(0, 3000)))))
    new = bytearray(old)
    for _ in range(draw(st.integers(0, 8))):
        at = rng.randrange(len(new) + 1)
        n = rng.randrange(1, 200)
        kind = rng.choice("ridm")
        if kind == "r":
            new[at:at + n] = rng.randbytes(n)
        elif kind == "i":
            new[at:at] = rng.randbytes(n)
        elif kind == "d":
            del new[at:at + n]
        else:
            new[at:at] = old[rng.randrange(len(old) + 1):][:n]
    return bytes(old), bytes(new)


@settings(max_examples=150, deadline=None)
@given(pairs())
def test_patch_round_trips(pair: tuple[bytes, bytes]) -> None:
    old, new = pair
    assert apply_patch(old, make_patch(old, new)) == new
    assert decode_delta(old, encode_delta(old, new, 10), 10) == new


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_patch_round_trips_between_unrelated_inputs(old: bytes, new: bytes) -> None:
    assert apply_patch(old, make_patch(old, new)) == new


# --- resumable (chunked) representations: docs/format.md §2.2 and §6 -------------------------

@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=40_000), st.sampled_from([4096, 8192]),
       st.integers(9, 15))
def test_chunked_deflate_decodes_whole_and_from_every_chunk(data: bytes, chunk: int,
                                                             wbits: int) -> None:
    z = deflate_chunked(data, wbits, chunk)
    assert len(z.lengths) == -(-len(data) // chunk) and sum(z.lengths) == len(z.data)
    assert inflate(z.data, wbits) == data  # one stream: a decoder without chunks reads it all
    for k in range(len(z.lengths)):
        assert decode_from(z, k, len(data), wbits) == data[k * chunk:]


@settings(max_examples=60, deadline=None)
@given(pairs())
def test_chunked_delta_decodes_whole_and_from_every_segment(pair: tuple[bytes, bytes]) -> None:
    old, new = pair
    if not new:
        return
    d = delta_chunked(old, new, 10, 4096)
    assert d.bases is not None and d.bases[0] == 0
    assert len(d.lengths) == len(d.bases) == -(-len(new) // 4096)
    assert decode_delta(old, d.data, 10) == new  # one §6 patch: an old device applies it all
    for k in range(len(d.lengths)):
        assert 0 <= k * 4096 + d.bases[k] <= len(old)
        assert decode_from(d, k, len(new), 10, old) == new[k * 4096:]


def test_delta_segments_end_on_chunk_boundaries() -> None:
    old = make_app_image("1.0.0", size=50_000, seed="x", compressible=True)
    new = old[:0x200] + old[30_000:] + old[0x200:30_000]  # moved code: long operations
    segs, starts = make_segments(old, new, 4096)
    assert len(segs) == len(starts) == -(-len(new) // 4096)
    assert apply_patch(old, b"".join(segs)) == new  # together: one §6 patch
    assert any(abs(p - k * 4096) > 4096 for k, p in enumerate(starts))  # far-away references


def test_release_chunks_stay_within_64_kb_and_merge_when_they_compress_well() -> None:
    noisy = make_app_image("1.0.0", size=300_000, seed="n")
    z = deflate_chunked(noisy)  # incompressible: 64 KB chunks, 64 KB + a few block headers
    assert z.chunk == CHUNK and max(z.lengths) <= CHUNK + 128
    code = make_app_image("1.0.0", size=600_000, seed="c", compressible=True)
    z = deflate_chunked(code)  # compresses ~3:1: chunks of several 64 KB, each <= 64 KB encoded
    assert z.chunk > CHUNK and z.chunk % CHUNK == 0 and max(z.lengths) <= CHUNK
    tiny = delta_chunked(code, code[:-4096] + bytes(4096))  # a small delta: one chunk, no flush
    assert len(tiny.lengths) == 1 and tiny.data == encode_delta(code, code[:-4096] + bytes(4096))


def test_resumable_deflate_costs_under_2_percent_on_real_images(real_firmware_dir: Path) -> None:
    for name in ("ESP32_GENERIC-OTA-20250415-v1.25.0.app.bin",
                 "ESP32_GENERIC-OTA-v1.21.0.app.bin"):
        image = (real_firmware_dir / name).read_bytes()
        z = deflate_chunked(image)
        assert max(z.lengths) <= CHUNK
        assert len(z.data) <= len(deflate(image)) * 1.02, name


def test_near_identical_images_make_a_tiny_patch() -> None:
    old = make_app_image("1.0.0", size=200_000, seed="x")
    new = make_app_image("1.1.0", size=200_000, seed="x")
    assert len(encode_delta(old, new)) < 1500  # the segments that carry the version differ


@pytest.mark.parametrize("damage", ["base-size", "truncated", "trailing", "magic", "outside"])
def test_bad_patches_are_refused(damage: str) -> None:
    old = bytes(range(256)) * 40
    new = old[:5000] + b"new bytes" + old[5000:]
    p = make_patch(old, new)
    if damage == "base-size":
        old = old[:-1]
    elif damage == "truncated":
        p = p[:-1]
    elif damage == "trailing":
        p = p + b"\0"
    elif damage == "magic":
        p = b"X" + p[1:]
    else:
        p = p[:13] + b"\x01\x00\x80\x80\x01" + p[13:]  # add 1 byte after seeking past the end
    with pytest.raises(PatchError):
        apply_patch(old, p)


def test_inflate_refuses_trailing_and_truncated_streams() -> None:
    z = deflate(b"hello" * 100)
    for bad in (z + b"x", z[:-2]):
        with pytest.raises(PatchError):
            inflate(bad)


def test_release_command_offers_deflate_and_delta(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", "a good passphrase")
    assert main(["keygen", "--alg", "ed25519", "--out", str(tmp_path), "--name", "k"]) == 0
    key, pub = tmp_path / "k.pem", tmp_path / "k.pub.pem"
    old, new = tmp_path / "old.bin", tmp_path / "new.bin"
    old.write_bytes(make_app_image("1.0.0", size=80_000, seed="s", compressible=True))
    new.write_bytes(make_app_image("1.1.0", size=80_000, seed="s", compressible=True))
    repo = tmp_path / "repo"
    capsys.readouterr()
    assert main([
        "release", "--key", str(key), "--repo", str(repo), "--product", "p", "--board", "esp32",
        "--version", "1.1.0", "--sequence", "2", "--support-end", "2031-01-01",
        "--encoding", "deflate", "--delta-base", str(old), str(new)]) == 0
    out = capsys.readouterr().out
    assert "  deflate: " in out and "  delta from " in out
    assert main(["verify", "--repo", str(repo), "--key", str(pub)]) == 0
    blobs = sorted((repo / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    blobs[0].write_bytes(blobs[0].read_bytes() + b"x")  # the delta, the smallest
    assert main(["verify", "--repo", str(repo), "--key", str(pub)]) == 1
    assert "HASH_MISMATCH" in capsys.readouterr().err


# --- encrypted payloads (docs/format.md §2.8) ---------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3 * CRYPT_BLOCK // 16).map(lambda n: 16 * n), st.binary(min_size=32,
       max_size=32), st.binary(min_size=12, max_size=12))
def test_encrypted_payload_decrypts_whole_and_from_every_block(n: int, key: bytes,
                                                               nonce: bytes) -> None:
    image = random.Random(n).randbytes(n)
    blob = encrypt(image, key, nonce)
    assert len(blob) == n and decrypt(blob, key, nonce) == image
    for at in range(0, n, CRYPT_BLOCK):  # a resume at any block decrypts on its own
        assert decrypt(blob[at:], key, nonce, at) == image[at:]
    if n >= 32:
        assert blob[:16] != image[:16]
        assert decrypt(blob, bytes(32) if key != bytes(32) else bytes([1]) * 32, nonce) != image


def test_equal_blocks_encrypt_differently_under_another_block_or_nonce() -> None:
    image = bytes(2 * CRYPT_BLOCK)  # two identical blocks
    key = bytes(range(32))
    a = encrypt(image, key, bytes(12))
    assert a[:CRYPT_BLOCK] != a[CRYPT_BLOCK:]  # per-block IVs
    assert encrypt(image, key, bytes(11) + b"\x01") != a


def test_encrypting_an_image_of_odd_size_is_refused() -> None:
    with pytest.raises(EncryptError) as e:
        encrypt(bytes(1000) + b"x", bytes(32), bytes(12))
    assert e.value.reason == "BAD_ARGUMENT" and "multiple of 16" in str(e.value)


def _keygen(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", "a good passphrase")
    assert main(["keygen", "--alg", "ed25519", "--out", str(tmp_path), "--name", "k"]) == 0
    return tmp_path / "k.pem", tmp_path / "k.pub.pem"


def _release(key: Path, repo: Path, image: Path, seq: int, *extra: str) -> int:
    return main(["release", "--key", str(key), "--repo", str(repo), "--product", "p",
                 "--board", "esp32", "--version", f"1.{seq}.0", "--sequence", str(seq),
                 "--support-end", "2031-01-01", *extra, str(image)])


def test_encrypted_releases_publish_no_plaintext_and_never_reuse_a_nonce(
        tmp_path: Path, monkeypatch, capsys) -> None:
    key, pub = _keygen(tmp_path, monkeypatch)
    ck = tmp_path / "product.key"
    assert main(["key", "content", str(ck)]) == 0
    assert "key id " + contentkey.key_id(contentkey.load_key_file(ck)) in capsys.readouterr().out
    image = make_app_image("1.1.0", size=80_000, seed="s")
    app = tmp_path / "app.bin"
    app.write_bytes(image)
    repo = tmp_path / "repo"
    bodies = []
    for seq in (2, 3):  # the same image released twice
        assert _release(key, repo, app, seq, "--encrypt-key", str(ck)) == 0
        bodies.append(Repository(str(repo)).current("p", "esp32", "stable"))
    p2, p3 = (b.payload for b in bodies)  # type: ignore[union-attr]
    assert p2.encoding == p3.encoding == "aes-256-cbc" and p2.sha256 == p3.sha256
    assert p2.nonce != p3.nonce and p2.blob_sha256 != p3.blob_sha256  # a fresh nonce each time
    assert p2.key_id == p3.key_id == contentkey.key_id(contentkey.load_key_file(ck))
    blobs = {f.name: f.read_bytes() for f in (repo / "blobs" / "sha256").iterdir()}
    assert set(blobs) == {p2.blob_sha256, p3.blob_sha256}  # no plaintext blob
    assert all(b.find(image[0x20:0x50]) < 0 for b in blobs.values())  # nor its app descriptor
    assert decrypt(blobs[p3.blob_sha256], contentkey.load_key_file(ck),
                   bytes.fromhex(p3.nonce or "")) == image
    assert main(["verify", "--repo", str(repo), "--key", str(pub)]) == 0
    f = repo / "blobs" / "sha256" / (p3.blob_sha256 or "")
    f.write_bytes(f.read_bytes()[:-1] + b"x")
    capsys.readouterr()
    assert main(["verify", "--repo", str(repo), "--key", str(pub)]) == 1
    assert "HASH_MISMATCH" in capsys.readouterr().err


@pytest.mark.parametrize(("setup", "extra", "reason"), [
    ("none", (), "NOT_FOUND"),
    ("garbage", (), "BAD_KEY"),
])
def test_release_refuses_a_bad_content_key(tmp_path: Path, monkeypatch, capsys, setup: str,
                                           extra: tuple[str, ...], reason: str) -> None:
    key, _ = _keygen(tmp_path, monkeypatch)
    ck = tmp_path / "product.key"
    if setup == "garbage":
        ck.write_text("otakit-content-key 00\n")
    app = tmp_path / "app.bin"
    app.write_bytes(make_app_image("1.1.0", size=20_000))
    capsys.readouterr()
    assert _release(key, tmp_path / "repo", app, 2, "--encrypt-key", str(ck), *extra) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"otakit: {reason}: ") and err.count("\n") == 1, err
    assert not (tmp_path / "repo" / "blobs").exists()


@settings(max_examples=15, deadline=None)
@given(pairs(), st.sampled_from([4096, 8192]))
def test_encrypted_representations_decode_from_every_chunk(pair: tuple[bytes, bytes],
                                                           chunk: int) -> None:
    old, new = pair
    key, nonce = bytes(range(32)), bytes(12)
    for enc, base in ((deflate_chunked(new, 12, chunk, align=16), None),
                      (delta_chunked(old, new, 12, chunk, align=16), old)):
        assert all(n % 16 == 0 for n in enc.lengths)  # whole AES blocks per chunk
        sealed = encrypt_chunks(enc, key, nonce)
        assert sealed.lengths == enc.lengths and (len(new) < 64 or sealed.data != enc.data)
        for k in range(len(enc.lengths)):
            stream = decrypt_chunks(sealed, key, nonce, k)
            assert stream == enc.data[enc.offset(k):]
            assert decode_from(enc, k, len(new), old=base) == new[k * chunk:]


def test_encrypted_release_encrypts_every_representation_under_its_own_nonce(
        tmp_path: Path, monkeypatch) -> None:
    key, pub = _keygen(tmp_path, monkeypatch)
    ck = tmp_path / "product.key"
    contentkey.write_key_file(ck, bytes(range(32)))
    old_image = make_app_image("1.0.0", size=200_000, seed="s", compressible=True)
    image = make_app_image("1.1.0", size=200_000, seed="s", compressible=True)
    (tmp_path / "old.bin").write_bytes(old_image)
    app = tmp_path / "app.bin"
    app.write_bytes(image)
    repo = tmp_path / "repo"
    assert _release(key, repo, app, 2, "--encrypt-key", str(ck), "--encoding", "deflate",
                    "--delta-base", str(tmp_path / "old.bin")) == 0
    body = Repository(str(repo)).current("p", "esp32", "stable")
    assert body is not None and [r.encoding for r in body.payloads] == ["deflate", "delta"]
    nonces = {body.payload.nonce, *(r.nonce for r in body.payloads)}
    assert len(nonces) == 3 and None not in nonces  # no (key, IV) shared between blobs
    blobs = [f.read_bytes() for f in (repo / "blobs" / "sha256").iterdir()]
    assert len(blobs) == 3 and all(b.find(image[0x20:0x50]) < 0 for b in blobs)
    plain = deflate_chunked(image, 12, align=16)
    (z,) = [r for r in body.payloads if r.encoding == "deflate"]
    assert z.chunks == plain.lengths and inflate(decrypt_chunks(
        Encoded((repo / z.path).read_bytes(), z.chunk or 0, z.chunks or ()), bytes(range(32)),
        bytes.fromhex(z.nonce or ""))) == image
    assert main(["verify", "--repo", str(repo), "--key", str(pub)]) == 0


def test_content_key_file_is_private_and_never_overwritten(tmp_path: Path, capsys) -> None:
    ck = tmp_path / "product.key"
    assert main(["key", "content", str(ck)]) == 0
    text = ck.read_text()
    assert ck.stat().st_mode & 0o077 == 0 and len(contentkey.load_key_file(ck)) == 32
    capsys.readouterr()
    assert main(["key", "content", str(ck)]) == 1
    assert "EXISTS" in capsys.readouterr().err and ck.read_text() == text
