"""Encrypted payloads end to end (docs/format.md §2.8): real server, real unix port, simulated
flash, the content key provisioned onto the board as `otakit sim flash --content-key` does.

Judged by what a user or an attacker would see: which image runs, what the server holds and
sent, the reason code the device reports, and what the flash holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scenario import HEAP, blob_requests, last, otadata, prepare, statuses, step
from test_agent import SIZE

from otakit import keys
from otakit.appimage import app_descriptor, make_app_image, rebuild_with_module
from otakit.cli import main
from otakit.errors import ManifestError
from otakit.manifest import sign_manifest, verify_manifest
from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR, ROOT
from otakit.payloads import Encoded, decode_from, decrypt, decrypt_chunks, deflate_chunked
from otakit.sim.lab import Lab
from otakit.sim.oracle import lab_kept_progress
from otakit.sim.provision import firmware_dir
from otakit.sim.runner import run

OLD = make_app_image("1.0.0", size=SIZE)
NEW = make_app_image("1.1.0", size=SIZE)
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def key_text(key: bytes) -> str:
    return f"otakit-content-key {key.hex()}\n"


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab") as the_lab:
        prepare(the_lab)
        the_lab.flash(OLD, content_key=key_text(KEY))
        yield the_lab


def slot_bytes(lab: Lab, label: str, n: int) -> bytes:
    part = lab.board.partition(label)
    return lab.flash_path.read_bytes()[part.offset:part.offset + n]


def test_encrypted_release_installs_and_the_server_holds_no_plaintext(lab: Lab) -> None:
    pub = lab.publish(NEW, "1.1.0", 2, encrypt_key=KEY)
    p = pub.body.payload
    assert p.encoding == "aes-256-cbc" and p.sha256 != p.blob_sha256
    blob = pub.payload_path.read_bytes()
    # the app descriptor (version, project name, build date) is nowhere on the server
    desc = NEW[0x20:0x20 + 48]  # esp_app_desc_t: magic word, secure version, "1.1.0"
    assert desc.startswith(app_descriptor("1.1.0")[:48])
    stored = b"".join(f.read_bytes() for f in pub.payload_path.parent.iterdir())
    assert blob != NEW and stored.find(desc) < 0 and stored.find(desc[16:]) < 0
    assert not lab.repo.payload_path(p.sha256).exists()  # no plaintext blob beside it
    result = step(lab)
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
    assert "BOOT confirmed" in result.log
    assert [path.rsplit("/", 1)[1] for _, path, _ in blob_requests(lab)] == [p.blob_sha256]
    assert slot_bytes(lab, "ota_1", len(NEW)) == NEW  # decrypted into the slot


@pytest.mark.parametrize("provisioned", [OTHER_KEY, None], ids=["other-key", "no-key"])
def test_device_without_the_key_refuses_before_downloading(tmp_path: Path,
                                                           provisioned: bytes | None) -> None:
    with Lab(tmp_path / "lab") as lab:
        prepare(lab)
        lab.flash(OLD, **({"content_key": key_text(provisioned)} if provisioned else {}))
        lab.publish(NEW, "1.1.0", 2, encrypt_key=KEY)
        result = step(lab)
        s = last(result)
        assert s["reason"] == "NO_CONTENT_KEY", result.log
        assert ("another content key" if provisioned else "holds no content key") in s["detail"]
        assert len(result.boots) == 1 and blob_requests(lab) == []
        assert otadata(lab) == [(1, "VALID")] and lab.state().next_boot == "ota_0"


def test_wrong_key_under_the_right_key_id_never_boots(lab: Lab) -> None:
    # A blob encrypted with another key but named as this device's key (what a swapped blob or
    # a forged key id would give): it decrypts to noise, which is refused, never booted.
    pub = lab.publish(NEW, "1.1.0", 2, encrypt_key=KEY)
    other = lab.publish(NEW, "1.1.0", 3, encrypt_key=OTHER_KEY)
    pub.payload_path.write_bytes(other.payload_path.read_bytes())
    lab.manifest_path.write_bytes(pub.manifest)  # the release for KEY, its blob replaced
    result = step(lab)
    assert statuses(result)[-1]["reason"] in ("BAD_IMAGE", "HASH_MISMATCH"), result.log
    assert len(result.boots) == 1
    assert otadata(lab) == [(1, "VALID")] and lab.state().next_boot == "ota_0"


def test_altered_ciphertext_is_refused_and_boot_target_unchanged(lab: Lab) -> None:
    pub = lab.publish(NEW, "1.1.0", 2, encrypt_key=KEY)
    data = bytearray(pub.payload_path.read_bytes())
    data[SIZE // 2] ^= 0x01
    pub.payload_path.write_bytes(bytes(data))
    result = step(lab)
    assert statuses(result)[-1]["reason"] == "HASH_MISMATCH", result.log
    assert len(result.boots) == 1
    assert otadata(lab) == [(1, "VALID")] and lab.state().next_boot == "ota_0"


def test_power_cut_during_an_encrypted_install_keeps_a_bootable_image(lab: Lab) -> None:
    lab.publish(NEW, "1.1.0", 2, encrypt_key=KEY)
    flashed = lab.flash_path.read_bytes()
    dry = step(lab)
    assert [b.version for b in dry.boots] == ["1.0.0", "1.1.0"], dry.log
    total = dry.ops
    mid = 0
    for cut in sorted({2, total // 6, total // 3, total // 2, total - 1}):
        lab.flash_path.write_bytes(flashed)
        r = lab.boot(script=lab.work / "step.py", heapsize=HEAP, cut_at=cut,
                     restart_after_cut=False)
        assert r.ended == "power_cut", (cut, r.log)
        part = slot_bytes(lab, "ota_1", len(NEW))
        done = sum(part[i:i + 4096] == NEW[i:i + 4096] for i in range(0, len(NEW), 4096))
        mid += 0 < done < len(NEW) // 4096  # the slot holds decrypted blocks, part of them
        again = step(lab)  # power on again: boots a signed image, then finishes the update
        assert again.boots[0].version in ("1.0.0", "1.1.0"), (cut, again.log)
        assert again.last.version == "1.1.0", (cut, again.log)
        assert slot_bytes(lab, "ota_1", len(NEW)) == NEW, cut
        assert lab.nvs()["seq"] == 2, cut
    assert mid >= 2  # the samples do hit the download itself


def _blob_log(lab: Lab) -> list[tuple[int, int]]:
    out = []
    for line in lab.access_log.getvalue().splitlines():
        parts = line.split()
        if len(parts) >= 6 and "/blobs/" in parts[3]:
            out.append((int(parts[4]), int(parts[5])))
    return out


def test_interrupted_encrypted_download_resumes_fetching_at_most_one_chunk(lab: Lab) -> None:
    new = make_app_image("1.1.0", size=384 * 1024, seed="new")
    pub = lab.publish(new, "1.1.0", 2, encrypt_key=KEY)
    drop = 250_000  # in the fourth 64 KB chunk, late
    lab.faults.drop_after = drop
    lab.faults.only = "/blobs/"
    first = step(lab)
    assert last(first)["reason"] == "SHORT_READ", first.log
    resume = lab_kept_progress(lab, bytes.fromhex(pub.body.payload.sha256)[:8], len(new))
    assert resume % 4096 == 0 and drop - 65536 - 4096 <= resume <= drop
    lab.faults.clear()
    again = step(lab)
    assert len(again.boots) == 2 and "BOOT confirmed" in again.log, again.log
    assert otadata(lab) == [(1, "VALID"), (2, "VALID")]
    assert slot_bytes(lab, "ota_1", len(new)) == new
    log = _blob_log(lab)
    assert log == [(200, drop), (206, pub.body.payload.size - resume)], log
    assert 0 < drop - resume <= 65536  # fetched again: at most one 64 KB chunk
    # what the device decrypted from the resume point on is the reference decoder's
    blob = pub.payload_path.read_bytes()
    assert decrypt(blob[resume:], KEY, bytes.fromhex(pub.body.payload.nonce or ""),
                   resume) == new[resume:]


# --- representations of an encrypted release: encrypted per chunk -------------------------------

BASE = make_app_image("1.0.0", size=384 * 1024, compressible=True)
REBUILT = rebuild_with_module(BASE, at=0.3, removed=1536, added=100_000)  # several chunks


def _publish_encoded(lab: Lab, encoding: str, sequence: int = 2):
    lab.flash(BASE, content_key=key_text(KEY))
    kw = {"deflate": True} if encoding == "deflate" else {"delta_bases": (BASE,)}
    pub = lab.publish(REBUILT, "1.1.0", sequence, encrypt_key=KEY, **kw)  # type: ignore[arg-type]
    (rep,) = pub.body.payloads
    assert rep.encoding == encoding and rep.nonce and rep.nonce != pub.body.payload.nonce
    assert rep.chunks and len(rep.chunks) >= 3 and all(n % 16 == 0 for n in rep.chunks)
    return pub, rep


@pytest.mark.parametrize("encoding", ["deflate", "delta"])
def test_encrypted_release_installs_from_its_encrypted_representation(lab: Lab,
                                                                      encoding: str) -> None:
    pub, rep = _publish_encoded(lab, encoding)
    blob = pub.blobs[rep.sha256].read_bytes()
    plain = deflate_chunked(REBUILT) if encoding == "deflate" else None
    assert plain is None or blob[:64] != plain.data[:64]  # not the plaintext DEFLATE stream
    assert blob.find(REBUILT[0x20:0x50]) < 0
    result = step(lab)
    assert len(result.boots) == 2 and "BOOT confirmed" in result.log, result.log
    assert [path.rsplit("/", 1)[1] for _, path, _ in blob_requests(lab)] == [rep.sha256]
    assert slot_bytes(lab, "ota_1", len(REBUILT)) == REBUILT
    assert slot_bytes(lab, "ota_0", len(BASE)) == BASE


def test_tampered_encrypted_representation_falls_back_to_the_encrypted_payload(lab: Lab) -> None:
    pub, rep = _publish_encoded(lab, "delta")
    f = pub.blobs[rep.sha256]
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x04
    f.write_bytes(bytes(data))
    result = step(lab)
    assert "ota: delta payload refused (HASH_MISMATCH" in result.log, result.log
    got = [path.rsplit("/", 1)[1] for _, path, _ in blob_requests(lab)]
    assert got == [rep.sha256, pub.body.payload.blob_sha256]  # the encrypted raw payload next
    assert len(result.boots) == 2 and "BOOT confirmed" in result.log, result.log
    assert slot_bytes(lab, "ota_1", len(REBUILT)) == REBUILT


def test_interrupted_encrypted_delta_resumes_at_a_chunk(lab: Lab) -> None:
    pub, rep = _publish_encoded(lab, "delta")
    assert rep.chunks is not None and rep.chunk
    k = max(range(1, len(rep.chunks)), key=lambda i: rep.chunks[i])  # type: ignore[index]
    offset = sum(rep.chunks[:k])
    drop = offset + rep.chunks[k] * 9 // 10  # late in chunk k: the most to fetch again
    lab.faults.drop_after = drop
    lab.faults.only = "/blobs/"
    first = step(lab)
    assert last(first)["reason"] == "SHORT_READ", first.log
    assert lab_kept_progress(lab, bytes.fromhex(rep.sha256)[:8], len(REBUILT)) == k * rep.chunk
    lab.faults.clear()
    again = step(lab)
    assert len(again.boots) == 2 and "BOOT confirmed" in again.log, again.log
    assert slot_bytes(lab, "ota_1", len(REBUILT)) == REBUILT
    log = _blob_log(lab)
    assert log == [(200, drop), (206, rep.size - offset)], log  # a Range from chunk k
    assert 0 < drop - offset <= rep.chunks[k] <= 65536 + 128  # at most one chunk again
    # what the device decrypted from chunk k on is the reference decoder's
    enc = Encoded(pub.blobs[rep.sha256].read_bytes(), rep.chunk, rep.chunks, rep.chunk_bases)
    stream = decrypt_chunks(enc, KEY, bytes.fromhex(rep.nonce or ""), k)
    assert decode_from(Encoded(bytes(offset) + stream, rep.chunk, rep.chunks, rep.chunk_bases),
                       k, len(REBUILT), old=BASE) == REBUILT[k * rep.chunk:]


# The encrypted install's smallest heap is ~62 KB (1 KB steps, an idle machine): the raw one's
# plus ota.decrypt and two AES contexts; the gate allows 4 KB more, like test_agent.py's, and
# stays far below the deflate and delta installs' 86-91 KB (docs/performance.md).
ENCRYPTED_HEAP = "66K"


def test_encrypted_install_completes_in_66_kb_of_heap(tmp_path: Path) -> None:
    with Lab(tmp_path / "lab") as lab:
        lab.flash(OLD, content_key=key_text(KEY))
        lab.publish(make_app_image("1.1.0", size=256 * 1024), "1.1.0", 2, encrypt_key=KEY)
        result = lab.install_once(ENCRYPTED_HEAP)
        assert "INSTALLED" in result.log, result.log[-3000:]
        assert lab.state().next_boot == "ota_1"


# --- the encrypted payload's fields, device and host parsers side by side ----------------------

PARSE = r"""
import sys
from binascii import hexlify
from vector_keys import KEYS
from ota.manifest import parse
from ota.errors import ManifestError
for name in sys.stdin.read().split():
    try:
        m = parse(open(name, "rb").read(), KEYS)
    except ManifestError as e:
        print(name, e.reason)
        continue
    c = m.crypt and (hexlify(m.crypt[0]).decode(), hexlify(m.crypt[1]).decode())
    r = [(p[0], p[10] and hexlify(p[10]).decode()) for p in m.payloads]
    print(name, "OK", m.encoding, c, r)
