"""Signed revert (docs/format.md §2.6) end to end: `otakit revert` signs it, the simulated board
takes the previous release from its other slot without downloading it, through the normal trial.

One lab per module: the board runs 1.0.0 (sequence 1, its frozen origin) and the agent updated
it to 1.1.0 (sequence 2) in ota_1, confirmed; every test starts from that flash image and
repository (`start`). Judged by what a user sees: the image each boot ran and its slot, the
reason code the agent reports, the installed sequence, and the payload requests the server saw.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.errors import RepoError
from otakit.keys import ED25519, export_keyring, generate_key
from otakit.errors import ManifestError as HostManifestError
from otakit.manifest import sign_manifest, verify_manifest
from otakit.manifest_body import ManifestBody, Payload
from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR
from otakit.repo import Repository
from otakit.revert import make_revert
from otakit.sim.campaign import SCENARIOS, Bench, golden
from otakit.sim.lab import PRODUCT, Lab, revision_of
from scenario import HEAP, blob_requests, manifest_by_hand, prepare, statuses, step

SIZE = 64 * 1024
A = make_app_image("1.0.0", size=SIZE, seed="a")
B = make_app_image("1.1.0", size=SIZE, seed="b")

# STEP (scenario.py) with a health check that fails on the version the config names.
UNHEALTHY_STEP = """\
import esp32, json, machine, ota
cfg = json.load(open("ota_config.json"))
def healthy():
    return esp32.sim_firmware()[1] != cfg.get("unhealthy")
outcome, detail = ota.boot(checks=(healthy,), timeout_ms=5000)
print("BOOT " + outcome)
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"]))
for i in range(cfg.get("checks", 1)):
    installed = agent.update_sync()
    print("STATUS " + json.dumps(agent.status()))
    if installed:
        machine.reset()
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path, int]]:
    work = tmp_path_factory.mktemp("revert")
    with Lab(work / "lab", alg=ED25519) as lab:
        prepare(lab)
        lab.flash(A, origin=(1, 0))  # 1.0.0 is sequence 1: the agent does not download it
        lab.publish(A, "1.0.0", 1, security_version=0)
        lab.publish(B, "1.1.0", 2, security_version=0)
        result = step(lab)
        assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
        assert lab.nvs()["seq"] == 2
        shutil.copyfile(lab.flash_path, work / "base.img")
        shutil.copytree(lab.repo.root, work / "base-repo")
        yield lab, work, lab._revision


@pytest.fixture
def lab(base: tuple[Lab, Path, int]) -> Lab:
    the_lab, work, revision = base
    shutil.copyfile(work / "base.img", the_lab.flash_path)
    shutil.rmtree(the_lab.repo.root)
    shutil.copytree(work / "base-repo", the_lab.repo.root)
    the_lab._revision = revision
    the_lab.provision()  # checks: 1, no unhealthy version
    return the_lab


def where(lab: Lab) -> tuple[str, str, str]:
    return PRODUCT, lab.board.name, lab.channel


def revert(lab: Lab, **kw: object) -> ManifestBody:
    body = make_revert(lab.repo, where(lab), lab.key, **kw)  # type: ignore[arg-type]
    lab._revision = max(lab._revision, body.revision)
    return body


def slot_holds(lab: Lab, label: str, image: bytes) -> bool:
    data = lab.flash_path.read_bytes()
    slot = next(s for s in lab.state().slots if s.label == label)
    return data[slot.offset:slot.offset + len(image)] == image


def test_revert_boots_the_previous_release_from_its_slot_and_confirms(lab: Lab) -> None:
    body = revert(lab)
    assert (body.sequence, body.version, body.extra["action"]) == (1, "1.0.0", "revert")
    assert body.extra["reverted_from"] == 2 and body.revision == 3
    blobs = len(blob_requests(lab))
    lab.provision(checks=2)
    result = step(lab)
    assert [(b.version, b.slot) for b in result.boots] == [("1.1.0", "ota_1"),
                                                          ("1.0.0", "ota_0")], result.log
    assert "BOOT confirmed" in result.log  # a trial, confirmed by ota.boot()
    assert len(blob_requests(lab)) == blobs  # nothing downloaded
    nvs = lab.nvs()
    assert nvs["seq"] == 1 and nvs.get("floor", 0) == 0 and "t_seq" not in nvs
    s = statuses(result)[-1]
    assert (s["state"], s["installed_sequence"], s["revision"]) == ("up_to_date", 1, 3)
    # the next release must go above the sequence reverted from, or devices on it never move
    with pytest.raises(RepoError) as e:
        lab.publish(make_app_image("1.2.0", size=SIZE, seed="c"), "1.2.0", 2)
    assert e.value.reason == "ROLLBACK"


