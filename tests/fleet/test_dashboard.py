"""The dashboard in a real headless browser: log in with the admin token, read the tables a
person would read, see a rollout flagged; the screenshot goes into docs/fleet.md."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from browser import chromium
from otakit.appimage import make_app_image
from otakit.boards import load_board
from otakit.fleet import Fleet
from otakit.keys import generate_key
from otakit.paths import DOCS_DIR
from otakit.repo import ReleaseRequest, Repository
from otakit.rollout import start
from otakit.server import serve_in_thread
from otakit.telemetry import Event, Report, open_store

TOKEN = "dashboard-admin-token-0123456789"
SCREENSHOT = DOCS_DIR / "fleet-dashboard.png"


def _fleet_history(repo: Repository, store: object) -> None:
    """Two channels; stable 1.4.0 staged at 25% and failing on 3 of 8 devices; beta fine."""
    key = generate_key("ed25519")
    board = load_board("esp32")
    for channel, version, seq in (("stable", "1.3.0", 3), ("stable", "1.4.0", 4),
                                  ("beta", "1.5.0-rc1", 5)):
        repo.publish(ReleaseRequest("doorlock", board, channel, version, seq,
                                    support_end="2031-12-31"),
                     make_app_image(version), key)
    start(repo, ("doorlock", "esp32", "stable"), key, 25)
    now = int(time.time())

    def report(i: int, channel: str, installed: int, *events: Event) -> None:
        dev = hashlib.sha256(b"%d" % i).hexdigest()[:24]
        r = Report(dev, "doorlock", "esp32", channel, installed, events)
        store.add(r, now - 60 * (40 - i))  # type: ignore[attr-defined]

    for i in range(8):  # stable 1.4.0: 5 confirm, 2 roll back, 1 fails to download
        offered = Event("offered", 4, 40, None, "1.4.0")
        if i < 5:
            report(i, "stable", 4, offered, Event("downloaded", 4, 9000),
                   Event("installed", 4, 900), Event("confirmed", 4, 0))
        elif i < 7:
            report(i, "stable", 3, offered, Event("downloaded", 4, 9100),
                   Event("installed", 4, 950), Event("rolled_back", 4, 0, "HEALTH_FAILED"))
        else:
            report(i, "stable", 3, offered, Event("failed", 4, 15000, "HASH_MISMATCH"))
    for i in range(8, 20):  # devices outside the 25% still on 1.3.0
        report(i, "stable", 3, Event("offered", 3, 35, None, "1.3.0"), Event("checked", 0, 30))
    for i in range(20, 24):  # beta: all fine
        report(i, "beta", 5, Event("offered", 5, 33, None, "1.5.0-rc1"),
               Event("downloaded", 5, 8000), Event("installed", 5, 800), Event("confirmed", 5, 0))


@pytest.fixture
def server(tmp_path: Path):
    repo = Repository(tmp_path / "repo")
    store = open_store(str(tmp_path / "fleet.sqlite3"))
    _fleet_history(repo, store)
    fleet = Fleet(store=store, threshold=0.2, min_devices=5)
    with serve_in_thread(repo.root, fleet=fleet, admin_token=TOKEN) as url:
        yield url
    store.close()


def _cells(driver: object, table: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    rows = driver.find_elements(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, f"#{table} tbody tr")
    return [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]


def test_dashboard_in_a_real_browser(server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.wait import WebDriverWait  # noqa: PLC0415

    with chromium() as driver:
        driver.get(server + ".otakit/dashboard")  # type: ignore[attr-defined]
        assert driver.current_url.endswith("/.otakit/login")  # type: ignore[attr-defined]
        token = driver.find_element(By.ID, "token")  # type: ignore[attr-defined]
        token.send_keys("wrong-token-wrong-token")
        driver.find_element(By.ID, "login").click()  # type: ignore[attr-defined]
        wait = WebDriverWait(driver, 20)
        error = wait.until(ec.presence_of_element_located((By.ID, "error")))
        assert error.text == "wrong admin token"
        driver.find_element(By.ID, "token").send_keys(TOKEN)  # type: ignore[attr-defined]
        driver.find_element(By.ID, "login").click()  # type: ignore[attr-defined]
        wait.until(ec.presence_of_element_located((By.ID, "funnel")))
        assert driver.current_url.endswith("/.otakit/dashboard")  # type: ignore[attr-defined]
        assert driver.title == "otakit fleet"  # type: ignore[attr-defined]

        channels = {(r[1], r[2]): r for r in _cells(driver, "channels")}
        assert channels[("stable", "1.4.0")][4:6] == ["active", "25%"]
        assert channels[("stable", "1.4.0")][7] == "FLAGGED"
        assert channels[("beta", "1.5.0-rc1")][4:8] == ["all", "100%", "", "ok"]

        versions = {r[1]: int(r[3]) for r in _cells(driver, "versions")}
        assert versions == {"1.3.0": 15, "1.4.0": 5, "1.5.0-rc1": 4}

        funnel = {r[1]: r for r in _cells(driver, "funnel")}
        assert funnel["1.4.0"][2:10] == ["8", "7", "7", "5", "2", "1",
                                        "38% (3 of 8 devices, 3 networks)", "FLAGGED"]
        assert funnel["1.5.0-rc1"][9] == "ok"
        flagged = driver.find_element(By.CSS_SELECTOR,  # type: ignore[attr-defined]
                                      '#funnel tr[data-release="doorlock/esp32/stable/4"]')
        # a person sees the flag: the row is tinted red, not just labelled
        cell = flagged.find_element(By.TAG_NAME, "td")
        assert cell.value_of_css_property("background-color") == "rgba(255, 235, 233, 1)"
        assert cell.is_displayed()

        reasons = [r[5] for r in _cells(driver, "failures")]
        assert sorted(reasons) == ["HASH_MISMATCH", "HEALTH_FAILED", "HEALTH_FAILED"]
        png = driver.get_screenshot_as_png()  # type: ignore[attr-defined]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / SCREENSHOT.name).write_bytes(png)
    if os.environ.get("OTAKIT_WRITE_DOCS"):  # refresh the picture in docs/fleet.md
        SCREENSHOT.write_bytes(png)


def test_admin_pages_need_the_token(server: str) -> None:
    bad = {"Authorization": "Bearer nope", "Cookie": "otakit_admin=forged"}
    req = urllib.request.Request(server + ".otakit/dashboard", headers=bad)
    with urllib.request.urlopen(req, timeout=10) as resp:  # redirected to the login form
        assert resp.url.endswith("/.otakit/login") and b'id="token"' in resp.read()
    req = urllib.request.Request(server + ".otakit/api/summary", headers=bad)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
    req = urllib.request.Request(server + ".otakit/api/summary",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        doc = json.load(resp)
    flagged = [f for f in doc["funnel"] if f["flagged"]]
    assert [(f["channel"], f["seq"], f["failure_rate"]) for f in flagged] == [("stable", 4, 0.375)]
    # one admin token mechanism (otakit.guard): the same token opens /admin/, the session
    # cookie does not (it is the dashboard's, and only bearer tokens reach /admin/)
    req = urllib.request.Request(server + "admin/status",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp)["manifests"] >= 1
    from otakit.guard import session_value  # noqa: PLC0415

    req = urllib.request.Request(server + "admin/status",
                                 headers={"Cookie": f"otakit_admin={session_value(TOKEN)}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
