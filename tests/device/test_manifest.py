"""ota/manifest.py on the real MicroPython unix port (and under CPython), against the shared
vectors and against manifests the host tools make.

Each test runs one MicroPython process for a whole batch; the script prints one line per case.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from otakit import keys
from otakit.errors import ManifestError as HostManifestError
from otakit.manifest import sign_manifest, verify_manifest
from otakit.manifest_body import ManifestBody, Payload
from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR, ROOT

VECTORS = ROOT / "tests" / "vectors"
INDEX = json.loads((VECTORS / "index.json").read_text())

# Reads "<file>" lines from stdin, prints "<file> OK|<REASON>" for each, and the fields of
# valid ones as JSON. Runs on MicroPython and CPython alike.
PARSE_SCRIPT = r"""
import sys, json
from binascii import hexlify
from vector_keys import KEYS
from ota.manifest import parse
from ota.errors import ManifestError
FIELDS = ("alg", "product", "board", "chip_id", "channel", "version", "sequence",
          "security_version", "created", "expires", "notes", "support_end", "security",
          "disruption", "rollout", "sbom", "path", "size", "encoding", "revision", "min_keyring")
for name in sys.stdin.read().split():
    with open(name, "rb") as f:
        data = f.read()
    try:
        m = parse(data, KEYS)
    except ManifestError as e:
        print(name, e.reason)
        continue
    out = {k: getattr(m, k) for k in FIELDS}
    out["sha256"] = hexlify(m.sha256).decode()
    out["key_id"] = hexlify(m.key_id).decode()
    out["payloads"] = []
    for r in m.payloads:
        p = {"encoding": r[0], "path": r[1], "size": r[2], "sha256": hexlify(r[3]).decode(),
             "wbits": r[4], "base_size": r[5],
             "base_sha256": hexlify(r[6]).decode() if r[6] else None}
        if r[7] is not None:  # resumable (body revision 4)
            p["chunk"], p["chunks"] = r[7], list(r[8])
            if r[9] is not None:
                p["chunk_bases"] = list(r[9])
        out["payloads"].append(p)
    print(name, "OK", json.dumps(out))
"""

# Flips bits of one manifest in turn: every bit of the envelope header and of the signature (each
# field the parser reads before the digest, and each branch of the signature check), and, in the
# signed body (bytes the parser only hashes before the signature check), every bit when argv[2]
# is "all", else one bit of every byte (bit i % 8 of byte i: every byte and every bit position of
# the body changes the digest); prints the count flipped and accepted (must be 0) and the reasons.
FLIP_SCRIPT = r"""
import sys
from vector_keys import KEYS
from ota.manifest import parse
from ota.errors import ManifestError
with open(sys.argv[1], "rb") as f:
    good = f.read()
parse(good, KEYS)
buf = bytearray(good)
end = 18 + (buf[14] | buf[15] << 8)
every = sys.argv[2] == "all"
accepted = 0
flips = 0
reasons = {}
for i in range(len(buf)):
    for bit in range(8):
        if 18 <= i < end and not every and bit != i % 8:
            continue
        flips += 1
        buf[i] ^= 1 << bit
        try:
            parse(buf, KEYS)
            accepted += 1
            print("ACCEPTED", i, bit)
        except ManifestError as e:
            reasons[e.reason] = reasons.get(e.reason, 0) + 1
        buf[i] ^= 1 << bit
print("flips", flips, "accepted", accepted)
for r in sorted(reasons):
    print("reason", r, reasons[r])
