"""Staged rollouts end to end: `otakit rollout` re-signs the channel's manifest and simulated
boards with different `machine.unique_id()`s take the release, or not, by their bucket."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleethelpers import (
    SIZE, STEP, blob_gets, device_id, rollout_bucket, rollout_offers, statuses, step, uid_in,
)
from otakit import rollout
from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.errors import RepoError
from otakit.sim.lab import PRODUCT, Lab


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab") as the_lab:
        (the_lab.work / "step.py").write_text(STEP)
        yield the_lab


def where(lab: Lab) -> tuple[str, str, str]:
    return (PRODUCT, lab.board.name, lab.channel)


def run_device(lab: Lab, uid: bytes, **settings: object) -> tuple[str, list[dict]]:
    """Flash a fresh board (1.0.0, this uid), run one update step: (version running, statuses)."""
    lab.flash(make_app_image("1.0.0", size=SIZE), uid=uid, **settings)
    result = step(lab)
    assert f"DEVICE {device_id(uid)}" in result.log, result.log
    return result.last.version, statuses(result)


def test_bucket_is_stable_and_raising_only_adds_devices() -> None:
    ids = [device_id(i.to_bytes(6, "big")) for i in range(2000)]
    salt = "r7-0badc0de"
    assert [rollout_bucket(salt, d) for d in ids] == [rollout_bucket(salt, d) for d in ids]
    chosen = {}
    for percent in (0, 1, 5, 10, 25, 50, 99, 100):
        r = {"percent": percent, "salt": salt, "state": "active"}
        chosen[percent] = {d for d in ids if rollout_offers(r, d)}
    steps = sorted(chosen)
    for lo, hi in zip(steps, steps[1:], strict=False):
        assert chosen[lo] <= chosen[hi]
    assert not chosen[0] and len(chosen[100]) == len(ids)
    assert 0.2 < len(chosen[25]) / len(ids) < 0.3  # roughly uniform
    other = {d for d in ids if rollout_offers({"percent": 25, "salt": "r8-1", "state": "active"},
                                              d)}
    assert other != chosen[25]  # a new salt picks other devices first
    paused = {"percent": 100, "salt": salt, "state": "paused"}
    assert not any(rollout_offers(paused, d) for d in ids)


def test_staged_rollout_on_simulated_boards(lab: Lab) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    body = rollout.start(lab.repo, where(lab), lab.key, 30)
    salt = body.rollout["salt"]  # type: ignore[index]
    early, late, later = uid_in(salt, 0, 30), uid_in(salt, 30, 60), uid_in(salt, 60, 100)

    version, st = run_device(lab, early)
    assert version == "1.1.0" and st[-1]["state"] == "up_to_date"

    blobs = blob_gets(lab)
    version, st = run_device(lab, late)
    assert version == "1.0.0" and st[-1]["state"] == "held"
    assert "rollout to 30%" in st[-1]["detail"]
    assert blob_gets(lab) == blobs  # not one payload byte fetched

    rollout.raise_to(lab.repo, where(lab), lab.key, 60)
    assert lab.repo.current(*where(lab)).rollout["salt"] == salt  # type: ignore[union-attr]
    version, _ = run_device(lab, late)
    assert version == "1.1.0"

    rollout.set_state(lab.repo, where(lab), lab.key, "paused")
    version, st = run_device(lab, later)
    assert version == "1.0.0" and "paused rollout" in st[-1]["detail"]
    rollout.set_state(lab.repo, where(lab), lab.key, "active")
    rollout.raise_to(lab.repo, where(lab), lab.key, 100)
    rollout.set_state(lab.repo, where(lab), lab.key, "aborted")
    version, st = run_device(lab, later)
    assert version == "1.0.0" and st[-1]["state"] == "held"


def test_abort_keeps_updated_devices_up_to_date(lab: Lab) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    salt = rollout.start(lab.repo, where(lab), lab.key, 50).rollout["salt"]  # type: ignore[index]
    uid = uid_in(salt, 0, 50)
    version, _ = run_device(lab, uid, checks=1)
    assert version == "1.1.0"
    rollout.set_state(lab.repo, where(lab), lab.key, "aborted")
    result = step(lab)  # the same board, running 1.1.0, checks again
    assert result.last.version == "1.1.0" and len(result.boots) == 1
    assert statuses(result)[-1]["state"] == "up_to_date"


def test_rollout_refusals(lab: Lab) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    with pytest.raises(RepoError, match="not staged"):
        rollout.raise_to(lab.repo, where(lab), lab.key, 50)
    rollout.start(lab.repo, where(lab), lab.key, 40)
    with pytest.raises(RepoError, match="only grows"):
        rollout.raise_to(lab.repo, where(lab), lab.key, 20)
    from otakit.keys import generate_key  # noqa: PLC0415

    with pytest.raises(RepoError) as e:
        rollout.raise_to(lab.repo, where(lab), generate_key("ed25519"), 50)
    assert e.value.reason == "VERIFY_FAILED"
    rollout.set_state(lab.repo, where(lab), lab.key, "aborted")
    for op in (lambda: rollout.set_state(lab.repo, where(lab), lab.key, "active"),
               lambda: rollout.raise_to(lab.repo, where(lab), lab.key, 90),
               lambda: rollout.start(lab.repo, where(lab), lab.key, 10)):
        with pytest.raises(RepoError, match="aborted"):
            op()


def test_cli_policy_stages_releases_and_security_may_skip(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", "pw")
    monkeypatch.chdir(tmp_path)
    assert main(["keygen", "--alg", "ed25519", "--out", "keys"]) == 0
    for v in ("1.1.0", "1.2.0", "1.3.0"):
        Path(f"{v}.bin").write_bytes(make_app_image(v))
    common = ["--key", "keys/release.pem", "--repo", "repo", "--product", "door", "--board",
              "esp32"]
    where_ = ["--repo", "repo", "--product", "door", "--board", "esp32"]
    assert main(["rollout", "policy", *where_, "--start-percent", "5"]) == 0
    assert main(["release", *common, "--version", "1.1.0", "--sequence", "1",
                 "--support-end", "2031-12-31", "1.1.0.bin"]) == 0
    assert "staged at 5%" in capsys.readouterr().out
    assert main(["rollout", "raise", *where_, "--key", "keys/release.pem", "--percent", "20"]) == 0
    assert "active at 20%" in capsys.readouterr().out
    for cmd in ("pause", "resume", "abort"):
        assert main(["rollout", cmd, *where_, "--key", "keys/release.pem"]) == 0
    assert "aborted at 20%" in capsys.readouterr().out
    # not a security release: --skip-staging is refused
    assert main(["release", *common, "--version", "1.2.0", "--sequence", "2",
                 "--skip-staging", "1.2.0.bin"]) == 1
    assert "security releases only" in capsys.readouterr().err
    assert main(["release", *common, "--version", "1.2.0", "--sequence", "2", "--security",
                 "--severity", "critical", "--risk", "CVE-1: anyone nearby could unlock the door",
                 "--skip-staging",
                 "1.2.0.bin"]) == 0
    assert main(["rollout", "status", *where_, "--json"]) == 0
    assert '"rollout": null' in capsys.readouterr().out
    assert main(["release", *common, "--version", "1.3.0", "--sequence", "3", "--rollout", "50",
                 "1.3.0.bin"]) == 0
    assert main(["verify", "--repo", "repo", "--key", "keys/release.pub.pem"]) == 0
    assert main(["rollout", "status", *where_]) == 0
    assert "sequence 3: active at 50%" in capsys.readouterr().out


def test_abort_and_lift_work_on_an_unstaged_release(tmp_path: Path) -> None:
    from otakit.boards import load_board  # noqa: PLC0415
    from otakit.keys import generate_key  # noqa: PLC0415
    from otakit.repo import ReleaseRequest, Repository  # noqa: PLC0415

    repo, key = Repository(tmp_path / "repo"), generate_key("ed25519")
    repo.publish(ReleaseRequest("door", load_board("esp32"), "stable", "1.0.0", 1,
                                support_end="2031-12-31"), make_app_image("1.0.0"), key)
    w = ("door", "esp32", "stable")
    lifted = rollout.lift(repo, w, key)  # unchanged but the revision
    assert (lifted.rollout, lifted.revision) == (None, 2)
    aborted = rollout.set_state(repo, w, key, "aborted")
    assert aborted.rollout is not None and aborted.revision == 3
    assert (aborted.rollout["state"], aborted.rollout["percent"]) == ("aborted", 0)
    assert not rollout_offers(aborted.rollout, device_id(b"\x00" * 6))
