"""Offline install from a bundle file (`otakit bundle`, `agent.install_file`, docs/format.md §8).

One `Lab` per module (keys, repository, a simulated ESP32 flashed with 1.0.0; the flash image is
restored before each test): the device installs bundle files from a path the unix port sees, as
from an SD card, with the server never asked for anything. Judged by what a user sees: which
image boots, the otadata entries, the reason code the agent reports, the agent's NVS state.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from otakit import deploy as dev_deploy
from otakit.appimage import make_app_image
from otakit.bundle import Header, make_bundle
from otakit.cli import main
from otakit.errors import OtakitError
from otakit.keys import ED25519, generate_key
from otakit.manifest import parse_unverified
from otakit.sim.inspect import read_state
from otakit.sim.lab import PRODUCT, Lab
from otakit.sim.campaign import SCENARIOS, Bench, golden
from otakit.sim.oracle import vfs_files
from otakit.sim.runner import RunResult
from scenario import HEAP, manifest_by_hand, otadata

SIZE = 96 * 1024

# Confirm at boot; then install each bundle named in $BUNDLES (","-separated) in turn, printing the
# agent's status after each; reset after an install unless $NO_RESET is set.
SCRIPT = """\
import json, machine, os, ota
outcome, detail = ota.boot(checks=(), timeout_ms=5000)
print("BOOT " + outcome)
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"]))
for path in os.getenv("BUNDLES").split(","):
    installed = agent.install_file_sync(path)
    print("STATUS " + json.dumps(agent.status()))
    if installed and not os.getenv("NO_RESET"):
        machine.reset()
"""

INSTALL_ONCE = """\
import ota, json
cfg = json.load(open("ota_config.json"))
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"]))
print("INSTALLED" if agent.install_file_sync(%r) else "FAILED " + json.dumps(agent.status()))
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("bundle")
    with Lab(work / "lab") as lab:
        (lab.work / "step.py").write_text(SCRIPT)
        lab.flash(make_app_image("1.0.0", size=SIZE), origin=(2, 1))
        shutil.copyfile(lab.flash_path, work / "base.img")
        yield lab, work / "base.img"


@pytest.fixture
def lab(base: tuple[Lab, Path], tmp_path: Path) -> Lab:
    the_lab, image = base
    shutil.copyfile(image, the_lab.flash_path)
    shutil.rmtree(the_lab.repo.root / PRODUCT, ignore_errors=True)  # a new channel each test
    the_lab.bundles = tmp_path  # type: ignore[attr-defined]
    return the_lab


def run(lab: Lab, *bundles: Path, env: dict[str, str] | None = None, **kw: object) -> RunResult:
    before = len(lab.requests())
    env = {"BUNDLES": ",".join(str(b) for b in bundles), **(env or {})}
    kw.setdefault("heapsize", HEAP)
    result = lab.boot(script=lab.work / "step.py", env=env, **kw)  # type: ignore[arg-type]
    assert len(lab.requests()) == before, "an offline install asked the server"
    return result


def statuses(result: RunResult) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"^STATUS (.*)$", result.log, re.M)]


def bundle_of(lab: Lab, name: str, manifest: bytes, payload: bytes, keyring: bytes = b"",
              sha: bytes | None = None) -> Path:
    """A bundle file from parts (what `otakit bundle` refuses to make from a repository)."""
    h = Header(len(keyring), len(manifest), len(payload), sha or hashlib.sha256(payload).digest())
    path = lab.bundles / name  # type: ignore[attr-defined]
    path.write_bytes(h.pack() + keyring + manifest + payload)
    return path


def published(lab: Lab, version: str, seq: int, **kw: object) -> Path:
    kw.setdefault("security_version", 1)  # the firmware's own floor (ota_origin 2, 1)
    lab.publish(make_app_image(version, size=SIZE), version, seq, **kw)
    return make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel,
                       lab.bundles / f"{version}.otab").path  # type: ignore[attr-defined]


