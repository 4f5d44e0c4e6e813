"""Payload encodings on the host: round trips (hypothesis), refusals, and the release command."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.payloads import (PatchError, apply_patch, decode_delta, deflate, encode_delta,
                             inflate, make_patch)


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
