"""The example door lock's user-facing update controls and device info, on its local interface
(ETSI EN 303 645 5.3-6, 5.3-16), and its refusal of a plain-http update URL on a product build
(5.5-1). The user talks to the app's own HTTP server (tests/device/doorlock_local.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.sim.lab import Lab
from otakit.sim.runner import RunResult

from doorlock_local import CLIENT, answers, free_port

HEAP = "128K"
SIZE = 64 * 1024


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    # one lab, one release (1.1.0, sequence 2) for every test; each test flashes a fresh board
    with Lab(tmp_path_factory.mktemp("local") / "lab") as the_lab:
        the_lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        yield the_lab


def _boot(lab: Lab, *requests: str, max_boots: int = 1) -> RunResult:
    script = lab.work / "local_client.py"
    script.write_text(CLIENT)
    result = lab.boot(script=script, heapsize=HEAP, max_boots=max_boots,
                      env={"OTAKIT_LOCAL": "\n".join(requests)})
    assert not result.error and "Traceback" not in result.log, result.log[-3000:]
    return result


def _manifest_requests(lab: Lab) -> int:
    return sum(1 for _, path, _ in lab.requests() if path.endswith("/manifest"))


def test_the_user_turns_checks_and_auto_install_off_and_on(lab: Lab) -> None:
    lab.flash(make_app_image("1.0.0", size=SIZE), local_port=free_port(), max_checks=2)

    # Checks off: the app does not ask the server at all, and says nothing.
    before = _manifest_requests(lab)
    r = _boot(lab, "POST /settings?auto_check=off")
    status, body = answers(r, "POST /settings?auto_check=off")[0]
    assert status == "HTTP/1.0 200 OK" and json.loads(body)["auto_check"] is False
    assert _manifest_requests(lab) == before and "app: notice" not in r.log
    # ... and after a reboot it is still off.
    r = _boot(lab, "GET /settings")
    assert json.loads(answers(r, "GET /settings")[0][1]) == {
        "auto_check": False, "auto_install": True, "notify": True}
    assert _manifest_requests(lab) == before and "app: notice" not in r.log

    # Checks back on, automatic install off: the app checks and tells the user, installs nothing.
    r = _boot(lab, "POST /settings?auto_check=on&auto_install=off")
    assert json.loads(answers(r, "POST /settings?auto_check=on&auto_install=off")[0][1]) == {
        "auto_check": True, "auto_install": False, "notify": True}
    assert _manifest_requests(lab) > before
    assert "app: notice available: " in r.log
    assert re.search(r"^app: notice postponed: .*automatic installing is off", r.log, re.M)
    assert "app: notice downloaded" not in r.log and [b.version for b in r.boots] == ["1.0.0"]
    # ... and after a reboot it is still off: notified again, still not installed.
    r = _boot(lab, "GET /settings")
    assert json.loads(answers(r, "GET /settings")[0][1])["auto_install"] is False
    assert "app: notice available: " in r.log and "app: notice downloaded" not in r.log
    assert [b.version for b in r.boots] == ["1.0.0"] and lab.nvs().get("seq", 0) == 0

    # Automatic install back on: the update installs, and the new firmware is confirmed.
    r = _boot(lab, "POST /settings?auto_install=on", max_boots=3)
    assert "app: notice downloaded" in r.log and "app: boot confirmed" in r.log
    assert [b.version for b in r.boots] == ["1.0.0", "1.1.0"] and lab.nvs()["seq"] == 2


def test_a_bad_request_changes_nothing(lab: Lab) -> None:
    lab.flash(make_app_image("1.0.0", size=SIZE), local_port=free_port(), max_checks=1,
              url="http://127.0.0.1:9")  # nothing to update from: only the interface matters
    r = _boot(lab, "POST /settings?auto_install=maybe", "POST /settings?telemetry=off",
              "GET /nothing", "GET /settings")
    for req in ("POST /settings?auto_install=maybe", "POST /settings?telemetry=off"):
        status, body = answers(r, req)[0]
        assert status == "HTTP/1.0 400 Bad Request" and body.startswith("BAD_SETTINGS: ")
    assert answers(r, "GET /nothing")[0][0] == "HTTP/1.0 404 Not Found"
    assert json.loads(answers(r, "GET /settings")[0][1]) == {
        "auto_check": True, "auto_install": True, "notify": True}


CONFIG = """\
import doorlock
cfg = doorlock.load_config()
print("CONFIG %s" % (cfg and sorted(cfg)))
"""


def _config(lab: Lab, product: bool, **settings: object) -> str:
    lab.flash(make_app_image("1.0.0", size=SIZE), product=product,
              origin=(0, 0) if product else None, **settings)
    script = lab.work / "config.py"
    script.write_text(CONFIG)
    r = lab.boot(script=script, heapsize=HEAP, max_boots=1)
    assert r.ended == "finished" and not r.error, r.log[-3000:]
    return r.log


def test_a_product_build_refuses_an_http_update_url(lab: Lab, tmp_path: Path) -> None:
    # 5.5-1: the http URL a development build takes is refused on a product build, with one
    # BAD_CONFIG line (the app then runs the lock without updates); https is taken, with its CA.
    dev = _config(lab, False)
    assert "CONFIG ['board'," in dev and "BAD_CONFIG" not in dev
    prod = _config(lab, True)
    assert re.search(r"^ota: BAD_CONFIG: ota_config.json: url is http:// on a product build "
                     r"\(https required\); using defaults$", prod, re.M), prod[-3000:]
    assert "CONFIG None" in prod
    ca = tmp_path / "ca.der"
    ca.write_bytes(b"0" * 600)  # the app reads the file; the TLS layer parses it
    ok = _config(lab, True, url="https://updates.example.com/repo", ca=str(ca))
    assert "CONFIG ['board', 'ca'," in ok and "BAD_CONFIG" not in ok, ok[-1500:]
    missing = _config(lab, True, url="https://updates.example.com/repo", ca=str(tmp_path / "no"))
    assert "BAD_CONFIG: ota_config.json: no CA certificate file" in missing


INFO = """\
import ota
agent = ota.Agent(ota.Config("http://127.0.0.1:9", "doorlock", "esp32"))
print("INFO " + agent.device_info().replace("\\n", "|"))
"""


def test_a_micropython_build_reports_the_version_in_its_image(lab: Lab) -> None:
    # Issue 17: MicroPython's own builds leave the app descriptor's version empty; the device
    # reads it from the banner inside the running image, not from the port the simulator runs
    # on (`otakit sim inspect` does the same on the host: tests/host/test_sim_inspect.py).
    banner = b"\0MicroPython v1.25.0 on 2025-04-15; Generic ESP32 module with ESP32\0"
    lab.flash(make_app_image("", size=SIZE) + banner)
    script = lab.work / "info.py"
    script.write_text(INFO)
    r = lab.boot(script=script, heapsize=HEAP, max_boots=1)
    assert r.ended == "finished" and not r.error, r.log[-3000:]
    info = dict(f.split(": ", 1) for f in re.findall(r"^INFO (.*)$", r.log, re.M)[0].split("|"))
    assert info["firmware"] == "MicroPython v1.25.0 on 2025-04-15 (ota_0)"
    assert info["model"] == "not set" and info["product"] == "doorlock"


def test_a_product_build_updates_over_https_with_its_provisioned_ca(tmp_path: Path) -> None:
    # 5.5-1 end to end: the product build that refuses http takes the same release over https,
    # the server verified against the CA certificate provisioned beside ota_config.json.
    from test_security_net import make_certs

    ca, _, ctx = make_certs(tmp_path)
    (tmp_path / "ca.der").write_bytes(ca)
    with Lab(tmp_path / "lab", ssl_context=ctx) as tls:
        assert tls.url.startswith("https://")
        tls.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        tls.flash(make_app_image("1.0.0", size=SIZE), product=True, origin=(1, 0),
                  ca=str(tmp_path / "ca.der"))
        r = tls.boot(heapsize=HEAP)
        assert "BAD_CONFIG" not in r.log and not r.error, r.log[-3000:]
        assert [b.version for b in r.boots] == ["1.0.0", "1.1.0"], r.log[-3000:]
        assert "app: boot confirmed ota_1" in r.log
