"""ota.crypto on the real MicroPython unix port (and, as a second check, under CPython).

Vectors are batched: one device process verifies a whole file of them and prints one digit per
vector, so the suite stays fast. Third-party vectors (Wycheproof) come from ../shared; the RFC 8032
§7.1 vectors are typed in below and checked against `cryptography` first.

'acceptable' results: the two Wycheproof files used here have none (asserted below). Our Ed25519
policy for the cases that elsewhere get that label: small-order R or A are not refused by
themselves; the cofactorless equation [S]B == R + [k]A must hold exactly (test_small_order_key_*).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from otakit.mpy import mpy_cross_binary, run_micropython
from otakit.paths import FIRMWARE_DIR

ED = "ed25519"
RSA = "rsa3072-pss-sha256"
Vector = tuple[str, bytes, bytes, bytes]  # (alg, public key, message, signature)
Check = Callable[[Sequence[Vector]], list[bool]]

# Runs unchanged on MicroPython and CPython: verify every vector of a file, one digit each.
RUNNER = r"""
from binascii import unhexlify
from ota.crypto import verify


def unhex(s):
    return b"" if s == "-" else unhexlify(s)


def run_file(path):
    out = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if p:
                out.append("1" if verify(p[0], unhex(p[1]), unhex(p[2]), unhex(p[3])) else "0")
    return "".join(out)


# (the good call, the good call with other buffer types, every malformed variant)
def malformed(alg, pk, msg, sig):
    other = "ed25519" if alg != "ed25519" else "rsa3072-pss-sha256"
    bad = [
        (alg, None, msg, sig), (alg, pk, None, sig), (alg, pk, msg, None),
        (alg, "x" * len(pk), msg, sig), (alg, list(pk), msg, sig), (alg, pk, msg, 5),
        (alg, pk, "text", sig), (alg, pk[:-1], msg, sig), (alg, pk + b"0", msg, sig),
        (alg, pk, msg, sig[:-1]), (alg, pk, msg, sig + b"0"), (alg, pk, msg, b""),
        (alg, b"", msg, sig), (alg.upper(), pk, msg, sig), (None, pk, msg, sig),
        (1, pk, msg, sig), (alg.encode(), pk, msg, sig), ("", pk, msg, sig),
        (other, pk, msg, sig), (alg, bytes(len(pk)), msg, sig), (alg, pk, msg, bytes(len(sig))),
        (alg, b"\xff" * len(pk), msg, sig), (alg, pk, msg, b"\xff" * len(sig)),
    ]
    good = verify(alg, pk, msg, sig)
    buffers = verify(alg, bytearray(pk), memoryview(msg), bytearray(sig))
    return good, buffers, [verify(*c) for c in bad]
