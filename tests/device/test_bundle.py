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
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.bundle import HEADER, Header, make_bundle
from otakit.sim.lab import PRODUCT, Lab
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
    result = lab.boot(script=lab.work / "step.py", heapsize=HEAP, env=env,
                      **kw)  # type: ignore[arg-type]
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
