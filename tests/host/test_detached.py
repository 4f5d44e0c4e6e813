"""Detached signing (`otakit.detached`, docs/release.md §3.2): --digest-out writes the bytes to
sign, the real `openssl` signs them with the encrypted private key using the commands
docs/release.md shows, --signature-in publishes; the host verifier and the device's manifest
parser (MicroPython unix port) accept the result. Also: a wrong signature, a stale or replayed
digest and a second completion write nothing; `--risk` must be a sentence.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from otakit import keys
from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.keyring import verify_keyring
from otakit.manifest import DOMAIN, verify_manifest
from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR, ROOT
from otakit.repo import Repository

PASSPHRASE = "detached pw"
ALGS = {"ed25519": "ed25519", "rsa": "rsa3072-pss"}
WHERE = ["--repo", "repo", "--product", "door", "--board", "esp32"]
MANIFEST = Path("repo/door/esp32/stable/manifest")

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _doc_commands() -> dict[str, str]:
    """The `openssl pkeyutl -sign` commands docs/release.md shows, by algorithm."""
    text = (ROOT / "docs" / "release.md").read_text().replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        line = " ".join(line.split())
        if line.startswith("openssl pkeyutl -sign"):
            found["rsa" if "rsa_padding_mode:pss" in line else "ed25519"] = line
    assert set(found) == {"ed25519", "rsa"}, found
    return found


DOC_COMMANDS = _doc_commands()


def openssl_sign(alg: str, key: Path, digest: str, sig: str) -> None:
    """Run docs/release.md's command for ``alg`` with its file names replaced."""
    cmd = DOC_COMMANDS[alg]
    for doc_name, ours in (("keys/release.pem", str(key)), ("release.digest", digest),
                           ("release.sig", sig)):
        assert doc_name in cmd
        cmd = cmd.replace(doc_name, ours)
    r = subprocess.run(shlex.split(cmd), capture_output=True, check=False)
    assert r.returncode == 0, r.stderr.decode()


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An encrypted key pair per algorithm (release-ed25519.pem, release-rsa.pem, ...)."""
    d = tmp_path_factory.mktemp("keys")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OTAKIT_KEY_PASSPHRASE", PASSPHRASE)
        for name, alg in ALGS.items():
            assert main(["keygen", "--alg", alg, "--out", str(d), "--name",
                         f"release-{name}"]) == 0
    assert b"ENCRYPTED" in (d / "release-rsa.pem").read_bytes()
    return d


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keydir: Path) -> Iterator[Path]:
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.chdir(tmp_path)
    for v in ("1.1.0", "1.2.0", "1.3.0"):
        Path(f"{v}.bin").write_bytes(make_app_image(v))
    yield tmp_path


def _pub(keydir: Path, alg: str) -> str:
    return str(keydir / f"release-{alg}.pub.pem")


def _release(keydir: Path, alg: str, version: str, seq: int, *extra: str) -> int:
    return main(["release", "--key", _pub(keydir, alg), *WHERE, "--version", version,
                 "--sequence", str(seq), "--support-end", "2033-12-31", *extra,
                 f"{version}.bin"])


def _complete(keydir: Path, alg: str, sig: str, *extra: str) -> int:
    return main(["release", "--key", _pub(keydir, alg), *WHERE, "--signature-in", sig, *extra])


def _repo_files() -> set[str]:
    return {str(p) for p in Path("repo").rglob("*")
            if p.is_file() and ".otakit" not in p.parts}


def _device_parse(tmp_path: Path, pubs: list[str], manifests: dict[str, bytes]) -> list[str]:
    """The device's ota.manifest.parse on each manifest, under a keyring of ``pubs``."""
    assert main(["key", "export", "--micropython", *pubs, "--out",
                 str(tmp_path / "ota_keys.py")]) == 0
    for name, data in manifests.items():
        (tmp_path / name).write_bytes(data)
    script = tmp_path / "parse.py"
    script.write_text(
        "from ota_keys import KEYS\nfrom ota.manifest import parse\n"
        "from ota.errors import ManifestError\n"
        f"for name in {sorted(manifests)!r}:\n"
        "    try:\n"
        f"        m = parse(open({str(tmp_path)!r} + '/' + name, 'rb').read(), KEYS)\n"
        "        print(name, 'OK', m.sequence, m.revision)\n"
        "    except ManifestError as e:\n"
        "        print(name, e.reason)\n")
    r = run_micropython([str(script)], path=[FIRMWARE_DIR, tmp_path], timeout=300)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    return r.stdout.decode().splitlines()


