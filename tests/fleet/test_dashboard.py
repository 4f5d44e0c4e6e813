"""The dashboard in a real headless browser: log in with the admin token, read the tables a
person would read, see a rollout flagged, search a device and read its history, sign out; on a
1280 px desktop and a 390 px phone, with JavaScript on and off, with the screenshots checked;
telemetry that carries HTML shows as text. The desktop screenshot goes into docs/fleet.md
(``OTAKIT_WRITE_DOCS=1``)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from browser import chromium, overflowing, png_size, screenshot_facts
from otakit.appimage import make_app_image
from otakit.boards import load_board
from otakit.dashboard import REFRESH
from otakit.fleet import Fleet, csrf_value
from otakit.guard import session_value
from otakit.keys import generate_key
from otakit.paths import DOCS_DIR
from otakit.repo import ReleaseRequest, Repository
from otakit.rollout import start
from otakit.server import serve_in_thread
from otakit.telemetry import Event, Report, open_store

TOKEN = "dashboard-admin-token-0123456789"
SCREENSHOT = DOCS_DIR / "fleet-dashboard.png"
BACKGROUND = (0xF6, 0xF8, 0xFA)  # the page's background colour (otakit.dashboard.CSS)


def dev_id(i: int) -> str:
    return hashlib.sha256(b"%d" % i).hexdigest()[:24]


def _day(ago: int) -> str:
    t = time.time() - 86400 * ago
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def _fleet_history(repo: Repository, store: object) -> None:
    """Two channels; stable 1.4.0 staged at 25% and failing on 3 of 8 devices; beta fine. The
    reports come in over five days (``ago``: days before today, UTC)."""
    key = generate_key("ed25519")
    board = load_board("esp32")
    for channel, version, seq in (("stable", "1.3.0", 3), ("stable", "1.4.0", 4),
                                  ("beta", "1.5.0-rc1", 5)):
        repo.publish(ReleaseRequest("doorlock", board, channel, version, seq,
                                    support_end="2031-12-31"),
                     make_app_image(version), key)
    start(repo, ("doorlock", "esp32", "stable"), key, 25)
    now = int(time.time())
    midnight = now - now % 86400

    def report(i: int, ago: int, channel: str, installed: int, *events: Event) -> None:
        r = Report(dev_id(i), "doorlock", "esp32", channel, installed, events)
        store.add(r, midnight - 86400 * ago + i)  # type: ignore[attr-defined]

    for i in range(8):  # stable 1.4.0: 5 confirm, 2 roll back, 1 fails to download
        offered = Event("offered", 4, 40, None, "1.4.0")
        if i < 5:  # one a day, today and the four days before
            report(i, 4 - i, "stable", 4, offered, Event("downloaded", 4, 9000),
                   Event("installed", 4, 900), Event("confirmed", 4, 0))
        elif i < 7:  # two days ago and today
            report(i, 2 * (6 - i), "stable", 3, offered, Event("downloaded", 4, 9100),
                   Event("installed", 4, 950), Event("rolled_back", 4, 0, "HEALTH_FAILED"))
        else:  # today
            report(i, 0, "stable", 3, offered, Event("failed", 4, 15000, "HASH_MISMATCH"))
    for i in range(8, 20):  # devices outside the 25% still on 1.3.0
        report(i, i % 7, "stable", 3, Event("offered", 3, 35, None, "1.3.0"),
               Event("checked", 0, 30))
    for i in range(20, 24):  # beta: all fine, yesterday
        report(i, 1, "beta", 5, Event("offered", 5, 33, None, "1.5.0-rc1"),
               Event("downloaded", 5, 8000), Event("installed", 5, 800), Event("confirmed", 5, 0))


# what the "Updates per day" table must say, newest first: (day, succeeded, failed, rates)
DAILY = [
    (0, "1", "2", "33% (1 of 3 devices)", "67% (2 of 3 devices)"),
    (1, "5", "0", "100% (5 of 5 devices)", "0% (0 of 5 devices)"),
    (2, "1", "1", "50% (1 of 2 devices)", "50% (1 of 2 devices)"),
    (3, "1", "0", "100% (1 of 1 device)", "0% (0 of 1 device)"),
    (4, "1", "0", "100% (1 of 1 device)", "0% (0 of 1 device)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("dashboard")
    repo = Repository(tmp / "repo")
    store = open_store(str(tmp / "fleet.sqlite3"))
    _fleet_history(repo, store)
    fleet = Fleet(store=store, threshold=0.2, min_devices=5)
    with serve_in_thread(repo.root, fleet=fleet, admin_token=TOKEN) as url:
        yield url
    store.close()


def _cells(driver: Any, table: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
    return [[td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows]


def _press(driver: Any, element_id: str, keys: str, lands_on: str) -> None:
    """Type ``keys`` and Enter into an element (a form field, a button, a link: what a person
    with a keyboard does; chromedriver's emulated clicks are unreliable on a phone with
    JavaScript off) and wait until the browser is on a URL ending with ``lands_on``."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.wait import WebDriverWait  # noqa: PLC0415

    driver.find_element(By.ID, element_id).send_keys(keys + Keys.ENTER)
    WebDriverWait(driver, 20).until(lambda d: d.current_url.endswith(lands_on))
    WebDriverWait(driver, 20).until(ec.presence_of_element_located((By.TAG_NAME, "footer")))