def test_bundle_installs_and_boots_after_its_trial(lab: Lab) -> None:
    path = published(lab, "1.1.0", 3, security_version=2)
    assert path.read_bytes()[:4] == b"OTAB"
    result = run(lab, path)
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
    assert "BOOT confirmed" in result.log
    assert otadata(lab) == [(1, "VALID"), (2, "VALID")]
    nvs = lab.nvs()
    assert nvs["seq"] == 3 and nvs["floor"] == 2
    # installed again: the same release, nothing to do
    assert [s["state"] for s in statuses(result)] == ["installed", "up_to_date"]


def test_deflate_bundle_installs(lab: Lab) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 3, deflate=True,
                security_version=1)
    info = make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel,
                       lab.bundles / "d.otab", encoding="deflate")  # type: ignore[attr-defined]
    assert info.header.payload_len < SIZE
    result = run(lab, info.path)
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log


def test_bad_bundles_are_refused_and_the_device_keeps_its_image(lab: Lab) -> None:
    image = make_app_image("1.1.0", size=SIZE)
    good = published(lab, "1.1.0", 3)
    data = good.read_bytes()
    cases: list[tuple[Path, str]] = []

    def case(name: str, content: bytes, reason: str) -> None:
        p = lab.bundles / name  # type: ignore[attr-defined]
        p.write_bytes(content)
        cases.append((p, reason))

    tampered = bytearray(data)
    tampered[-SIZE // 2] ^= 1
    case("tampered", bytes(tampered), "HASH_MISMATCH")
    def signed(name: str, reason: str, **fields: object) -> None:
        fields = {"sequence": 3, "security_version": 1, **fields}
        cases.append((bundle_of(lab, name, manifest_by_hand(lab, image, **fields), image),
                      reason))

    signed("board", "WRONG_BOARD", board="esp32-8mb")
    signed("old", "ROLLBACK", sequence=1)  # below the firmware's own release (ota_origin 2, 1)
    signed("floor", "SECURITY_FLOOR", security_version=0)
    signed("expired", "EXPIRED", expires=1750000000)
    signed("channel", "WRONG_CHANNEL", channel="beta")
    cases.append((bundle_of(lab, "other", manifest_by_hand(lab, image, sequence=3,
                                                          security_version=1), image,
                            sha=bytes(32)), "BAD_BUNDLE"))  # not the signed payload's digest
    case("truncated", data[:-1000], "SHORT_READ")
    case("header-only", data[:20], "SHORT_READ")
    absurd = bytearray(data)
    struct.pack_into("<H", absurd, 8, 0xFFFF)  # the manifest length
    case("absurd", bytes(absurd), "TOO_LARGE")
    case("magic", b"OTAX" + data[4:], "BAD_BUNDLE")
    case("trailing", data + b"\0", "BAD_BUNDLE")
    cases.append((lab.bundles / "missing", "BAD_BUNDLE"))  # type: ignore[attr-defined]
    result = run(lab, *(p for p, _ in cases))
    got = [s["reason"] for s in statuses(result)]
    assert got == [r for _, r in cases], result.log
    assert len(result.boots) == 1 and result.last.version == "1.0.0"
    assert otadata(lab) == [(1, "VALID")] and lab.state().next_boot == "ota_0"
    assert "t_seq" not in lab.nvs()
    # and installs a good one afterwards (a release signed after the refused ones' revisions)
    newer = make_app_image("1.2.0", size=SIZE)
    result = run(lab, bundle_of(lab, "newer", manifest_by_hand(
        lab, newer, version="1.2.0", sequence=4, security_version=1), newer))
    assert [b.version for b in result.boots] == ["1.0.0", "1.2.0"], result.log


def test_a_1_mb_bundle_installs_in_the_network_installs_heap_gate(lab: Lab) -> None:
    # tests/device/test_agent.py's gate for a whole network update (62 KB); the bundle's check
    # and install load ota.bundle and ota.filebody instead of the HTTP client. Flashed as that
    # test's board is (without ota_origin)
    lab.flash(make_app_image("1.0.0", size=SIZE))
    lab.publish(make_app_image("1.1.0", size=1_000_000), "1.1.0", 3, security_version=1)
    path = make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel,
                       lab.bundles / "big.otab").path  # type: ignore[attr-defined]
    script = lab.work / "install_once.py"  # as Lab.install_once's: no ota.boot(), no loop
    script.write_text(INSTALL_ONCE % str(path))
    result = lab.boot(script=script, heapsize="62K", max_boots=1, timeout=900)
    assert "INSTALLED" in result.log, result.log[-2000:]
    assert lab.state().next_boot == "ota_1"


