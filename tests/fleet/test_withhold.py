"""Rollouts that withhold themselves (`otakit.withhold`): simulated boards install a crashing
release through `otakit serve`, roll back and report it; at the channel's threshold the server
stops offering the release at once, and boards not yet offered it never download it. For a
static host, `otakit rollout watch` re-publishes the site withheld. No signing key is used to
withhold; the operator lifts or aborts with it."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fleethelpers import SIZE, STEP, blob_gets, device_id, statuses, step
from otakit import rollout, withhold
from otakit.appimage import make_app_image
from otakit.boards import load_board
from otakit.cli import main
from otakit.fleet import Fleet
from otakit.keys import generate_key
from otakit.publish import publish_static
from otakit.repo import ReleaseRequest, Repository, read_published
from otakit.server import serve_in_thread
from otakit.sim.lab import PRODUCT, Lab
from otakit.telemetry import Event, Report, open_store

TOKEN = "withhold-admin-token-0123456789ab"


def uid(i: int) -> bytes:
    return b"\x24\x0a\xc4\x00\x01" + bytes([i])


def manifest_status(lab: Lab) -> tuple[int, bytes]:
    url = f"{lab.url}{PRODUCT}/{lab.board.name}/{lab.channel}/manifest"
    try:
        with urllib.request.urlopen(url) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_a_crashing_release_is_withheld_at_the_threshold(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "fleet.sqlite3"))
    with Lab(tmp_path / "lab", fleet=Fleet(store=store), admin_token=TOKEN) as lab:
        (lab.work / "step.py").write_text(STEP)
        where = (PRODUCT, lab.board.name, lab.channel)
        good = make_app_image("1.0.0", size=SIZE)
        lab.publish(good, "1.0.0", 1)
        previous = lab.manifest_path.read_bytes()
        lab.publish(make_app_image("1.1.0", size=SIZE, behaviour="crash"), "1.1.0", 2)
        assert withhold.previous_manifest(lab.repo.root, where).read_bytes() == previous
        withhold.set_threshold(lab.repo.root, where, withhold.Threshold(2, 50, min_sources=1))

        def device(i: int, reflash: bool = True) -> tuple[str, list[dict]]:
            if reflash:  # a fresh board running 1.0.0 (sequence 1)
                lab.flash(good, uid=uid(i), origin=(1, 0))
            result = step(lab)
            assert f"DEVICE {device_id(uid(i))}" in result.log, result.log
            return result.last.version, statuses(result)

        # the first board takes the release, crashes in its trial boot and rolls back
        version, _ = device(1)
        assert version == "1.0.0" and blob_gets(lab) == 1
        assert manifest_status(lab)[1] == lab.manifest_path.read_bytes()  # 1 of 1: not yet 2
        # the second one too: 2 of 2 devices reached failed, the threshold (2, 50 %) is crossed
        version, _ = device(2)
        assert version == "1.0.0" and blob_gets(lab) == 2
        rec = withhold.active(lab.repo.root, where)
        assert rec is not None and (rec["seq"], rec["failed"], rec["reached"]) == (2, 2, 2)
        assert manifest_status(lab) == (200, previous)  # the previous release's manifest

        # the board that rolled back accepted the newer revision: it refuses the previous
        # manifest (OLD_REVISION) and stays put
        version, st = device(2, reflash=False)
        assert version == "1.0.0" and st[-1]["reason"] == "OLD_REVISION"
        # boards not yet offered the release never download it
        for i in (3, 4):
            version, st = device(i)
            assert version == "1.0.0" and st[-1]["state"] == "up_to_date"
        assert blob_gets(lab) == 2
        # no key was needed; the operator aborts with it, which ends the withhold for good
        rollout.set_state(lab.repo, where, lab.key, "aborted")
        assert withhold.active(lab.repo.root, where) is None
        version, st = device(5)
        assert version == "1.0.0" and st[-1]["state"] == "held"
        assert blob_gets(lab) == 2
        assert "doorlock/esp32/stable" in withhold.records(lab.repo.root)
    store.close()


def test_without_a_previous_manifest_the_channel_is_503(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "fleet.sqlite3"))
    with Lab(tmp_path / "lab", fleet=Fleet(store=store), admin_token=TOKEN) as lab:
        where = (PRODUCT, lab.board.name, lab.channel)
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        withhold.set_threshold(lab.repo.root, where, withhold.Threshold(1, 10, min_sources=1))
        etag_before = _report(lab, 1, "rolled_back", 2)
        assert manifest_status(lab)[0] == 503
        # a device's cached ETag never turns into a 304 for the withheld manifest
        req = urllib.request.Request(f"{lab.url}{PRODUCT}/{lab.board.name}/stable/manifest",
                                     headers={"If-None-Match": etag_before})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        assert e.value.code == 503 and e.value.headers["Retry-After"]
        api = urllib.request.Request(lab.url + ".otakit/api/summary",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(api) as r:  # the dashboard's data says so
            held = json.loads(r.read())["withheld"]["doorlock/esp32/stable"]
        assert (held["seq"], held["serve"], held["failed"], held["reached"]) == (2, "none", 1, 1)
        page = urllib.request.Request(lab.url + ".otakit/dashboard",
                                      headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(page) as r:  # and so does the page an operator reads
            assert "WITHHELD (serving none)" in r.read().decode()
        # lifting it (re-signing with the key) offers the release again, and it is not
        # withheld automatically a second time
        rollout.lift(lab.repo, where, lab.key)
        assert manifest_status(lab)[0] == 200
        _report(lab, 2, "failed", 2)
        assert manifest_status(lab)[0] == 200
    store.close()


def _report(lab: Lab, i: int, event: str, seq: int) -> str:
    """Post one device's report of ``event`` for ``seq``; return the manifest's ETag before."""
    url = f"{lab.url}{PRODUCT}/{lab.board.name}/stable/manifest"
    with urllib.request.urlopen(url) as r:
        etag = r.headers["ETag"]
    body = {"v": 1, "id": hashlib.sha256(b"%d" % i).hexdigest()[:24], "product": PRODUCT,
            "board": lab.board.name, "channel": "stable", "seq": 1,
            "events": [{"e": "offered", "seq": seq, "ms": 5, "ver": "1.1.0"},
                       {"e": event, "seq": seq, "ms": 5, "reason": "HEALTH_FAILED"}]}
    req = urllib.request.Request(lab.url + ".otakit/events", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 204
    return etag


def _fleet(tmp_path: Path) -> tuple[Repository, object, Path]:
    """A repository with stable 1.0.0 then 1.1.0 and beta 2.0.0, a store, a published site."""
    repo = Repository(tmp_path / "repo")
    key = generate_key("ed25519")
    board = load_board("esp32")
    for channel, version, seq in (("stable", "1.0.0", 1), ("stable", "1.1.0", 2),
                                  ("beta", "2.0.0", 3)):
        repo.publish(ReleaseRequest(PRODUCT, board, channel, version, seq,
                                    support_end="2031-12-31"), make_app_image(version), key)
    store = open_store(str(tmp_path / "fleet.sqlite3"))
    site = tmp_path / "site"
    publish_static(repo.root, site)
    return repo, store, site


def _reports(store: object, channel: str, seq: int, n_ok: int, n_bad: int,
             networks: int = 2) -> None:
    now = int(time.time())
    for i in range(n_ok + n_bad):
        dev = hashlib.sha256(f"{channel}{i}".encode()).hexdigest()[:24]
        last = Event("confirmed", seq, 0) if i < n_ok else Event("rolled_back", seq, 0,
                                                                 "HEALTH_FAILED")
        store.add(Report(dev, PRODUCT, "esp32", channel, seq - 1,  # type: ignore[attr-defined]
                         (Event("offered", seq, 5, None, "x"), last)), now, f"net{i % networks}")


def test_watch_republishes_a_static_site_withheld(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    repo, store, site = _fleet(tmp_path)
    root = ["--repo", str(repo.root)]
    where = [*root, "--product", PRODUCT, "--board", "esp32"]
    assert main(["rollout", "threshold", *where, "--failed", "3", "--percent", "20"]) == 0
    assert main(["rollout", "threshold", *where, "--channel", "beta", "--failed", "3",
                 "--percent", "20"]) == 0
    assert main(["rollout", "policy", *where, "--start-percent", "10"]) == 0  # kept beside
    assert withhold.thresholds(repo.root)["doorlock/esp32/stable"].min_failed == 3
    # stable: 3 of 12 failed (25 %), from 2 networks; beta: 3 of 20 (15 %), under 20 %
    _reports(store, "stable", 2, 9, 3)
    _reports(store, "beta", 3, 17, 3)
    watch = ["rollout", "watch", *root, "--to", str(site), "--telemetry",
             str(tmp_path / "fleet.sqlite3"), "--once"]
    capsys.readouterr()
    assert main(watch) == 0
    out = capsys.readouterr().out
    assert "withheld doorlock/esp32/stable sequence 2: 3 of 12 devices failed" in out
    assert "beta" not in out
    stable = site / PRODUCT / "esp32" / "stable" / "manifest"
    previous = withhold.previous_manifest(repo.root, (PRODUCT, "esp32", "stable")).read_bytes()
    assert stable.read_bytes() == previous  # the previous release's signed manifest
    assert (site / PRODUCT / "esp32" / "beta" / "manifest").is_file()
    # a later `otakit publish` keeps it withheld
    assert main(["publish", *root, "--to", str(site)]) == 0
    assert stable.read_bytes() == previous
    assert main(["rollout", "withheld", *root]) == 0
    assert "doorlock/esp32/stable sequence 2 revision 2: withheld, 3 of 12" in (
        capsys.readouterr().out)
    # beta crosses it later; it has no previous release: its manifest leaves the site (404)
    store.add(Report("f" * 24, PRODUCT, "esp32", "beta", 2,  # type: ignore[attr-defined]
                     (Event("failed", 3, 9, "HASH_MISMATCH"),)), int(time.time()), "net9")
    store.add(Report("e" * 24, PRODUCT, "esp32", "beta", 2,  # type: ignore[attr-defined]
                     (Event("downloaded", 3, 9), Event("failed", 3, 9, "HASH_MISMATCH"))),
              int(time.time()), "net8")
    assert main(watch) == 0  # 5 of 22 devices reached failed: 23 %
    assert "withheld doorlock/esp32/beta sequence 3: 5 of 22" in capsys.readouterr().out
    assert not (site / PRODUCT / "esp32" / "beta" / "manifest").exists()
    store.close()  # type: ignore[attr-defined]


def test_one_network_never_withholds(tmp_path: Path) -> None:
    repo, store, _ = _fleet(tmp_path)
    withhold.set_threshold(repo.root, (PRODUCT, "esp32", "stable"), withhold.Threshold(3, 20))
    _reports(store, "stable", 2, 0, 30, networks=1)  # forged ids, all from one network
    assert withhold.Withholder(repo.root, withhold.store_health(store)).evaluate() == []
    assert withhold.active(repo.root, (PRODUCT, "esp32", "stable")) is None
    store.close()  # type: ignore[attr-defined]


def test_threshold_cli_refusals(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    where = ["--repo", str(tmp_path), "--product", PRODUCT, "--board", "esp32"]
    assert main(["rollout", "threshold", *where, "--failed", "3"]) != 0
    assert main(["rollout", "threshold", *where, "--percent", "0", "--failed", "1"]) != 0
    assert main(["rollout", "watch", "--repo", str(tmp_path / "none"), "--telemetry",
                 str(tmp_path / "t.sqlite3"), "--once"]) == 1
    assert "NO_REPO" in capsys.readouterr().err


def test_watch_reads_the_figures_from_a_servers_admin_api(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    repo, store, site = _fleet(tmp_path)
    withhold.set_threshold(repo.root, (PRODUCT, "esp32", "stable"), withhold.Threshold(3, 20))
    _reports(store, "stable", 2, 9, 3)  # into the store directly: the server withholds nothing
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    (tmp_path / "empty").mkdir()
    with serve_in_thread(tmp_path / "empty", fleet=Fleet(store=store),  # type: ignore[arg-type]
                         admin_token=TOKEN) as url:
        watch = ["rollout", "watch", "--repo", str(repo.root), "--to", str(site), "--server",
                 url, "--once"]
        assert main([*watch, "--token-file", str(token)]) == 0
        assert "withheld doorlock/esp32/stable sequence 2: 3 of 12" in capsys.readouterr().out
        bad = tmp_path / "bad-token"
        bad.write_text("wrong-token-wrong-token-wrong-token\n")
        assert main([*watch, "--token-file", str(bad)]) == 1
        assert "NETWORK" in capsys.readouterr().err
    stable = site / PRODUCT / "esp32" / "stable" / "manifest"
    assert stable.read_bytes() == withhold.previous_manifest(
        repo.root, (PRODUCT, "esp32", "stable")).read_bytes()
    assert main(["rollout", "withheld", "--repo", str(repo.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["doorlock/esp32/stable"]["serve"] == "previous"
    store.close()  # type: ignore[attr-defined]


def test_a_withheld_release_is_never_served_as_the_previous_one(tmp_path: Path) -> None:
    repo, store, _ = _fleet(tmp_path)
    where = (PRODUCT, "esp32", "stable")
    t = withhold.Threshold(1, 1, min_sources=1)
    assert withhold.consider(repo.root, where, t, 10, 5, 2)["serve"] == "previous"
    assert withhold.consider(repo.root, where, t, 10, 5, 2) is None  # once per sequence
    key = generate_key("ed25519")
    # the operator publishes a fix (sequence 4): the outgoing manifest is the withheld 1.1.0
    repo.publish(ReleaseRequest(PRODUCT, load_board("esp32"), "stable", "1.2.0", 4,
                                support_end="2031-12-31"), make_app_image("1.2.0"), key)
    assert withhold.active(repo.root, where) is None
    # the release before 1.2.0 in the channel's history is the withheld 1.1.0: what a withhold
    # of 1.2.0 serves is the newest older release never withheld, 1.0.0
    prev = withhold.previous_manifest(repo.root, where)
    assert prev is not None and read_published(prev.read_bytes()).body.version == "1.0.0"
    rec = withhold.consider(repo.root, where, t, 10, 5, 2)
    assert rec is not None and (rec["seq"], rec["serve"]) == (4, "previous")
    assert withhold.records(repo.root)["doorlock/esp32/stable"]["withheld_seqs"] == [2, 4]
    store.close()  # type: ignore[attr-defined]