def _sign_in(driver: Any, url: str) -> None:
    driver.get(url + ".otakit/dashboard")
    assert driver.current_url.endswith("/.otakit/login")
    _press(driver, "token", TOKEN, "/.otakit/dashboard")


def _fits(driver: Any, width: int) -> None:
    """The page is laid out at ``width`` (the viewport meta tag works), nothing scrolls
    sideways and no element sticks out of the viewport."""
    o = overflowing(driver)
    assert o["viewport"] == width, "not laid out at the window's width (or a scrollbar took some)"
    assert o["scrollWidth"] <= o["clientWidth"], o
    assert o["outside"] == []


def _screenshot(driver: Any, width: int) -> bytes:
    """A screenshot a person could use: as wide as asked, not blank, nothing painted into the
    page's right-hand padding (where a too-wide table or a horizontal scrollbar would be)."""
    png = driver.get_screenshot_as_png()
    assert png_size(png)[0] == width
    facts = screenshot_facts(driver, png, BACKGROUND, margin=8)
    assert facts["width"] == width
    assert facts["painted"] > 0.05, facts  # tables and text, not an empty or unstyled page
    assert facts["edge"] == 0, facts
    return png


def test_dashboard_in_a_real_browser(server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.wait import WebDriverWait  # noqa: PLC0415

    with chromium(1280, 1500) as driver:  # the whole page: no vertical scrollbar
        driver.get(server + ".otakit/dashboard")
        assert driver.current_url.endswith("/.otakit/login")
        token = driver.find_element(By.ID, "token")
        token.send_keys("wrong-token-wrong-token")
        driver.find_element(By.ID, "login").click()
        wait = WebDriverWait(driver, 20)
        error = wait.until(ec.presence_of_element_located((By.ID, "error")))
        assert error.text == "wrong admin token"
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "login").click()
        wait.until(ec.presence_of_element_located((By.ID, "funnel")))
        assert driver.current_url.endswith("/.otakit/dashboard")
        assert driver.title == "otakit fleet"
        # it reloads itself, without a script
        refresh = driver.find_element(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]')
        assert refresh.get_attribute("content") == str(REFRESH)
        assert driver.find_elements(By.TAG_NAME, "script") == []

        channels = {(r[1], r[2]): r for r in _cells(driver, "channels")}
        assert channels[("stable", "1.4.0")][4:6] == ["active", "25%"]
        assert channels[("stable", "1.4.0")][7:9] == ["FLAGGED", "8"]  # 8 devices offered
        assert channels[("beta", "1.5.0-rc1")][4:9] == ["all", "100%", "", "ok", "4"]

        versions = {r[1]: (int(r[3]), r[4]) for r in _cells(driver, "versions")}
        assert versions == {"1.3.0": (15, "62% (15 of 24 devices)"),
                            "1.4.0": (5, "21% (5 of 24 devices)"),
                            "1.5.0-rc1": (4, "17% (4 of 24 devices)")}

        funnel = {r[1]: r for r in _cells(driver, "funnel")}
        assert funnel["1.4.0"][2:10] == ["8", "7", "7", "5", "2", "1",
                                        "38% (3 of 8 devices, 3 networks)", "FLAGGED"]
        assert funnel["1.5.0-rc1"][9] == "ok"
        flagged = driver.find_element(By.CSS_SELECTOR,
                                      '#funnel tr[data-release="doorlock/esp32/stable/4"]')
        # a person sees the flag: the row is tinted red, not just labelled
        cell = flagged.find_element(By.TAG_NAME, "td")
        assert cell.value_of_css_property("background-color") == "rgba(255, 235, 233, 1)"
        assert cell.is_displayed()

        reasons = [r[5] for r in _cells(driver, "failures")]
        assert sorted(reasons) == ["HASH_MISMATCH", "HEALTH_FAILED", "HEALTH_FAILED"]

        # success and failure per day: the table, and the chart drawn from the same figures
        assert _cells(driver, "daily") == [[_day(a), *rest] for a, *rest in DAILY]
        chart = driver.find_element(By.ID, "chart")
        assert chart.is_displayed() and chart.size["width"] >= 600
        days = chart.find_elements(By.CSS_SELECTOR, "g.day")
        assert len(days) == 14 and days[-1].get_attribute("data-day") == _day(0)
        heights = {g.get_attribute("data-day"): [
            (r.get_attribute("class"), float(r.get_attribute("height")))
            for r in g.find_elements(By.TAG_NAME, "rect")] for g in days}
        assert [c for c, _ in heights[_day(0)]] == ["ok", "bad"]
        assert heights[_day(1)][0][1] == pytest.approx(5 * heights[_day(0)][0][1], abs=0.5)
        assert heights[_day(7)] == []
        _fits(driver, 1280)
        png = _screenshot(driver, 1280)
    (tmp_path / SCREENSHOT.name).write_bytes(png)
    if os.environ.get("OTAKIT_WRITE_DOCS"):  # refresh the picture in docs/fleet.md
        SCREENSHOT.write_bytes(png)