def test_encoded_bundles_the_device_cannot_take_are_refused(lab: Lab) -> None:
    # a delta from a base this board does not run, and a deflate payload altered in the file
    other = make_app_image("0.9.0", size=SIZE, seed="other")
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 3, deflate=True,
                delta_bases=(other,), security_version=1)
    where: Path = lab.bundles  # type: ignore[attr-defined]
    delta = make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel, where / "delta.otab",
                        encoding="delta").path
    deflate = make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel, where / "deflate.otab",
                          encoding="deflate").path
    data = bytearray(deflate.read_bytes())
    data[-2000] ^= 0x55
    deflate.write_bytes(bytes(data))
    result = run(lab, delta, deflate)
    assert [s["reason"] for s in statuses(result)] == ["BAD_BUNDLE", "HASH_MISMATCH"], result.log
    assert "cannot use the bundle's delta payload" in statuses(result)[0]["detail"]
    assert len(result.boots) == 1 and lab.state().next_boot == "ota_0"


def test_an_older_revision_is_refused_after_a_newer_one(lab: Lab) -> None:
    first = published(lab, "1.1.0", 3)
    newer = published(lab, "1.2.0", 4)
    assert [b.version for b in run(lab, newer).boots] == ["1.0.0", "1.2.0"]
    result = run(lab, first)
    assert statuses(result)[-1]["reason"] == "OLD_REVISION"
    assert result.last.version == "1.2.0"


def test_a_cut_install_resumes_when_the_bundle_is_installed_again(lab: Lab) -> None:
    path = published(lab, "1.1.0", 3)
    golden = run(lab, path, env={"NO_RESET": "1"}, max_boots=1)
    assert statuses(golden)[-1]["state"] == "installed"
    ops = golden.ops
    shutil.copyfile(lab.work.parent / "base.img", lab.flash_path)
    cut = run(lab, path, cut_at=[ops * 2 // 3], restart_after_cut=False)
    assert cut.ended == "power_cut" and lab.state().next_boot == "ota_0"
    result = run(lab, path)
    first = statuses(result)[0]
    assert first["state"] == "installed" and first["resumed_from"] > 0, result.log
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"]


def test_a_cut_deflate_install_resumes_from_its_last_chunk(lab: Lab) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 3, deflate=True,
                security_version=1)
    where: Path = lab.bundles  # type: ignore[attr-defined]
    path = make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel, where / "d.otab",
                       encoding="deflate").path
    once = {"env": {"NO_RESET": "1"}, "max_boots": 1}
    golden = run(lab, path, **once)  # type: ignore[arg-type]
    assert statuses(golden)[-1]["state"] == "installed"
    shutil.copyfile(lab.work.parent / "base.img", lab.flash_path)
    run(lab, path, cut_at=[golden.ops * 3 // 4], restart_after_cut=False)
    again = run(lab, path, **once)  # type: ignore[arg-type]
    assert statuses(again)[-1]["state"] == "installed", again.log
    assert again.ops < golden.ops * 2 // 3  # the chunk already in flash is not written again
    assert lab.state().next_boot == "ota_1"


def test_a_bundle_carries_the_keyring_for_firmware_with_roots(tmp_path: Path) -> None:
    root = generate_key(ED25519)
    with Lab(tmp_path / "lab", alg=ED25519, roots=[root]) as lab:
        (lab.work / "step.py").write_text(SCRIPT)
        lab.flash(make_app_image("1.0.0", size=SIZE), origin=(2, 1))
        lab.bundles = tmp_path  # type: ignore[attr-defined]
        key = generate_key(ED25519)  # trusted only through the keyring document
        old_keyring = lab.sign_keyring([key], 1, publish=False)
        lab.sign_keyring([key], 2)
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 3, security_version=1, key=key)
        bare = make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel, tmp_path / "a.otab",
                           keyring=False).path
        full = make_bundle(lab.repo, PRODUCT, lab.board.name, lab.channel,
                           tmp_path / "b.otab").path
        result = run(lab, bare, full)
        got = [(s["state"], s["reason"]) for s in statuses(result)]
        assert got[:2] == [("failed", "KEYRING_REQUIRED"), ("installed", None)], result.log
        assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"]
        assert lab.state().nvs["otakit"]["kr_v"][:4] == (2).to_bytes(4, "little")
        # a later bundle with an older keyring document: the device keeps the one it holds
        newer = make_app_image("1.2.0", size=SIZE)
        lab.publish(newer, "1.2.0", 4, security_version=1, key=key)
        stale = bundle_of(lab, "stale", lab.manifest_path.read_bytes(), newer, old_keyring)
        result = run(lab, stale)
        assert [b.version for b in result.boots] == ["1.1.0", "1.2.0"], result.log