"""


def _body(rep: dict | None = None, **payload: object) -> dict:
    sha = "ab" * 32
    p = {"path": f"blobs/sha256/{'cd' * 32}", "size": 65536, "sha256": sha,
         "encoding": "aes-256-cbc", "nonce": "01" * 12, "key_id": "02" * 8,
         "blob_sha256": "cd" * 32}
    p.update(payload)
    r = {"encoding": "deflate", "path": f"blobs/sha256/{sha}", "size": 160, "sha256": sha,
         "wbits": 12, "chunk": 65536, "chunks": [160], "nonce": "03" * 12}
    r.update(rep or {})
    return {"product": "door-lock", "board": "esp32", "chip_id": 0, "channel": "stable",
            "version": "1.0.0", "sequence": 2, "security_version": 0, "revision": 1,
            "created": 1767225600, "support_end": "2032-06-30",
            "payload": {k: v for k, v in p.items() if v is not None},
            "payloads": [{k: v for k, v in r.items() if v is not None}]}


RAW = {"encoding": "raw", "nonce": None, "key_id": None, "blob_sha256": None}
CASES = {
    "good": ({}, "OK"),
    "odd-size": ({"size": 65537}, "BAD_BODY"),
    "no-nonce": ({"nonce": None}, "BAD_BODY"),
    "short-nonce": ({"nonce": "01" * 11}, "BAD_BODY"),
    "upper-key-id": ({"key_id": "AB" * 8}, "BAD_BODY"),
    "no-blob-sha": ({"blob_sha256": None}, "BAD_BODY"),
    "rep-no-nonce": ({"rep": {"nonce": None}}, "BAD_BODY"),
    "rep-no-chunks": ({"rep": {"chunk": None, "chunks": None}}, "BAD_BODY"),
    "rep-odd-chunk": ({"rep": {"size": 161, "chunks": [161]}}, "BAD_BODY"),
    "raw": (RAW, "OK"),  # a plaintext release: its representations need no nonce
    "raw-odd-chunk": ({**RAW, "rep": {"size": 161, "chunks": [161], "nonce": None}}, "OK"),
    "other": ({"encoding": "aes-256-gcm"}, "OK"),  # refused later: UNSUPPORTED_ENCODING
}


def test_device_and_host_agree_on_the_encrypted_payload_fields(tmp_path: Path) -> None:
    vectors = ROOT / "tests" / "vectors"
    index = json.loads((vectors / "index.json").read_text())
    ring = keys.load_keyring_module(vectors / index["keyring"])
    key = keys.load_private_key(vectors / "keys" / "test-only-ed25519.pem")
    host = {}
    for name, (over, _) in CASES.items():
        data = sign_manifest(json.dumps(_body(**over)).encode(), key)  # type: ignore[arg-type]
        (tmp_path / name).write_bytes(data)
        try:
            body = verify_manifest(data, ring).body
            host[name] = ("OK", body.payload.encoding,
                          [(r.encoding, r.nonce) for r in body.payloads])
        except ManifestError as e:
            host[name] = (e.reason, None, None)
    (tmp_path / "parse.py").write_text(PARSE)
    r = run_micropython([str(tmp_path / "parse.py")], path=[FIRMWARE_DIR, vectors],
                        cwd=tmp_path, input_data="\n".join(CASES).encode(), timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    device = {line.split(" ", 1)[0]: line.split(" ", 1)[1]
              for line in r.stdout.decode().splitlines()}
    for name, (_, want) in CASES.items():
        assert device[name].split()[0] == host[name][0] == want, (name, device[name], host[name])
    rep = [("deflate", "03" * 12)]
    assert device["good"] == f"OK aes-256-cbc ('{'01' * 12}', '{'02' * 8}') {rep}"
    assert host["good"] == ("OK", "aes-256-cbc", rep)
    assert device["raw"] == "OK raw None [('deflate', None)]"
    assert host["raw"] == ("OK", "raw", [("deflate", None)])


def test_sim_flash_provisions_the_content_key_file(tmp_path: Path, monkeypatch, capsys) -> None:
    # `otakit key content` then `otakit sim flash --content-key`: the board's filesystem holds
    # the key file as the host wrote it, which is what ota.decrypt reads
    monkeypatch.chdir(tmp_path)
    assert main(["keygen", "--alg", "ed25519", "--out", ".", "--name", "k",
                 "--insecure-no-passphrase"]) == 0
    assert main(["key", "export", "--micropython", "--out", "ota_keys.py", "k.pub.pem"]) == 0
    assert main(["key", "content", "product.key"]) == 0
    (tmp_path / "app.bin").write_bytes(OLD)
    capsys.readouterr()
    assert main(["sim", "flash", "--app", "app.bin", "--out", "flash.img", "--keyring",
                 "ota_keys.py", "--url", "http://127.0.0.1:9", "--content-key",
                 "product.key"]) == 0
    assert "provisioned ota_content.key" in capsys.readouterr().out
    show = tmp_path / "show.py"
    show.write_text("import json\nprint('KEY', repr(open('ota_content.key').read()))\n"
                    "print('CFG', sorted(json.load(open('ota_config.json'))))\n")
    r = run(tmp_path / "flash.img", script=show, app_dir=firmware_dir(tmp_path / "flash.img"),
            max_boots=1)
    assert f"KEY {(tmp_path / 'product.key').read_text()!r}" in r.log, r.log
    assert "content_key" not in r.log.split("CFG", 1)[1]  # not left in ota_config.json


# An encrypted deflate install's smallest heap is ~86 KB (1 KB steps, an idle machine; the same
# representation in the clear: ~82 KB): ota.decrypt and its AES context on top. The gate allows
# 4 KB more.
ENCRYPTED_DEFLATE_HEAP = "90K"


def test_encrypted_deflate_install_completes_in_90_kb_of_heap(tmp_path: Path) -> None:
    with Lab(tmp_path / "lab") as lab:
        lab.flash(BASE, content_key=key_text(KEY))
        pub = lab.publish(REBUILT, "1.1.0", 2, encrypt_key=KEY, deflate=True)
        result = lab.install_once(ENCRYPTED_DEFLATE_HEAP)
        assert "INSTALLED" in result.log, result.log[-3000:]
        (rep,) = pub.body.payloads
        assert [p.rsplit("/", 1)[1] for _, p, _ in blob_requests(lab)] == [rep.sha256]


def test_an_encrypted_release_installs_offline_from_a_bundle(lab: Lab, tmp_path: Path) -> None:
    # `otakit bundle` carries the ciphertext as the server holds it; the device decrypts it
    # from the file as it would from the network, and asks the server for nothing
    from otakit.bundle import make_bundle  # noqa: PLC0415
    from otakit.sim.lab import PRODUCT  # noqa: PLC0415

    lab.publish(NEW, "1.1.0", 2, encrypt_key=KEY)
    info = make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel, tmp_path / "enc.otab")
    assert info.path.read_bytes().find(NEW[0x20:0x20 + 48]) < 0  # no plaintext in the file
    script = tmp_path / "offline.py"
    script.write_text(
        "import json, ota\ncfg = json.load(open('ota_config.json'))\n"
        "agent = ota.Agent(ota.Config(cfg['url'], cfg['product'], cfg['board']))\n"
        f"print('INSTALLED' if agent.install_file_sync({str(info.path)!r}) else "
        "'FAILED ' + json.dumps(agent.status()))\n")
    before = len(lab.requests())
    result = lab.boot(script=script, heapsize=HEAP, max_boots=1)
    assert "INSTALLED" in result.log, result.log[-2000:]
    assert len(lab.requests()) == before  # offline: not even the manifest was fetched
    assert slot_bytes(lab, "ota_1", len(NEW)) == NEW  # decrypted into the slot