_SCRIPTED = "data:text/html,<p id=p>off</p><script>p.textContent='on'</script>"


def test_dashboard_on_a_phone_without_javascript(server: str) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    with chromium(390, 844, js=False, phone=True) as driver:
        driver.get(_SCRIPTED)
        assert driver.find_element(By.ID, "p").text == "off"  # JavaScript is off indeed
        _sign_in(driver, server)
        for part in ("channels", "versions", "chart", "daily", "funnel", "failures", "q",
                     "signout"):
            assert driver.find_element(By.ID, part).is_displayed(), part
        # each table row is a card: a cell shows its column's name beside its value
        funnel = driver.find_element(By.CSS_SELECTOR,
                                     '#funnel tr[data-release="doorlock/esp32/stable/4"]')
        rate = funnel.find_elements(By.TAG_NAME, "td")[8]
        assert rate.get_attribute("data-label") == "failure rate"
        assert rate.text == "38% (3 of 8 devices, 3 networks)"
        assert rate.rect["width"] > 300  # one column of cards, not a squeezed table
        assert _cells(driver, "daily")[0] == [_day(0), *DAILY[0][1:]]
        _fits(driver, 390)
        _screenshot(driver, 390)

        # search by id prefix with the header's form, then open a device's history
        prefix = dev_id(5)[:2]
        _press(driver, "q", prefix, f"/.otakit/devices?q={prefix}")
        found = [r[0] for r in _cells(driver, "devices")]
        assert sorted(found) == sorted(d for d in map(dev_id, range(24)) if d.startswith(prefix))
        _fits(driver, 390)
        _press(driver, f"device-{dev_id(5)}", "", f"/.otakit/devices/{dev_id(5)}")
        assert driver.find_element(By.ID, "device").text == dev_id(5)
        assert _cells(driver, "device-info")[0][:3] == ["doorlock/esp32", "stable", "1.3.0"]
        history = [r[1:6] for r in _cells(driver, "history")]
        assert history == [["doorlock/esp32/stable", "4", "1.4.0", e, reason] for e, reason in
                           (("rolled_back", "HEALTH_FAILED"), ("installed", ""),
                            ("downloaded", ""), ("offered", ""))]
        _fits(driver, 390)
        _screenshot(driver, 390)

        # sign out: the session cookie is gone and the dashboard asks for the token again
        _press(driver, "signout", "", "/.otakit/login")
        assert driver.get_cookie("otakit_admin") is None
        _fits(driver, 390)  # the login form too
        driver.get(server + ".otakit/dashboard")
        assert driver.current_url.endswith("/.otakit/login")
        driver.get(_SCRIPTED)
        assert driver.find_element(By.ID, "p").text == "off"  # still off after it all