def test_release_signed_by_openssl_for_both_algorithms(work: Path, keydir: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    made = {}
    for alg in ALGS:
        # one channel per algorithm: same repository, same product and board
        chan = ["--channel", f"c-{alg}"]
        published = _repo_files()
        assert _release(keydir, alg, "1.1.0", 1, *chan, "--digest-out", f"{alg}.digest") == 0
        out = capsys.readouterr().out
        assert "prepared door/esp32/c-" in out and "pending: revision 1 is not published" in out
        # exactly the bytes to sign: the manifest digest D over the pending header + body
        state = json.loads(Path(f"repo/.otakit/pending/door/esp32/c-{alg}/pending.json")
                           .read_text())
        signed = Path(f"repo/.otakit/pending/door/esp32/c-{alg}/signed.bin").read_bytes()
        assert Path(f"{alg}.digest").read_bytes() == hashlib.sha256(DOMAIN + signed).digest()
        assert state["revision"] == 1 and len(state["blobs"]) == 1
        assert _repo_files() == published  # nothing published yet
        openssl_sign(alg, keydir / f"release-{alg}.pem", f"{alg}.digest", f"{alg}.sig")
        assert _complete(keydir, alg, f"{alg}.sig", *chan) == 0
        assert "detached signature by" in capsys.readouterr().out
        data = Path(f"repo/door/esp32/c-{alg}/manifest").read_bytes()
        body = verify_manifest(data, {k.key_id: k for k in
                                      [keys.load_key(_pub(keydir, alg))]}).body
        assert (body.version, body.sequence, body.revision) == ("1.1.0", 1, 1)
        made[f"{alg}.manifest"] = data
    assert main(["verify", "--repo", "repo", "--key", _pub(keydir, "ed25519"),
                 "--key", _pub(keydir, "rsa")]) == 0
    assert "ok: 2 manifest(s), 1 payload(s) verified" in capsys.readouterr().out
    assert not list(Path("repo/.otakit/pending").rglob("pending.json"))
    lines = _device_parse(work, [_pub(keydir, a) for a in ALGS], made)
    assert lines == ["ed25519.manifest OK 1 1", "rsa.manifest OK 1 1"]


def test_a_wrong_signature_writes_nothing(work: Path, keydir: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    assert _release(keydir, "ed25519", "1.1.0", 1, "--digest-out", "d") == 0
    openssl_sign("ed25519", keydir / "release-ed25519.pem", "d", "good.sig")
    bad = bytearray(Path("good.sig").read_bytes())
    bad[5] ^= 1
    Path("bad.sig").write_bytes(bad)
    Path("b64.sig").write_bytes(__import__("base64").b64encode(bytes(bad)))
    capsys.readouterr()
    for sig, reason in (("bad.sig", "BAD_SIGNATURE"), ("b64.sig", "BAD_SIGNATURE")):
        assert _complete(keydir, "ed25519", sig) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"otakit: {reason}: ") and err.count("\n") == 1, err
        assert _repo_files() == set()
    # the release key of the other algorithm cannot complete it either
    assert main(["release", "--key", _pub(keydir, "rsa"), *WHERE, "--signature-in",
                 "good.sig"]) == 1
    assert capsys.readouterr().err.startswith("otakit: UNKNOWN_KEY: ")
    assert _repo_files() == set()
    # the pending release is intact: the right signature still completes it, once
    assert _complete(keydir, "ed25519", "good.sig") == 0
    assert _complete(keydir, "ed25519", "good.sig") == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("otakit: NO_PENDING: ")


def test_stale_and_replayed_digests_are_refused(work: Path, keydir: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    key = keydir / "release-ed25519.pem"
    assert main(["release", "--key", str(key), *WHERE, "--version", "1.1.0", "--sequence", "1",
                 "--support-end", "2033-12-31", "1.1.0.bin"]) == 0
    # an old digest: prepared, signed, then replaced by a new preparation
    assert _release(keydir, "ed25519", "1.2.0", 2, "--digest-out", "old.digest") == 0
    openssl_sign("ed25519", key, "old.digest", "old.sig")
    assert _release(keydir, "ed25519", "1.2.0", 2, "--digest-out", "new.digest") == 0
    capsys.readouterr()
    assert _complete(keydir, "ed25519", "old.sig") == 1
    assert "otakit: BAD_SIGNATURE: " in capsys.readouterr().err
    # every digest handed out got its own revision: 2 (abandoned), then 3
    state = json.loads(Path("repo/.otakit/pending/door/esp32/stable/pending.json").read_text())
    assert state["revision"] == 3
    # a stale digest: signed, but another release was published meanwhile
    openssl_sign("ed25519", key, "new.digest", "new.sig")
    before = MANIFEST.read_bytes()
    assert main(["refresh", "--key", str(key), *WHERE, "--expires", "120d"]) == 0
    refreshed = MANIFEST.read_bytes()
    assert Repository("repo").current("door", "esp32", "stable").revision == 4  # type: ignore
    capsys.readouterr()
    assert _complete(keydir, "ed25519", "new.sig") == 1
    err = capsys.readouterr().err
    assert err.startswith("otakit: STALE_PENDING: ") and err.count("\n") == 1
    assert MANIFEST.read_bytes() == refreshed != before
    # editing the pending record does not help: the signed revision 3 is below the published 4
    state_file = Path("repo/.otakit/pending/door/esp32/stable/pending.json")
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "base": hashlib.sha256(refreshed).hexdigest()}))
    assert _complete(keydir, "ed25519", "new.sig") == 1
    assert capsys.readouterr().err.startswith("otakit: STALE_PENDING: ")
    assert MANIFEST.read_bytes() == refreshed
    assert not Path("repo/blobs/sha256", hashlib.sha256(Path("1.2.0.bin").read_bytes())
                    .hexdigest()).exists()
    # options given on completion must be the ones that prepared it
    assert _release(keydir, "ed25519", "1.2.0", 2, "--digest-out", "d3") == 0
    openssl_sign("ed25519", key, "d3", "s3")
    capsys.readouterr()
    assert _complete(keydir, "ed25519", "s3", "--sequence", "7") == 1
    assert "otakit: BAD_ARGUMENT: " in capsys.readouterr().err
    assert _complete(keydir, "ed25519", "s3", "--version", "1.2.0", "--sequence", "2") == 0
    assert Repository("repo").current("door", "esp32", "stable").revision == 5  # type: ignore


