"""Telemetry: the agent on simulated boards reports to `otakit serve`; the ingest validates and
bounds every field; the store keeps no address and forgets after the retention limit."""

from __future__ import annotations

import json
import sqlite3
import struct
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fleethelpers import HEAP, SIZE, STEP, device_id, statuses, step
from otakit.appimage import make_app_image
from otakit.errors import OtakitError
from otakit.fleet import Fleet
from otakit.server import serve_in_thread
from otakit.sim.lab import Lab
from otakit.telemetry import MAX_REPORT, open_store, parse_report

UID = b"\x24\x0a\xc4\x00\x00\x01"
TOKEN = "admin-token-for-tests-0123456789"


@pytest.fixture
def lab(tmp_path: Path):
    store = open_store(str(tmp_path / "fleet.sqlite3"))
    with Lab(tmp_path / "lab", fleet=Fleet(store=store), admin_token=TOKEN) as the_lab:
        (the_lab.work / "step.py").write_text(STEP)
        yield the_lab
    store.close()


def events(lab: Lab) -> list[tuple]:
    db = sqlite3.connect(lab.work.parent / "fleet.sqlite3")
    return db.execute("SELECT device, seq, event, reason FROM events ORDER BY rowid").fetchall()


def test_update_reports_the_whole_funnel(lab: Lab) -> None:
    lab.flash(make_app_image("1.0.0", size=SIZE), uid=UID, checks=2)
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    result = step(lab)
    assert result.last.version == "1.1.0", result.log
    me = device_id(UID)
    got = [(e, s, r) for d, s, e, r in events(lab) if d == me]
    assert ("offered", 2, None) in got and ("downloaded", 2, None) in got
    assert ("installed", 2, None) in got and ("confirmed", 2, None) in got
    assert got[-1] == ("checked", 0, "up_to_date")
    assert got.index(("installed", 2, None)) < got.index(("confirmed", 2, None))
    assert lab.nvs().get("rpt") is None  # the confirm was reported, then forgotten
    store = lab.fleet.store  # type: ignore[union-attr]
    assert store.device_versions() == [("doorlock", "esp32", 2, 1)]
    assert store.versions()[("doorlock", "esp32", 2)] == "1.1.0"
    posts = [r for r in lab.requests() if r[0] == "POST"]
    assert posts and all(r == ("POST", "/.otakit/events", 204) for r in posts)
    log = lab.access_log.getvalue()
    assert all(" - POST /.otakit/events" in line for line in log.splitlines() if "POST" in line)
    dump = "\n".join(sqlite3.connect(lab.work.parent / "fleet.sqlite3").iterdump())
    assert "127.0.0.1" not in dump and UID.hex() not in dump  # no address, no MAC


def test_an_install_reports_its_events_after_the_reboot_in_one_request(lab: Lab) -> None:
    # A successful install posts nothing: its events wait in NVS ("ins") through the reboot
    # and go with the trial's outcome, in the order they happened.
    lab.flash(make_app_image("1.0.0", size=SIZE), uid=UID)
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    assert "INSTALLED" in lab.install_once(HEAP).log
    assert [r for r in lab.requests() if r[0] == "POST"] == []
    assert struct.unpack_from("<i", lab.nvs()["ins"])[0] == 2
    result = step(lab)
    assert [b.version for b in result.boots] == ["1.1.0"]
    got = [(e, s) for _, s, e, _ in events(lab)]
    assert got == [("offered", 2), ("downloaded", 2), ("installed", 2), ("confirmed", 2),
                   ("checked", 0)]
    assert [r[:2] for r in lab.requests() if r[0] == "POST"] == [("POST", "/.otakit/events")]
    assert "ins" not in lab.nvs() and "rpt" not in lab.nvs()


@pytest.mark.parametrize("record", [b"\x02\x00", struct.pack("<4i", 0, 1, 2, 3),
                                    struct.pack("<4i", 2, 1, 2, -5),
                                    struct.pack("<4i", 2, 1, 2, 3) + b"\xff\xfe"])