def test_telemetry_that_carries_html_shows_as_text(tmp_path: Path) -> None:
    """Device ids, versions and reasons are the attacker's: on every page they are text, and the
    longest legal ones still fit a phone."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    (tmp_path / "repo").mkdir()
    store = open_store(str(tmp_path / "fleet.sqlite3"))
    # a version the ingest accepts (printable, at most 32 characters), and a store holding what
    # the ingest would refuse (another store, an older server) in every other field
    evil_id, evil_ver, evil_reason = '"><img id=x1 src=x>', '<i id="x2">v</i>', "<b id=x4>"
    longest = "a" * 64  # no hyphen: nowhere to break a line
    store.add(Report(evil_id, "door", "esp32", "stable", 3, (
        Event("offered", 3, 5, None, evil_ver), Event("failed", 3, 5, evil_reason))),
        int(time.time()))
    with serve_in_thread(tmp_path / "repo", fleet=Fleet(store=store), admin_token=TOKEN) as url:
        doc = {"v": 1, "id": longest, "product": "door", "board": "esp32", "channel": "stable",
               "seq": 4, "events": [{"e": "offered", "seq": 4, "ms": 1, "ver": "9" * 32},
                                    {"e": "confirmed", "seq": 4, "ms": 1}]}
        req = urllib.request.Request(url + ".otakit/events", json.dumps(doc).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 204
        with chromium(390, 844, phone=True) as driver:
            _sign_in(driver, url)
            assert [r[1] for r in _cells(driver, "versions")] == ["9" * 32, evil_ver]
            assert [r[1] for r in _cells(driver, "funnel")] == ["9" * 32, evil_ver]
            failure = _cells(driver, "failures")[0]
            assert failure[1] == evil_id[:12] and failure[5] == evil_reason
            for injected in ("x1", "x2", "x3", "x4"):
                assert driver.find_elements(By.ID, injected) == []
            assert driver.title == "otakit fleet"
            _fits(driver, 390)

            evil_q = "<b id=x3>"
            driver.get(url + ".otakit/devices?q=" + quote(evil_q))
            assert driver.find_element(By.ID, "error").text.startswith("not a device id prefix")
            assert driver.find_element(By.ID, "q").get_attribute("value") == evil_q
            assert driver.find_elements(By.ID, "x3") == []

            driver.get(url + ".otakit/devices/" + longest)
            assert driver.find_element(By.ID, "device").text == longest
            assert [r[3:6] for r in _cells(driver, "history")] == [
                ["9" * 32, "confirmed", ""], ["9" * 32, "offered", ""]]
            _fits(driver, 390)
    store.close()


def _http(url: str, method: str, path: str, headers: dict[str, str],
          body: str | None = None) -> http.client.HTTPResponse:
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, path, body, headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_admin_pages_need_the_token(server: str) -> None:
    bad = {"Authorization": "Bearer nope", "Cookie": "otakit_admin=forged"}
    for page in ("dashboard", "devices?q=5", f"devices/{dev_id(5)}"):
        req = urllib.request.Request(server + ".otakit/" + page, headers=bad)
        with urllib.request.urlopen(req, timeout=10) as resp:  # redirected to the login form
            assert resp.url.endswith("/.otakit/login") and b'id="token"' in resp.read()
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    req = urllib.request.Request(server + f".otakit/devices/{dev_id(5)}", headers=bearer)
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert b"HEALTH_FAILED" in resp.read()
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    req = urllib.request.Request(server + ".otakit/devices/no-such-device", headers=bearer)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 404
    req = urllib.request.Request(server + ".otakit/api/summary", headers=bad)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
    req = urllib.request.Request(server + ".otakit/api/summary", headers=bearer)
    with urllib.request.urlopen(req, timeout=10) as resp:
        doc = json.load(resp)
    flagged = [f for f in doc["funnel"] if f["flagged"]]
    assert [(f["channel"], f["seq"], f["failure_rate"]) for f in flagged] == [("stable", 4, 0.375)]
    assert sum(d["succeeded"] for d in doc["daily"]) == 9
    # one admin token mechanism (otakit.guard): the same token opens /admin/, the session
    # cookie does not (it is the dashboard's, and only bearer tokens reach /admin/)
    req = urllib.request.Request(server + "admin/status", headers=bearer)
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp)["manifests"] >= 1
    session = {"Cookie": f"otakit_admin={session_value(TOKEN)}"}
    req = urllib.request.Request(server + "admin/status", headers=session)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401

    # sign-out is a POST carrying the page's csrf field: a form posted from another site (it
    # has the browser's cookie at most, not the field) is refused and the session stays
    form = {**session, "Content-Type": "application/x-www-form-urlencoded"}
    for body in ("", "csrf=" + csrf_value("another-token-0123456789")):
        resp = _http(server, "POST", "/.otakit/logout", form, body)
        assert resp.status == 403 and resp.getheader("Set-Cookie") is None
    resp = _http(server, "GET", "/.otakit/logout", session)  # a link or an image: nothing
    assert resp.status == 404 and resp.getheader("Set-Cookie") is None
    resp = _http(server, "POST", "/.otakit/logout", form, "csrf=" + csrf_value(TOKEN))
    assert resp.status == 303 and resp.getheader("Location") == "/.otakit/login"
    cleared = resp.getheader("Set-Cookie") or ""
    assert cleared.startswith("otakit_admin=") and "Max-Age=0" in cleared
    assert "Path=/.otakit/" in cleared


def _store_figures(store: Any, now: int) -> tuple:
    return (store.find_devices("0000"), store.find_devices("00000000000000000000000b"),
            store.find_devices("x"), store.find_devices(""), store.device("0" * 23 + "b"),
            store.device("nope-nope"), store.device_history("0" * 23 + "b"),
            store.daily(now, 3))


def test_dashboard_queries_agree_on_sqlite_and_postgresql(tmp_path: Path,
                                                          postgres_url: str) -> None:
    now = 1_790_000_000 - 1_790_000_000 % 86400 + 3600  # 01:00 UTC
    figures = []
    for where in (str(tmp_path / "fleet.sqlite3"), postgres_url):
        store = open_store(where)
        for i, ago in ((0xA, 2), (0xB, 2), (0xB, 0), (0xC, 0)):
            events = (Event("offered", 2, 1, None, "2.0"), Event("installed", 2, 9),
                      Event("confirmed" if i != 0xC else "rolled_back", 2, 0,
                            None if i != 0xC else "HEALTH_FAILED"))
            store.add(Report(f"{i:024x}", "door", "esp32", "stable", 2, events),
                      now - 86400 * ago)
        figures.append(_store_figures(store, now))
        store.close()
    sqlite, postgres = figures
    assert postgres == sqlite
    prefixed, exact, none, every, known, unknown, history, daily = sqlite
    # most recently seen first, then by id
    assert [d["device"][-1] for d in prefixed] == ["b", "c", "a"]
    assert [d["device"] for d in exact] == [f"{0xB:024x}"] and none == []
    assert len(every) == 3
    assert known == {"device": f"{0xB:024x}", "product": "door", "board": "esp32",
                     "channel": "stable", "seq": 2, "last_seen": now}
    assert unknown is None
    assert [(h["ts"], h["event"]) for h in history] == [
        (now, "confirmed"), (now, "installed"), (now, "offered"),
        (now - 2 * 86400, "confirmed"), (now - 2 * 86400, "installed"),
        (now - 2 * 86400, "offered")]
    assert [(d["succeeded"], d["failed"], d["devices"]) for d in daily] == [
        (2, 0, 2), (0, 0, 0), (1, 1, 2)]
