"""The project's own signature vectors (tests/vectors/signatures), the evidence 5.3-7 rests on in
any checkout: the device verifier gives each its expected result, and the generator reproduces
the shipped files exactly."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR, ROOT

VECTORS = ROOT / "tests" / "vectors" / "signatures"

RUNNER = r"""
import sys
from binascii import unhexlify
from ota.crypto import verify

out = []
with open(sys.argv[1]) as f:
    for line in f:
        alg, pk, msg, sig = line.split()
        u = lambda s: b"" if s == "-" else unhexlify(s)
        out.append("1" if verify(alg, u(pk), u(msg), u(sig)) else "0")
print("RESULT", "".join(out))
"""


def _load() -> list[dict]:
    out = []
    for name in ("ed25519.json", "rsa_pss_3072.json"):
        out += json.loads((VECTORS / name).read_text())["vectors"]
    return out


def test_shipped_signature_vectors_are_what_the_generator_makes() -> None:
    spec = importlib.util.spec_from_file_location("make_signatures",
                                                  VECTORS / "make_signatures.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    docs = gen.documents()  # also cross-checks every expected result with `cryptography`
    assert set(docs) == {"ed25519.json", "rsa_pss_3072.json"}
    for name, text in docs.items():
        assert (VECTORS / name).read_text() == text, name


def test_shipped_signature_vectors_on_the_device(tmp_path: Path) -> None:
    vectors = _load()
    algs = {v["alg"] for v in vectors}
    assert algs == {"ed25519", "rsa3072-pss-sha256"}
    for alg in algs:  # each algorithm has valid and invalid vectors
        results = {v["result"] for v in vectors if v["alg"] == alg}
        assert results == {"valid", "invalid"}, alg
    assert any(v["id"].startswith("rfc8032-") for v in vectors)
    data = tmp_path / "vectors.txt"
    data.write_text("".join(f"{v['alg']} {v['pk'] or '-'} {v['msg'] or '-'} {v['sig'] or '-'}\n"
                            for v in vectors))
    script = tmp_path / "run.py"
    script.write_text(RUNNER)
    proc = run_micropython([str(script), str(data)], path=[FIRMWARE_DIR], timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    got = proc.stdout.decode().split("RESULT ")[1].strip()
    assert len(got) == len(vectors)
    wrong = [v["id"] for v, g in zip(vectors, got, strict=True)
             if (g == "1") != (v["result"] == "valid")]
    assert wrong == []
