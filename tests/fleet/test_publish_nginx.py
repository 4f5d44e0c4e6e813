"""Static publishing: `otakit publish` lays the repository out, real nginx serves it on loopback,
and a simulated board updates through it, resuming with Range after a power cut mid-download,
and rotates its release keys through the published keyring documents while a user reads the
published support statement."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from fleethelpers import STEP, statuses, step
from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.keys import ED25519, generate_key
from otakit.nginx import NginxServer, nginx_binary
from otakit.sim.lab import PRODUCT, Lab

SIZE = 256 * 1024

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="Debian's nginx is not installed "
                                "(scripts/install-system-deps.sh installs it as root)")


def nginx_requests(server: NginxServer) -> list[tuple[str, str, int, int]]:
    """(method, path, status, body bytes sent) from nginx's combined access log."""
    out = []
    for line in server.access_log.read_text().splitlines():
        m = re.search(r'"(GET|HEAD|POST) (\S+) HTTP/1\.[01]" (\d{3}) (\d+)', line)
        if m:
            out.append((m[1], m[2], int(m[3]), int(m[4])))
    return out


def test_publish_then_update_through_nginx_with_range_resume(tmp_path: Path) -> None:
    with Lab(tmp_path / "lab") as lab:
        (lab.work / "step.py").write_text(STEP)
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        (lab.repo.root / ".otakit").mkdir(exist_ok=True)  # the release history is there already
        (lab.repo.root / ".otakit" / "policy.json").write_text("{}")
        site = tmp_path / "site"
        assert main(["publish", "--repo", str(lab.repo.root), "--to", str(site)]) == 0
        assert not (site / ".otakit").exists()
        nginx = NginxServer(site, tmp_path / "nginx")
        with nginx as url:
            lab.url = url  # the board is provisioned with nginx's URL, not otakit serve's
            lab.flash(make_app_image("1.0.0", size=SIZE), telemetry=False)
            # cut the power in the middle of the download: a whole update is ~160 flash
            # operations here (2 per 4 KB block), so op 100 falls after the 32-block checkpoint
            result = step(lab, cut_at=100)
            assert result.cut, result.log
            assert [b.version for b in result.boots][-1] == "1.1.0", result.log
            assert statuses(result)[-1]["state"] == "up_to_date"
            blob = [r for r in nginx_requests(nginx) if "/blobs/" in r[1]]
            assert [r[2] for r in blob] == [200, 206], blob
            assert SIZE // 4 < SIZE - blob[1][3] < SIZE  # resumed from a checkpoint, not 0
            with urllib.request.urlopen(url + "doorlock/esp32/stable/manifest") as resp:
                assert resp.headers["Cache-Control"] == "max-age=60"
            assert lab.requests() == []  # otakit serve saw nothing: nginx did it all


def test_publish_carries_keyrings_and_the_support_statement(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    root, rel2, rel3 = (generate_key(ED25519) for _ in range(3))
    site = tmp_path / "site"

    def publish() -> str:
        capsys.readouterr()
        assert main(["publish", "--repo", str(lab.repo.root), "--to", str(site)]) == 0
        return capsys.readouterr().out

    with Lab(tmp_path / "lab", alg=ED25519, roots=[root]) as lab:
        (lab.work / "step.py").write_text(STEP)
        lab.sign_keyring([rel2], 1)  # v1: the firmware's baked-in key is replaced by rel2
        lab.publish(make_app_image("1.1.0", size=8192), "1.1.0", 2, key=rel2)
        assert main(["support", "publish", "--repo", str(lab.repo.root), "--product", PRODUCT,
                     "--model", "Door Lock 1", "--end", "2031-12-31"]) == 0
        assert "1 keyring(s), 4 support file(s)" in publish()
        nginx = NginxServer(site, tmp_path / "nginx")
        with nginx as url:
            lab.url = url
            lab.flash(make_app_image("1.0.0", size=8192), telemetry=False)
            result = step(lab)
            assert [b.version for b in result.boots][-1] == "1.1.0", result.log
            assert statuses(result)[-1]["keyring_version"] == 1, result.log
            lab.sign_keyring([rel3], 2)  # v2: rel2 revoked, rel3 signs
            lab.publish(make_app_image("1.2.0", size=8192), "1.2.0", 3, key=rel3)
            publish()
            result = step(lab)
            assert [b.version for b in result.boots][-1] == "1.2.0", result.log
            assert statuses(result)[-1]["keyring_version"] == 2, result.log
            with urllib.request.urlopen(f"{url}{PRODUCT}/support/support.json") as resp:
                facts = json.load(resp)
            assert facts["model"] == "Door Lock 1" and "2031-12-31" in json.dumps(facts)
            assert (site / PRODUCT / "support" / "history.json").is_file()
            assert lab.requests() == []  # nginx served it all


def test_publish_refuses_a_corrupt_blob_and_is_idempotent(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    with Lab(tmp_path / "lab") as lab:
        pub = lab.publish(make_app_image("1.1.0", size=8192), "1.1.0", 2)
        site = tmp_path / "site"
        assert main(["publish", "--repo", str(lab.repo.root), "--to", str(site)]) == 0
        assert "1 manifest(s), 1 new blob(s) (0 kept)" in capsys.readouterr().out
        assert main(["publish", "--repo", str(lab.repo.root), "--to", str(site)]) == 0
        assert "0 new blob(s) (1 kept)" in capsys.readouterr().out
        assert main(["verify", "--repo", str(site), "--key", str(_pub(lab, tmp_path))]) == 0
        pub.payload_path.write_bytes(b"x" * 8192)
        (site / "blobs" / "sha256" / pub.payload_path.name).unlink()
        assert main(["publish", "--repo", str(lab.repo.root), "--to", str(site)]) == 1
        assert "does not match its name" in capsys.readouterr().err


def _pub(lab: Lab, tmp_path: Path) -> Path:
    path = tmp_path / "release.pub.pem"
    path.write_bytes(lab.key.public_pem())
    return path