def test_revert_naming_another_image_is_refused(lab: Lab) -> None:
    other = make_app_image("1.0.0", size=SIZE, seed="x")  # not what ota_0 holds
    lab.manifest_path.write_bytes(manifest_by_hand(
        lab, other, version="1.0.0", sequence=1, action="revert"))
    blobs = len(blob_requests(lab))
    result = step(lab)
    assert len(result.boots) == 1 and result.last.version == "1.1.0", result.log
    s = statuses(result)[-1]
    assert (s["state"], s["reason"]) == ("failed", "REVERT_MISMATCH"), s
    assert "ota_0" in s["detail"]
    assert lab.state().next_boot == "ota_1" and lab.nvs()["seq"] == 2
    assert len(blob_requests(lab)) == blobs  # nothing fetched
    assert slot_holds(lab, "ota_0", A)


def test_revert_after_a_failed_download_overwrote_the_slot_is_refused(lab: Lab) -> None:
    c = make_app_image("1.2.0", size=SIZE, seed="c")
    res = lab.publish(c, "1.2.0", 3)
    half = len(c) // 2
    res.payload_path.write_bytes(c[:half] + bytes(len(c) - half))  # the server's is damaged
    result = step(lab)
    assert statuses(result)[-1]["reason"] == "HASH_MISMATCH", result.log
    assert not slot_holds(lab, "ota_0", A)  # the download went into 1.0.0's slot
    res.payload_path.write_bytes(c)
    revert(lab, to_sequence=1)  # from 1.2.0 back to 1.0.0, which this device no longer holds
    blobs = len(blob_requests(lab))
    result = step(lab)
    assert len(result.boots) == 1 and result.last.version == "1.1.0", result.log
    assert statuses(result)[-1]["reason"] == "REVERT_MISMATCH"
    assert lab.state().next_boot == "ota_1" and lab.nvs()["seq"] == 2
    assert len(blob_requests(lab)) == blobs


def test_an_old_revert_replayed_after_a_newer_release_is_refused(lab: Lab) -> None:
    revert(lab)
    old_revert = lab.manifest_path.read_bytes()
    step(lab)
    lab.publish(make_app_image("1.2.0", size=SIZE, seed="c"), "1.2.0", 3)
    result = step(lab)
    assert result.last.version == "1.2.0" and lab.nvs()["seq"] == 3, result.log
    lab.manifest_path.write_bytes(old_revert)  # a mirror replays the revert
    result = step(lab)
    assert len(result.boots) == 1 and result.last.version == "1.2.0", result.log
    assert statuses(result)[-1]["reason"] == "OLD_REVISION"
    assert lab.nvs()["seq"] == 3


def test_a_revert_below_a_floor_raised_since_is_refused(lab: Lab) -> None:
    lab.publish(make_app_image("1.2.0", size=SIZE, seed="c"), "1.2.0", 3, security_version=1)
    result = step(lab)
    assert result.last.version == "1.2.0" and lab.nvs()["floor"] == 1, result.log
    with pytest.raises(RepoError) as e:  # the host will not sign it ...
        revert(lab)
    assert e.value.reason == "SECURITY_FLOOR"
    rev = revision_of(lab.repo.current(*where(lab)))
    # ... and the device refuses one signed by hand (1.1.0 is in the other slot, hash and all)
    lab.manifest_path.write_bytes(manifest_by_hand(
        lab, B, version="1.1.0", sequence=2, security_version=0, action="revert"))
    result = step(lab)
    assert len(result.boots) == 1 and result.last.version == "1.2.0", result.log
    s = statuses(result)[-1]
    assert s["reason"] == "SECURITY_FLOOR" and s["revision"] == rev  # not accepted
    assert lab.nvs()["seq"] == 3


def test_a_revert_whose_health_check_fails_rolls_back_and_is_not_retried(lab: Lab) -> None:
    revert(lab)
    script = lab.work / "unhealthy.py"
    script.write_text(UNHEALTHY_STEP)
    lab.provision(unhealthy="1.0.0")
    result = lab.boot(script=script, heapsize=HEAP)
    assert [b.version for b in result.boots] == ["1.1.0", "1.0.0", "1.1.0"], result.log
    assert result.boots[1].ended == "reset"  # ota.boot() reset without confirming
    assert "BOOT rolled_back" in result.log
    s = statuses(result)[-1]
    assert (s["reason"], s["bad_sequences"], s["installed_sequence"]) == ("KNOWN_BAD", [1], 2)
    assert lab.state().next_boot == "ota_1"
    again = lab.boot(script=script, heapsize=HEAP)  # the same revert does not loop
    assert len(again.boots) == 1 and statuses(again)[-1]["reason"] == "KNOWN_BAD"