def test_a_malformed_install_record_is_dropped_not_sent(lab: Lab, record: bytes) -> None:
    lab.flash(make_app_image("1.0.0", size=SIZE), uid=UID)
    (lab.work / "bad.py").write_text(
        "import esp32\nesp32.NVS('otakit').set_blob('ins', %r)\n" % record + STEP)
    result = lab.boot(script=lab.work / "bad.py", heapsize=HEAP)  # nothing published: 404
    assert statuses(result)[-1]["reason"] == "HTTP", result.log
    got = [(e, s, r) for _, s, e, r in events(lab)]
    if record[16:] == b"\xff\xfe":  # a version that is not UTF-8: the events go without it
        assert got == [("offered", 2, None), ("downloaded", 2, None), ("installed", 2, None),
                       ("failed", 0, "HTTP")]
    else:
        assert got == [("failed", 0, "HTTP")]
    assert "ins" not in lab.nvs()  # forgotten once the report went


def test_an_install_whose_events_find_no_heap_still_stands(lab: Lab) -> None:
    # The trial is armed when the events are kept: running out of heap there must not turn
    # the install into a failure (the board would boot the new image all the same).
    lab.flash(make_app_image("1.0.0", size=SIZE), uid=UID)
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    (lab.work / "noheap.py").write_text(
        "import ota.state\n"
        "def keep_install(self, *a):\n"
        "    raise MemoryError('memory allocation failed (injected)')\n"
        "ota.state.State.keep_install = keep_install\n" + STEP)
    result = lab.boot(script=lab.work / "noheap.py", heapsize=HEAP)
    assert statuses(result)[0]["state"] == "installed", result.log
    assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
    assert "ins" not in lab.nvs()