# --- otakit bundle, otakit sim install, otakit deploy --bundle (the command line) -----------
@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keys, a repository with 1.1.0 (raw and deflate), a simulated board flashed with 1.0.0 and
    the agent frozen in, provisioned for the (absent) server."""
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", "pw")
    monkeypatch.chdir(tmp_path)
    assert main(["keygen", "--alg", "ed25519", "--out", "keys"]) == 0
    assert main(["key", "export", "--micropython", "keys/release.pub.pem",
                 "--out", "ota_keys.py"]) == 0
    Path("old.bin").write_bytes(make_app_image("1.0.0", size=SIZE))
    Path("new.bin").write_bytes(make_app_image("1.1.0", size=SIZE))
    assert main(["sim", "flash", "--app", "old.bin", "--out", "flash.img", "--keyring",
                 "ota_keys.py", "--url", "http://127.0.0.1:9", "--product", PRODUCT]) == 0
    assert main([*RELEASE, "--version", "1.1.0", "--sequence", "2", "--encoding", "deflate",
                 "new.bin"]) == 0
    return tmp_path


RELEASE = ["release", "--key", "keys/release.pem", "--repo", "repo", "--product", PRODUCT,
           "--board", "esp32", "--support-end", "2031-12-31"]
BUNDLE = ["bundle", "--repo", "repo", "--product", PRODUCT, "--board", "esp32"]


def test_sim_install_of_a_bundle_installs_and_boots_it(project: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    assert main([*BUNDLE, "--encoding", "deflate", "--out", "b.otab"]) == 0
    capsys.readouterr()
    assert main(["sim", "install", "flash.img", "b.otab"]) == 0
    out = capsys.readouterr().out
    assert "installed doorlock/esp32/stable 1.1.0" in out and "the board ran 1.1.0" in out
    st = read_state("flash.img")
    assert st.next_boot == "ota_1" and st.nvs["otakit"]["seq"] == 2  # confirmed by the app
    # the file was removed from the board's filesystem after the install
    assert vfs_files(Path("flash.img"), ["bundle.otab"]) == {"bundle.otab": None}
    # again: up to date, nothing installed
    assert main(["sim", "install", "flash.img", "b.otab"]) == 0
    assert "nothing installed: up_to_date" in capsys.readouterr().out


def test_bundle_refusals_on_the_simulated_board_are_one_line(project: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert main([*BUNDLE, "--out", "b.otab"]) == 0
    data = Path("b.otab").read_bytes()
    Path("cut.otab").write_bytes(data[:-100])
    capsys.readouterr()
    assert main(["sim", "install", "flash.img", "cut.otab"]) == 1
    assert capsys.readouterr().err.startswith("otakit: SHORT_READ: ")  # before anything is sent
    tampered = bytearray(data)
    tampered[-1000] ^= 1
    Path("bad.otab").write_bytes(bytes(tampered))
    assert main(["sim", "install", "flash.img", "bad.otab"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otakit: HASH_MISMATCH: the device refused the bundle")
    assert len(err.strip().splitlines()) == 1
    # a bundle bigger than the board's filesystem (960 KB) is refused before the copy
    Path("big.bin").write_bytes(make_app_image("1.2.0", size=1_000_000))
    assert main([*RELEASE, "--version", "1.2.0", "--sequence", "3", "big.bin"]) == 0
    assert main([*BUNDLE, "--out", "big.otab"]) == 0
    capsys.readouterr()
    assert main(["sim", "install", "flash.img", "big.otab"]) == 1
    assert capsys.readouterr().err.startswith("otakit: NO_SPACE: ")
    assert read_state("flash.img").next_boot == "ota_0"
    assert vfs_files(Path("flash.img"), ["bundle.otab"]) == {"bundle.otab": None}


def test_bundle_command_refusals(project: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([*BUNDLE, "--encoding", "delta"]) == 1
    assert capsys.readouterr().err.startswith("otakit: BAD_ARGUMENT: sequence 2 has no delta")
    assert main([*BUNDLE, "--channel", "beta"]) == 1
    assert capsys.readouterr().err.startswith("otakit: NO_REPO: ")
    body = parse_unverified(Path("repo/doorlock/esp32/stable/manifest").read_bytes()).body
    Path("repo", body.payload.path).write_bytes(b"x")
    assert main(BUNDLE) == 1
    assert capsys.readouterr().err.startswith("otakit: HASH_MISMATCH: ")
    assert not list(Path().glob("*.otab*"))  # nothing written


def test_usb_deploy_copies_installs_and_resets(project: Path) -> None:
    # mpremote itself is replaced (no board here): the commands it gets, and what the host
    # makes of the board's answer
    assert main([*BUNDLE, "--out", "b.otab"]) == 0
    bundle = dev_deploy.check_bundle(Path("b.otab"))
    calls: list[list[str]] = []

    def board(answer: str):
        def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
            calls.append(cmd[3:])
            return subprocess.CompletedProcess(cmd, 0, answer.encode())
        return run

    ok = 'OTAKIT-BUNDLE {"installed": true, "status": {"state": "installed"}}\n'
    assert dev_deploy.deploy_bundle("/dev/ttyUSB0", bundle, run=board(ok))["installed"]
    argv = calls[0]
    assert argv[:3] == ["connect", "/dev/ttyUSB0", "exec"] and "statvfs" in argv[3]
    assert argv[4:8] == ["+", "cp", "b.otab", ":bundle.otab"]
    assert argv[8:10] == ["+", "exec"] and 'install_file_sync("bundle.otab")' in argv[10]
    assert calls[1] == ["connect", "/dev/ttyUSB0", "reset"]
    calls.clear()
    refused = ('OTAKIT-BUNDLE {"installed": false, "status": {"state": "failed", '
               '"reason": "WRONG_BOARD", "detail": "esp32s3 (chip id 9)"}}\n')
    with pytest.raises(OtakitError) as e:
        dev_deploy.deploy_bundle("/dev/ttyUSB0", bundle, run=board(refused))
    assert e.value.reason == "WRONG_BOARD" and len(calls) == 1  # no reset
    with pytest.raises(OtakitError) as e:
        dev_deploy.deploy_bundle("p", bundle, run=board("OTAKIT-NO-SPACE 4096\n"))
    assert e.value.reason == "NO_SPACE"


# --- the power-cut campaign's bundle scenario (otakit.sim.scenarios) -------------------------
def test_bundle_install_survives_power_cuts(tmp_path: Path) -> None:
    # The golden run and a cut in each phase (the payload's write, the install records,
    # set_boot, the trial), judged by the campaign's oracle; after each cut the same bundle is
    # installed again and resumes. `otakit sim campaign --scenario bundle` cuts a few of every
    # kind in every phase, `make campaign` every op.
    bench = Bench(tmp_path, SCENARIOS["bundle"])
    try:
        ops, downloaded, outcome = golden(bench)
        assert outcome.survived and ops > downloaded > 0
        phases = bench.goldens[0].phases
        cuts = [phases.index("download") + 1 + phases.count("download") // 2, downloaded,
                downloaded + 1, phases.index("trial") + 1, ops]
        for k in cuts:
            result, _ = bench.run((k,))
            assert result.survived, (k, result.problems)
        double, _ = bench.run((downloaded // 2, downloaded // 2 + 12))  # and in its recovery
        assert double.survived, double.problems
    finally:
        bench.close()