def test_a_device_behind_the_revert_downloads_it(lab: Lab) -> None:
    # a board still on its factory image (sequence 0) takes the revert as an ordinary release
    revert(lab)
    lab.flash(make_app_image("0.9.0", size=SIZE, seed="z"))
    result = step(lab)
    assert [b.version for b in result.boots] == ["0.9.0", "1.0.0"], result.log
    assert blob_requests(lab) and lab.nvs()["seq"] == 1


@pytest.mark.slow
def test_power_cuts_during_a_revert_leave_a_signed_release_and_finish_it(tmp_path: Path) -> None:
    # The campaign's "revert" scenario (`make campaign` cuts at every op): here its golden run
    # and a cut at every otadata write (set_boot, the bootloader's trial, mark-valid) and at the
    # middle NVS record of the install (arm_trial) and of the trial (confirm: the sequence goes
    # down), each judged by the campaign's oracle.
    bench = Bench(tmp_path / "lane", SCENARIOS["revert"])
    try:
        ops, downloaded, outcome = golden(bench)
        assert downloaded == 0 and not outcome.problems
        g = bench.goldens[0]
        picked = [i for i, k in enumerate(g.kinds, 1) if k == "otadata"]
        for phase in ("install", "trial"):
            records = [i for i, (k, p) in enumerate(zip(g.kinds, g.phases), 1)
                       if (k, p) == ("nvs-record", phase)]
            picked.append(records[len(records) // 2])
        assert len(picked) >= 5 and max(picked) <= ops
        for cut in picked:
            result = bench.run((cut,))[0]
            assert result.survived, (cut, result.problems)
    finally:
        bench.close()


# --- the host command -----------------------------------------------------------------------


def test_otakit_revert_command(lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) \
        -> None:
    key = tmp_path / "release.pem"
    key.write_bytes(lab.key.private_pem(None))
    args = ["revert", "--key", str(key), "--repo", str(lab.repo.root), "--product", PRODUCT,
            "--board", lab.board.name, "--channel", lab.channel]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "from sequence 2 to version 1.0.0 (sequence 1): revision 3" in out
    pub = tmp_path / "release.pub.pem"
    pub.write_bytes(lab.key.public_key().public_pem())
    assert main(["verify", "--repo", str(lab.repo.root), "--key", str(pub)]) == 0
    assert main(args) == 1  # a revert of a revert: the devices hold 1.1.0 in the other slot
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("otakit: BAD_ARGUMENT: "), err
    empty = tmp_path / "empty"
    Repository(empty).root.mkdir()
    assert main([*args[:3], "--repo", str(empty), *args[5:]]) == 1
    assert capsys.readouterr().err.startswith("otakit: NO_REPO: ")


def test_host_and_device_agree_on_the_action_field(tmp_path: Path) -> None:
    key = generate_key(ED25519)
    (tmp_path / "k.py").write_text(export_keyring([key.public_key()]))
    sha = hashlib.sha256(b"x").hexdigest()
    body = ManifestBody(product="p", board="esp32", chip_id=0, channel="stable", version="1",
                        sequence=1, security_version=0, created=0, support_end="2031-01-01",
                        revision=1, payload=Payload(f"blobs/sha256/{sha}", 1, sha))
    cases = {"none": {}, "revert": {"action": "revert"}, "other": {"action": "rollback"},
             "number": {"action": 1}, "null": {"action": None}}
    for name, extra in cases.items():
        raw = json.dumps({**body.to_dict(), **extra}).encode()  # signed as they are
        (tmp_path / name).write_bytes(sign_manifest(raw, key))
    script = tmp_path / "parse.py"
    script.write_text(
        "import sys\nfrom k import KEYS\nfrom ota.manifest import parse\n"
        "from ota.errors import ManifestError\n"
        f"for n in {list(cases)!r}:\n"
        "    try:\n"
        "        m = parse(open(n, 'rb').read(), KEYS)\n"
        "        print(n, 'OK', m.revert)\n"
        "    except ManifestError as e:\n"
        "        print(n, e.reason)\n")
    r = run_micropython([str(script)], path=[FIRMWARE_DIR, tmp_path], cwd=tmp_path, timeout=120)
    device = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())
    assert device == {"none": "OK False", "revert": "OK True", "other": "BAD_BODY",
                      "number": "BAD_BODY", "null": "BAD_BODY"}, r.stderr.decode()
    for name in cases:
        try:
            verify_manifest((tmp_path / name).read_bytes(), {key.key_id: key.public_key()})
            host = "OK"
        except HostManifestError as e:
            host = e.reason
        assert host == device[name].split()[0], name