"""

RFC8032_1023 = bytes.fromhex(
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f5"
    "4e9f77b1e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37"
    "c93a1b270b20329d658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efc"
    "b8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b"
    "3b310da903401aa62100ab5d1a36553e06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573c"
    "b116dbefefd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204"
    "ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed185ce81bd84359d44254d95629e9855a94a7c1958"
    "d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
    "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f27088d78b7e883c8759d2c4f5c6"
    "5adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2"
    "cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128bab27af87a"
    "71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
    "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9"
    "b47acdb751fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb"
    "038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f672451"
    "7b65e614ad6808d6f6ee34dff7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
    "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e"
    "2ab47b57f7f7276cd419c17a3ca8e1b939ae49e488acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d"
    "5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e6aed3fb0"
    "f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb93246f6b1116398a346f1a641f3b041"
    "e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa9"
    "33a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380db2eaaa707b4c4185"
    "c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8cac60c905c"
    "15fc910840b94c00a0b9d0"
)

# RFC 8032 §7.1: (secret seed, public key, message, signature) of TEST 1, 2, 3 and 1024.
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", b"",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
     "6bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", b"\x72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d"
     "8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", b"\xaf\x82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6"
     "594a7c15e9716ed28dc027beceea1ec40a"),
    ("f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
     "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e", RFC8032_1023,
     "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d9"
     "4b5e8fcd4f681e30a6ac00a9704a188a03"),
]

L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19
IDENTITY = (1).to_bytes(32, "little")  # the neutral element (0, 1): a small-order point
BASE = bytes.fromhex("58" + "66" * 31)  # the base point B


def _write(vectors: Sequence[Vector], path: Path) -> Path:
    with path.open("w") as f:
        for alg, pk, msg, sig in vectors:
            f.write(f"{alg} {pk.hex() or '-'} {msg.hex() or '-'} {sig.hex() or '-'}\n")
    return path


def _device(vectors: Sequence[Vector], tmp_path: Path) -> list[bool]:
    script = tmp_path / "run_vectors.py"
    script.write_text(RUNNER + "\nimport sys\nprint('RESULT', run_file(sys.argv[1]))\n")
    data = _write(vectors, tmp_path / "vectors.txt")
    proc = run_micropython([str(script), str(data)], path=[FIRMWARE_DIR], timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode() + out
    digits = out.split("RESULT ")[1].strip()
    assert len(digits) == len(vectors)
    return [c == "1" for c in digits]


@pytest.fixture(scope="module")
def cpython_ns() -> Iterator[dict[str, object]]:
    """The RUNNER functions, executed by CPython with firmware/ on sys.path."""
    sys.path.insert(0, str(FIRMWARE_DIR))
    try:
        ns: dict[str, object] = {}
        exec(RUNNER, ns)  # noqa: S102 - our own fixed source, the same the device runs
        yield ns
    finally:
        sys.path.remove(str(FIRMWARE_DIR))


@pytest.fixture(params=["micropython", "cpython"])
def check(request: pytest.FixtureRequest, tmp_path: Path) -> Check:
    """A function verifying a batch of vectors, on the unix port or under CPython."""
    if request.param == "micropython":
        return lambda vectors: _device(vectors, tmp_path)
    ns = request.getfixturevalue("cpython_ns")
    return lambda vectors: [c == "1" for c in ns["run_file"](str(_write(vectors, tmp_path / "v")))]


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _wycheproof(shared_dir: Path, name: str) -> tuple[list[Vector], list[str], list[int]]:
    doc = json.loads((shared_dir / "vectors" / "wycheproof" / name).read_text())
    vectors, results, ids = [], [], []
    for group in doc["testGroups"]:
        key = group["publicKey"]
        if "pk" in key:
            alg, pk = ED, bytes.fromhex(key["pk"])
        else:
            alg, pk = RSA, bytes.fromhex(key["modulus"]).lstrip(b"\0")
            assert key["publicExponent"] == "010001" and group["sLen"] == 32
        for t in group["tests"]:
            vectors.append((alg, pk, bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"])))
            results.append(t["result"])
            ids.append(t["tcId"])
    return vectors, results, ids


def test_rfc8032_vectors_are_the_published_ones() -> None:
    for seed, pk, msg, sig in RFC8032:
        key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        assert raw.hex() == pk
        assert key.sign(msg).hex() == sig
    assert len(RFC8032[3][2]) == 1023


def test_rfc8032_vectors_verify_and_tampering_is_refused(check: Check) -> None:
    good = [(ED, bytes.fromhex(pk), msg, bytes.fromhex(sig)) for _, pk, msg, sig in RFC8032]
    bad = []
    for alg, pk, msg, sig in good:
        s = int.from_bytes(sig[32:], "little")
        bad += [
            (alg, pk, msg, _flip(sig, 3)),  # R changed
            (alg, pk, msg, _flip(sig, 256 + 7)),  # S changed
            (alg, pk, msg, sig[:32] + (s + L).to_bytes(32, "little")),  # malleated S >= L
            (alg, pk, msg + b"\0", sig),
            (alg, _flip(pk, 0), msg, sig),
        ]
    results = check(good + bad)
    assert results[:4] == [True] * 4
    assert not any(results[4:]), [i for i, r in enumerate(results[4:]) if r]


def test_wycheproof_ed25519(shared_dir: Path, check: Check) -> None:
    vectors, results, ids = _wycheproof(shared_dir, "ed25519_test.json")
    assert len(vectors) == 151 and "acceptable" not in results
    got = check(vectors)
    wrong = [i for i, r, g in zip(ids, results, got, strict=True) if g != (r == "valid")]
    assert wrong == []
    assert sum(got) == results.count("valid") == 88


def test_wycheproof_rsa_pss_3072(shared_dir: Path, check: Check) -> None:
    vectors, results, ids = _wycheproof(shared_dir, "rsa_pss_3072_sha256_mgf1_32_test.json")
    assert len(vectors) == 108 and "acceptable" not in results
    got = check(vectors)
    wrong = [i for i, r, g in zip(ids, results, got, strict=True) if g != (r == "valid")]
    assert wrong == []
    assert sum(got) == results.count("valid") == 63


def _random_signed(rng: random.Random) -> list[Vector]:
    """120 Ed25519 signatures (a key each) and 100 RSA-PSS ones (5 keys), random lengths."""
    out: list[Vector] = []
    for _ in range(120):
        key = ed25519.Ed25519PrivateKey.generate()
        pk = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
        msg = rng.randbytes(rng.choice([32, rng.randrange(0, 300)]))
        out.append((ED, pk, msg, key.sign(msg)))
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    for _ in range(5):
        rkey = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        n = rkey.public_key().public_numbers().n.to_bytes(384, "big")
        for _ in range(20):
            msg = rng.randbytes(rng.choice([32, rng.randrange(0, 300)]))
            out.append((RSA, n, msg, rkey.sign(msg, pss, hashes.SHA256())))
    return out


@pytest.fixture(scope="module")
def random_signed() -> list[Vector]:
    return _random_signed(random.Random(20260))


def test_random_host_signatures_verify_and_bit_flips_are_refused(
        random_signed: list[Vector], check: Check) -> None:
    rng = random.Random(7)
    sig_flips = [(a, pk, m, _flip(s, rng.randrange(len(s) * 8))) for a, pk, m, s in random_signed]
    msg_flips = [(a, pk, _flip(m, rng.randrange(len(m) * 8)) if m else b"\0", s)
                 for a, pk, m, s in random_signed]
    n = len(random_signed)
    assert n >= 200
    got = check(random_signed + sig_flips + msg_flips)
    assert sum(got[:n]) == n
    assert [i for i, g in enumerate(got[n:]) if g] == []


def test_small_order_key_is_not_refused_but_encodings_are_strict(check: Check) -> None:
    # A = identity (small order): [S]B == R + [k]A holds for R = B, S = 1 whatever the message.
    one = (1).to_bytes(32, "little")
    sig = BASE + one
    vectors = [
        (ED, IDENTITY, b"m", sig),  # accepted: the cofactorless equation holds exactly
        (ED, IDENTITY, b"m", IDENTITY + bytes(32)),  # R = identity, S = 0: holds too
        # refused: the same points, encoded non-canonically
        (ED, (P + 1).to_bytes(32, "little"), b"m", sig),  # y = p + 1
        (ED, (1 | 1 << 255).to_bytes(32, "little"), b"m", sig),  # x = 0 with the sign bit
        (ED, IDENTITY, b"m", (P + 1).to_bytes(32, "little") + bytes(32)),
        (ED, IDENTITY, b"m", (1 | 1 << 255).to_bytes(32, "little") + bytes(32)),
        (ED, IDENTITY, b"m", BASE + (1 + L).to_bytes(32, "little")),  # S >= L
        (ED, (2).to_bytes(32, "little"), b"m", sig),  # y = 2 is not on the curve
        (ED, IDENTITY, b"m", _flip(BASE, 255) + one),  # -B instead of B
    ]
    assert check(vectors) == [True, True] + [False] * 7


def test_malformed_inputs_return_false(random_signed: list[Vector], tmp_path: Path,
                                       cpython_ns: dict[str, object]) -> None:
    ed = next(v for v in random_signed if v[0] == ED)
    rs = next(v for v in random_signed if v[0] == RSA)
    script = tmp_path / "malformed.py"
    script.write_text(RUNNER + "\nimport sys\nfrom binascii import unhexlify as u\n"
                      "for line in open(sys.argv[1]):\n"
                      "    a, pk, m, s = line.split()\n"
                      "    print('RESULT', malformed(a, u(pk), u(m), u(s)))\n")
    cases = [(a, pk, m or b"\0", s) for a, pk, m, s in (ed, rs)]
    data = tmp_path / "good.txt"
    data.write_text("".join(f"{a} {pk.hex()} {m.hex()} {s.hex()}\n" for a, pk, m, s in cases))
    proc = run_micropython([str(script), str(data)], path=[FIRMWARE_DIR])
    assert proc.returncode == 0, proc.stderr.decode()
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("RESULT")]
    assert len(lines) == 2
    for line, (a, pk, m, s) in zip(lines, cases, strict=True):
        good, buffers, bad = cpython_ns["malformed"](a, pk, m, s)
        assert line == f"RESULT ({good}, {buffers}, {bad})"
        assert good is True and buffers is True
        assert len(bad) == 23 and not any(bad)


def test_device_modules_compile_with_mpy_cross(tmp_path: Path) -> None:
    for name in ("crypto", "ed25519", "rsapss", "sha512"):
        src = FIRMWARE_DIR / "ota" / f"{name}.py"
        assert len(src.read_text().splitlines()) <= 250
        out = tmp_path / f"{name}.mpy"
        proc = subprocess.run([mpy_cross_binary(), "-o", str(out), str(src)],
                              capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr.decode()
        assert out.stat().st_size > 0


def test_frozen_base_tables_are_multiples_of_b(cpython_ns: dict[str, object]) -> None:
    from ota import ed25519 as edmod  # CPython imports it from firmware/ (see cpython_ns)

    d = -121665 * pow(121666, P - 2, P) % P

    def add(p1: tuple[int, int], p2: tuple[int, int]) -> tuple[int, int]:
        (x1, y1), (x2, y2) = p1, p2
        t = d * x1 * x2 * y1 * y2 % P
        return ((x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P,
                (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)

    def mul(k: int, pt: tuple[int, int]) -> tuple[int, int]:
        acc = (0, 1)
        while k:
            if k & 1:
                acc = add(acc, pt)
            pt, k = add(pt, pt), k >> 1
        return acc

    base = edmod._decode(BASE)
    assert base is not None and base[1] == 4 * pow(5, P - 2, P) % P and base[0] % 2 == 0
    for table, pt in ((edmod._TB, base), (edmod._TB128, mul(1 << 128, base))):
        want: list[int] = []
        for m in (1, 3, 5, 7):
            x, y = mul(m, pt)
            want += [(y + x) % P, (y - x) % P, 2, 2 * d * x * y % P]
        assert list(table) == want