def test_rollback_and_failure_are_reported_with_reasons(lab: Lab) -> None:
    lab.flash(make_app_image("1.0.0", size=SIZE), uid=UID)
    lab.publish(make_app_image("1.2.0", size=SIZE, behaviour="crash"), "1.2.0", 2)
    step(lab)
    got = [(e, s, r) for _, s, e, r in events(lab)]
    assert ("rolled_back", 2, "ROLLED_BACK") in got
    pub = lab.publish(make_app_image("1.3.0", size=SIZE), "1.3.0", 3)
    data = bytearray(pub.payload_path.read_bytes())
    data[SIZE // 2] ^= 1
    pub.payload_path.write_bytes(bytes(data))
    result = step(lab)
    assert statuses(result)[-1]["reason"] == "HASH_MISMATCH"
    got = [(e, s, r) for _, s, e, r in events(lab)]
    assert ("failed", 3, "HASH_MISMATCH") in got
    fails = lab.fleet.store.recent_failures()  # type: ignore[union-attr]
    assert {"HASH_MISMATCH", "ROLLED_BACK"} <= {f["reason"] for f in fails}


def test_opt_out_sends_nothing(lab: Lab) -> None:
    lab.flash(make_app_image("1.0.0", size=SIZE), uid=UID, telemetry=False)
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    assert step(lab).last.version == "1.1.0"
    assert [r for r in lab.requests() if r[0] == "POST"] == []
    assert events(lab) == []


def test_an_unreachable_or_refusing_server_never_breaks_an_update(tmp_path: Path) -> None:
    with Lab(tmp_path / "lab") as lab:  # no fleet: the report gets a 404
        (lab.work / "step.py").write_text(STEP)
        lab.flash(make_app_image("1.0.0", size=SIZE), uid=UID)
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        result = step(lab)
        assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"]
        assert statuses(result)[-1]["state"] == "up_to_date"
        assert ("POST", "/.otakit/events", 404) in lab.requests()
        assert (lab.nvs()["rpt"], lab.nvs()["rpt_e"]) == (2, b"confirmed")  # kept for a later report
        assert struct.unpack_from("<i", lab.nvs()["ins"])[0] == 2  # the install's events too


GOOD = {"v": 1, "id": "0123456789abcdef01234567", "product": "door", "board": "esp32",
        "channel": "stable", "seq": 3,
        "events": [{"e": "failed", "seq": 4, "ms": 1200, "reason": "HASH_MISMATCH"},
                   {"e": "offered", "seq": 4, "ms": 30, "ver": "1.4.0"}]}


def _with(**kw: object) -> dict:
    return {**GOOD, **kw}


@pytest.mark.parametrize("doc", [
    _with(v=2), _with(v=True), _with(id="short"), _with(id="x" * 65), _with(id="a b c d e f g"),
    _with(product="Door"), _with(board=""), _with(channel="a/b"), _with(seq=-1), _with(seq=2**31),
    _with(seq=1.0), _with(seq=True), _with(events={}), _with(events=[{"e": "x"}] * 17),
    _with(events=[{"e": "hacked", "seq": 1, "ms": 1}]),
    _with(events=[{"e": "failed", "seq": 1, "ms": 86_400_001}]),
    _with(events=[{"e": "failed", "seq": 1, "ms": 1, "reason": "<script>"}]),
    _with(events=[{"e": "offered", "seq": 1, "ms": 1, "ver": "x" * 33}]),
    _with(events=[{"e": "offered", "seq": 1, "ms": 1, "ver": "a\nb"}]),
    _with(events=[{"e": "offered", "seq": 1}]), _with(events=["offered"]),
], ids=lambda d: json.dumps(d)[-60:])
def test_ingest_refuses_each_bad_field(doc: dict) -> None:
    with pytest.raises(OtakitError) as e:
        parse_report(json.dumps(doc).encode())
    assert e.value.reason == "BAD_REPORT"


def test_ingest_accepts_a_good_report_and_ignores_unknown_fields() -> None:
    r = parse_report(json.dumps({**GOOD, "ip": "10.0.0.1", "mac": "24:0a"}).encode())
    assert r.device == GOOD["id"] and len(r.events) == 2 and r.events[0].reason == "HASH_MISMATCH"
    for raw in (b"{not json", b"[1]", b'{"v":1,"x":NaN}', b"\xff", b"x" * (MAX_REPORT + 1)):
        with pytest.raises(OtakitError):
            parse_report(raw)


def _post(url: str, body: bytes, ctype: str = "application/json") -> int:
    req = urllib.request.Request(url + ".otakit/events", data=body, method="POST",
                                 headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a telemetry store lives: a SQLite file, or a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "t.sqlite3")
    return request.getfixturevalue("postgres_url")


def test_ingest_over_http_statuses_and_retention(tmp_path: Path, where: str) -> None:
    (tmp_path / "repo").mkdir()
    store = open_store(where, retention_days=30)
    with serve_in_thread(tmp_path / "repo", fleet=Fleet(store=store)) as url:
        good = json.dumps(GOOD).encode()
        assert _post(url, good) == 204
        assert _post(url, good, "text/plain") == 415
        assert _post(url, b"x" * (MAX_REPORT + 1)) == 413
        assert _post(url, json.dumps(_with(seq="3")).encode()) == 400
        # only the ingest (and the login form) take a POST without the token (otakit.guard)
        req = urllib.request.Request(url + ".otakit/other", data=good, method="POST",
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 405
        # no admin token configured: the dashboard does not exist
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + ".otakit/dashboard", timeout=10)
        assert e.value.code == 404
    assert store.device_versions() == [("door", "esp32", 3, 1)]
    import time  # noqa: PLC0415

    assert store.purge(int(time.time()) + 29 * 86400) == 0
    assert store.purge(int(time.time()) + 31 * 86400) == 3  # 2 events + 1 device
    assert store.device_versions() == [] and store.recent_failures() == []
    store.close()


def _fleet_reports() -> list[tuple[int, bytes]]:
    # (arrival time, report): three devices, two releases, an offer, installs, a failure and a
    # rollback, a device that moved on; the same bytes go to each backend
    def doc(dev: int, seq: int, *events: dict) -> bytes:
        return json.dumps({**GOOD, "id": f"{dev:024x}", "seq": seq, "events": list(events)}
                          ).encode()
    t = 1_790_000_000
    return [
        (t, doc(1, 3, {"e": "offered", "seq": 4, "ms": 20, "ver": "1.4.0"})),
        (t + 1, doc(2, 3, {"e": "installed", "seq": 4, "ms": 9000})),
        (t + 2, doc(1, 4, {"e": "confirmed", "seq": 4, "ms": 5})),
        (t + 3, doc(3, 3, {"e": "failed", "seq": 4, "ms": 700, "reason": "HASH_MISMATCH"})),
        (t + 4, doc(2, 3, {"e": "rolled_back", "seq": 4, "ms": 0, "reason": "HEALTH_FAILED"})),
        (t + 5, doc(2, 3, {"e": "checked", "seq": 0, "ms": 3, "reason": "KNOWN_BAD"})),
    ]


def test_postgresql_store_gives_the_same_figures_as_sqlite(tmp_path: Path,
                                                           postgres_url: str) -> None:
    # docs/fleet.md: a fleet outgrowing one machine points the store at PostgreSQL
    figures = []
    for where in (str(tmp_path / "fleet.sqlite3"), postgres_url):
        store = open_store(where, retention_days=30)
        for t, raw in _fleet_reports():
            store.add(parse_report(raw), t)
        figures.append((store.device_versions(), store.funnel(), store.recent_failures(),
                        store.versions(), store.purge(1_790_000_000 + 30 * 86400 + 3)))
        store.close()
    sqlite, postgres = figures
    assert postgres == sqlite
    versions, funnel, failures, names, purged = postgres
    assert versions == [("door", "esp32", 4, 1), ("door", "esp32", 3, 2)]
    assert [(f["seq"], f["offered"], f["installed"], f["confirmed"], f["failed"],
             f["rolled_back"]) for f in funnel] == [(4, 1, 1, 1, 1, 1)]
    assert [(f["device"][-1], f["event"], f["reason"]) for f in failures] == [
        ("2", "rolled_back", "HEALTH_FAILED"), ("3", "failed", "HASH_MISMATCH")]
    assert names == {("door", "esp32", 4): "1.4.0"}
    assert purged == 3 + 1  # the events before t+3, and device 1, last seen at t+2


def test_a_postgresql_database_that_cannot_be_opened_is_a_clear_error(
        postgres_server: str) -> None:
    url = postgres_server.format(db="no_such_database").replace("postgres@", "postgres:pw@")
    with pytest.raises(OtakitError) as e:
        open_store(url)
    assert e.value.reason == "BAD_ARGUMENT"
    assert "no_such_database" in str(e.value) and ":pw@" not in str(e.value)


def _post_from(url: str, source: str, doc: dict) -> int:
    """POST a report from the loopback address ``source`` (a client on another network)."""
    import http.client  # noqa: PLC0415
    from urllib.parse import urlsplit  # noqa: PLC0415

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10,
                                      source_address=(source, 0))
    conn.request("POST", "/.otakit/events", json.dumps(doc),
                 {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_attack_forged_telemetry(tmp_path: Path) -> None:
    """Unauthenticated reports from one client, however many device ids they forge, never flag
    a release; failures from enough devices on enough networks still do."""
    from otakit.fleet import summary  # noqa: PLC0415

    (tmp_path / "repo").mkdir()
    store = open_store(str(tmp_path / "t.sqlite3"))
    fleet = Fleet(store=store)  # the defaults: 20 %, 3 offered, 3 failed, 2 networks

    def failing(i: int, seq: int) -> dict:
        return {**GOOD, "id": f"forged-device-{i:04d}", "seq": 1,
                "events": [{"e": "offered", "seq": seq, "ms": 30, "ver": "9.9.9"},
                           {"e": "failed", "seq": seq, "ms": 40, "reason": "HASH_MISMATCH"}]}

    def funnel(seq: int) -> dict:
        return next(f for f in summary(tmp_path / "repo", fleet)["funnel"] if f["seq"] == seq)

    with serve_in_thread(tmp_path / "repo", fleet=fleet) as url:
        for _ in range(3):  # the same id three times
            assert _post_from(url, "127.0.0.1", failing(0, 7)) == 204
        for i in range(1, 40):  # forged ids, all from one client
            assert _post_from(url, "127.0.0.1", failing(i, 7)) == 204
        for i in range(40, 60):  # and from its neighbours on the same /24
            assert _post_from(url, f"127.0.0.{i}", failing(i, 7)) == 204
        f = funnel(7)
        assert (f["offered"], f["failed_devices"], f["failed_sources"]) == (60, 60, 1)
        assert not f["flagged"]
        for i, net in enumerate((1, 2, 3)):  # three devices on three networks
            assert _post_from(url, f"127.0.{net}.1", failing(100 + i, 8)) == 204
        f = funnel(8)
        assert (f["failed_devices"], f["failed_sources"], f["flagged"]) == (3, 3, True)
    store.close()