"""


def _run(script: str, tmp_path: Path, args: list[str] = (), stdin: str = "",
         cpython: bool = False) -> str:
    path = tmp_path / "script.py"
    path.write_text(script)
    if cpython:
        import subprocess  # noqa: PLC0415

        env = {"PYTHONPATH": f"{FIRMWARE_DIR}:{VECTORS}", "PATH": "/usr/bin:/bin"}
        r = subprocess.run([sys.executable, str(path), *args], input=stdin.encode(), env=env,
                           capture_output=True, cwd=VECTORS / INDEX["manifest_dir"], check=False)
    else:
        r = run_micropython([str(path), *args], path=[FIRMWARE_DIR, VECTORS],
                            cwd=VECTORS / INDEX["manifest_dir"], input_data=stdin.encode(),
                            timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def _results(out: str) -> dict[str, tuple[str, dict | None]]:
    res = {}
    for line in out.splitlines():
        name, verdict, *rest = line.split(" ", 2)
        res[name] = (verdict, json.loads(rest[0]) if rest else None)
    return res


# Under CPython the device module's json.loads(bytes) takes a UTF-8 BOM and NaN, which the
# MicroPython json module (the one that matters) and the host parser refuse.
CPYTHON_JSON_LAXER: set[str] = set()


@pytest.mark.parametrize("cpython", [False, True], ids=["micropython", "cpython"])
def test_every_vector_gives_its_expected_result(tmp_path: Path, cpython: bool) -> None:
    # On the device, through the agent's own path (ota.check._verify: ota.manifest's steps with
    # the signature checked by the algorithm's module alone); under CPython, ota.manifest.parse.
    files = [v["file"] for v in INDEX["vectors"]]
    script = PARSE_SCRIPT if cpython else PARSE_SCRIPT.replace(
        "from ota.manifest import parse\n", "from ota.check import _verify as parse\n")
    assert cpython or "ota.check" in script
    res = _results(_run(script, tmp_path, stdin="\n".join(files), cpython=cpython))
    wrong = []
    for v in INDEX["vectors"]:
        verdict, fields = res[v["file"]]
        if cpython and v["file"] in CPYTHON_JSON_LAXER:
            continue
        if verdict != v["expect"]:
            wrong.append(f"{v['file']}: expected {v['expect']}, got {verdict}")
        elif fields is not None:
            assert fields == v["fields"], v["file"]
    assert not wrong, "\n".join(wrong)


def _host_manifest(key: keys.PrivateKey, **over: object) -> bytes:
    sha = "ab" * 32
    fields = dict(product="door-lock", board="esp32", chip_id=0, channel="beta",
                  version="2.0.0-rc1", sequence=77, security_version=5, revision=9,
                  min_keyring=2,
                  payload=Payload(f"blobs/sha256/{sha}", 1429744, sha), created=1767225600,
                  support_end="2032-06-30", expires=1800000000, notes="ünïcode notes",
                  security={"severity": "critical", "risk": "remote unlock"},
                  disruption={"reboot": True, "seconds": 20})
    fields.update(over)
    return sign_manifest(ManifestBody(**fields), key)  # type: ignore[arg-type]


def test_host_made_manifests_are_accepted_on_the_device(tmp_path: Path) -> None:
    ring = keys.load_keyring_module(VECTORS / INDEX["keyring"])
    made = {}
    for label in ("ed25519", "rsa3072"):
        key = keys.load_private_key(VECTORS / "keys" / f"test-only-{label}.pem")
        made[f"host-{label}.bin"] = _host_manifest(key)
        made[f"host-{label}-minimal.bin"] = _host_manifest(
            key, expires=None, notes=None, security=None, disruption=None, min_keyring=None)
    for name, data in made.items():
        (tmp_path / name).write_bytes(data)
        verify_manifest(data, ring)  # the host accepts its own output
    script = PARSE_SCRIPT.replace("open(name", "open(%r + '/' + name" % str(tmp_path))
    res = _results(_run(script, tmp_path, stdin="\n".join(made)))
    for name in made:
        verdict, fields = res[name]
        assert verdict == "OK", name
        assert fields["version"] == "2.0.0-rc1" and fields["sequence"] == 77
        assert fields["sha256"] == "ab" * 32 and fields["size"] == 1429744
        assert fields["revision"] == 9
    assert res["host-ed25519.bin"][1]["min_keyring"] == 2
    assert res["host-ed25519-minimal.bin"][1]["min_keyring"] == 0  # absent = 0
    assert res["host-ed25519.bin"][1]["security"] == {"severity": "critical",
                                                      "risk": "remote unlock"}
    assert res["host-rsa3072-minimal.bin"][1]["expires"] is None


@pytest.mark.slow
def test_every_single_bit_flip_is_refused(tmp_path: Path) -> None:
    # every bit of the header and the signature, one bit of every body byte (OTAKIT_ALL_FLIPS=1:
    # every bit of the body too, 8 times the signature checks)
    name = "ok-ed25519-minimal.bin"
    every = os.environ.get("OTAKIT_ALL_FLIPS") == "1"
    out = _run(FLIP_SCRIPT, tmp_path, args=[name, "all" if every else "byte"])
    assert "ACCEPTED" not in out
    data = (VECTORS / "manifests" / name).read_bytes()
    body = int.from_bytes(data[14:16], "little")
    flips = (len(data) - body) * 8 + body * (8 if every else 1)
    assert f"flips {flips} accepted 0" in out
    reasons = {line.split()[1] for line in out.splitlines() if line.startswith("reason")}
    assert {"BAD_FORMAT", "BAD_SIGNATURE", "UNKNOWN_KEY"} <= reasons
    # the host refuses a sample of the same flips too
    ring = keys.load_keyring_module(VECTORS / INDEX["keyring"])
    for i in range(0, len(data), 7):
        with pytest.raises(HostManifestError):
            verify_manifest(data[:i] + bytes([data[i] ^ 0x80]) + data[i + 1:], ring)


CHECK_TARGET_SCRIPT = r"""
from vector_keys import KEYS
from ota.manifest import parse, check_target
from ota.errors import ManifestError
m = parse(open("ok-ed25519-full.bin", "rb").read(), KEYS)
d = parse(open("ok-encoding-deflate-parses.bin", "rb").read(), KEYS)
cases = [
    ("ok", m, ("door-lock", "esp32", 0, 65872)),
    ("product", m, ("garage", "esp32", 0, 1 << 20)),
    ("board", m, ("door-lock", "esp32-8mb", 0, 1 << 20)),
    ("chip", m, ("door-lock", "esp32", 5, 1 << 20)),
    ("size", m, ("door-lock", "esp32", 0, 65871)),
    ("encoding", d, ("door-lock", "esp32", 0, 1 << 20)),
]
for label, man, args in cases:
    try:
        check_target(man, *args)
        print(label, "OK")
    except ManifestError as e:
        print(label, e.reason)
"""


def test_check_target_refuses_what_this_device_must_not_install(tmp_path: Path) -> None:
    out = _run(CHECK_TARGET_SCRIPT, tmp_path)
    assert out.split("\n")[:6] == [
        "ok OK", "product WRONG_PRODUCT", "board WRONG_BOARD", "chip WRONG_BOARD",
        "size PAYLOAD_TOO_LARGE", "encoding UNSUPPORTED_ENCODING"]


def test_parse_runs_in_a_small_heap(tmp_path: Path) -> None:
    script = ("import gc\nfrom vector_keys import KEYS\nfrom ota.manifest import parse\n"
              "data = open('ok-rsa-full.bin', 'rb').read()\ngc.collect()\n"
              "m = parse(memoryview(data), KEYS)\nprint(m.sequence)\n")
    path = tmp_path / "small.py"
    path.write_text(script)
    r = run_micropython([str(path)], path=[FIRMWARE_DIR, VECTORS], heapsize="48K",
                        cwd=VECTORS / "manifests")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() == "12"