def test_refresh_and_rollout_resign_detached(work: Path, keydir: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    key = keydir / "release-rsa.pem"
    pub = _pub(keydir, "rsa")
    assert main(["release", "--key", str(key), *WHERE, "--version", "1.1.0", "--sequence", "1",
                 "--support-end", "2033-12-31", "--rollout", "10", "1.1.0.bin"]) == 0
    assert main(["refresh", "--key", pub, *WHERE, "--expires", "120d", "--digest-out", "r.d"]) == 0
    assert main(["rollout", "raise", "--key", pub, *WHERE, "--percent", "50",
                 "--signature-in", "r.d"]) == 1  # a refresh is pending, not a rollout step
    assert "otakit: BAD_ARGUMENT: " in capsys.readouterr().err
    openssl_sign("rsa", key, "r.d", "r.sig")
    assert main(["refresh", "--key", pub, *WHERE, "--signature-in", "r.sig"]) == 0
    assert main(["rollout", "raise", "--key", pub, *WHERE, "--percent", "50",
                 "--digest-out", "raise.d"]) == 0
    assert "pending: revision 3" in capsys.readouterr().out
    current = Repository("repo").current("door", "esp32", "stable")
    assert current is not None and current.rollout is not None
    assert current.rollout["percent"] == 10  # the raise is not published yet
    openssl_sign("rsa", key, "raise.d", "raise.sig")
    assert main(["rollout", "raise", "--key", pub, *WHERE, "--percent", "60",
                 "--signature-in", "raise.sig"]) == 1
    assert "prepared with --percent 50, not 60" in capsys.readouterr().err
    assert main(["rollout", "raise", "--key", pub, *WHERE, "--percent", "50",
                 "--signature-in", "raise.sig"]) == 0
    body = verify_manifest(MANIFEST.read_bytes(), {keys.load_key(pub).key_id:
                                                   keys.load_key(pub)}).body
    assert (body.revision, body.rollout["percent"], body.sequence) == (3, 50, 1)  # type: ignore


def test_keyring_document_signed_by_two_roots_with_openssl(work: Path, keydir: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    roots = {a: _pub(keydir, a) for a in ALGS}
    assert main(["keyring", "sign", "--root", roots["ed25519"], "--root", roots["rsa"],
                 "--key", _pub(keydir, "ed25519"), "--product", "door", "--version", "1",
                 "--repo", "repo", "--digest-out", "kr.d"]) == 0
    assert "pending: sign the 32 bytes in kr.d" in capsys.readouterr().out
    assert not Path("repo/door/keyring").exists()
    for a in ALGS:
        openssl_sign(a, keydir / f"release-{a}.pem", "kr.d", f"kr-{a}.sig")
    swapped = ["--root", roots["ed25519"], "--signature-in", "kr-rsa.sig",
               "--root", roots["rsa"], "--signature-in", "kr-ed25519.sig"]
    base = ["keyring", "sign", "--repo", "repo", "--product", "door"]
    assert main([*base, *swapped]) == 1  # each signature goes with the root of its position
    assert capsys.readouterr().err.startswith("otakit: BAD_SIGNATURE: ")
    assert not Path("repo/door/keyring").exists()
    assert main([*base, "--root", roots["ed25519"], "--root", roots["rsa"],
                 "--signature-in", "kr-ed25519.sig", "--signature-in", "kr-rsa.sig"]) == 0
    ring = {k.key_id: k for k in (keys.load_key(r) for r in roots.values())}
    parsed = verify_keyring(Path("repo/door/keyring").read_bytes(), ring, 2, product="door")
    assert len(parsed.signers) == 2 and parsed.body.version == 1
    assert main([*base, "--root", roots["rsa"], "--signature-in", "kr-rsa.sig"]) == 1
    assert "otakit: NO_PENDING: " in capsys.readouterr().err
    # without a repository the body waits beside --out; --add-to needs no pending state
    assert main(["keyring", "sign", "--root", roots["ed25519"], "--key", _pub(keydir, "rsa"),
                 "--product", "door", "--version", "2", "--out", "kr2",
                 "--digest-out", "kr2.d"]) == 0
    assert Path("kr2.pending/signed.bin").is_file() and not Path("kr2").exists()
    openssl_sign("ed25519", keydir / "release-ed25519.pem", "kr2.d", "kr2-ed.sig")
    assert main(["keyring", "sign", "--root", roots["ed25519"], "--signature-in", "kr2-ed.sig",
                 "--out", "kr2"]) == 0
    assert not Path("kr2.pending").exists()
    assert main(["keyring", "sign", "--root", roots["rsa"], "--add-to", "kr2",
                 "--digest-out", "kr2.add.d"]) == 0
    assert Path("kr2.add.d").read_bytes() == Path("kr2.d").read_bytes()
    openssl_sign("rsa", keydir / "release-rsa.pem", "kr2.add.d", "kr2-rsa.sig")
    assert main(["keyring", "sign", "--root", roots["rsa"], "--signature-in", "kr2-rsa.sig",
                 "--add-to", "kr2", "--out", "kr3"]) == 0
    parsed = verify_keyring(Path("kr3").read_bytes(), ring, 2, product="door")
    assert len(parsed.signers) == 2 and parsed.body.version == 2


@pytest.mark.parametrize("risk, ok", [("x", False), ("remote unlock", False),
                                      ("CVE-2026-0001 BLE", False),
                                      ("someone nearby could unlock the door", True)])
def test_risk_must_be_a_sentence(work: Path, keydir: Path, capsys: pytest.CaptureFixture,
                                 risk: str, ok: bool) -> None:
    rc = main(["release", "--key", str(keydir / "release-ed25519.pem"), *WHERE, "--version",
               "1.1.0", "--sequence", "1", "--support-end", "2033-12-31", "--security",
               "--severity", "high", "--risk", risk, "1.1.0.bin"])
    err = capsys.readouterr().err
    if ok:
        assert rc == 0 and not err
        return
    assert rc == 1 and re.fullmatch(r"otakit: BAD_RISK: .*\n", err), err
    assert not MANIFEST.exists()


UPDATE = """\
import json
import ota
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"]))
print("INSTALLED" if agent.update_sync() else "FAILED " + json.dumps(agent.status()))
"""


def test_a_simulated_board_installs_a_detached_release(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from otakit.keys import ED25519  # noqa: PLC0415
    from otakit.sim.lab import PRODUCT, Lab  # noqa: PLC0415

    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", PASSPHRASE)
    with Lab(tmp_path / "lab", alg=ED25519) as lab:
        (tmp_path / "k.pem").write_bytes(lab.key.private_pem(PASSPHRASE.encode()))
        (tmp_path / "k.pub.pem").write_bytes(lab.key.public_pem())
        (tmp_path / "new.bin").write_bytes(make_app_image("1.1.0", size=64 * 1024, seed="new"))
        lab.flash(make_app_image("1.0.0", size=64 * 1024, seed="old"))
        where = ["--key", str(tmp_path / "k.pub.pem"), "--repo", str(lab.repo.root),
                 "--product", PRODUCT, "--board", lab.board.name, "--channel", lab.channel]
        digest, sig = str(tmp_path / "d"), str(tmp_path / "s")
        assert main(["release", *where, "--version", "1.1.0", "--sequence", "2",
                     "--support-end", "2033-12-31", "--digest-out", digest,
                     str(tmp_path / "new.bin")]) == 0
        openssl_sign("ed25519", tmp_path / "k.pem", digest, sig)
        assert main(["release", *where, "--signature-in", sig]) == 0
        script = tmp_path / "update.py"
        script.write_text(UPDATE)
        r = lab.boot(script=script, max_boots=1, heapsize="128K")
        assert "INSTALLED" in r.log, r.log
