"""Issue 15, attack 9: a telemetry server that never stops answering.

The agent posts its report through the HTTP client (ota.report -> ota.httpsmall.post), which reads the
reply's status line and headers through its fixed 512-byte line buffer and never reads the body.
A hostile (or broken) report server that sends an endless header line, endless header lines or an
endless body must cost the device neither memory nor the update: the real agent on the simulated
board, its report URL pointed at such a loopback server, still installs and confirms the release,
in the scenario heap, and the same client call ends with a reason code.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from otakit.appimage import make_app_image
from otakit.sim.lab import Lab
from scenario import HEAP, SIZE, statuses

CAP = 64 * 1024 * 1024  # the server gives up after this many bytes per connection

# As scenario.STEP, with the report going to cfg["report"]; after the update the script posts
# once more through the agent's HTTP client to show the reason code the report ends with.
STEP = """\
import asyncio, json, machine, ota
from ota.errors import OTAError
cfg = json.load(open("ota_config.json"))
outcome, detail = ota.boot(checks=(), timeout_ms=5000)
print("BOOT " + outcome)
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"],
                             timeout_ms=3000, report_url=cfg["report"]))
installed = agent.update_sync()
print("STATUS " + json.dumps(agent.status()))
from ota.http import HTTPClient
from ota.httpsmall import post as post_to
async def post():
    try:
        await post_to(HTTPClient(3000), cfg["report"], b"{}", 3000)
        print("REPLY ok")
    except OTAError as e:
        print("REPLY " + e.reason)
asyncio.run(post())
if installed:
    machine.reset()
"""

REPLIES = {
    "endless header line": (b"HTTP/1.1 200 OK\r\nX-Junk: ", b"a" * 4096),
    "endless header lines": (b"HTTP/1.1 200 OK\r\n", b"X-Junk: a\r\n" * 400),
    "endless body": (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", b"{" * 4096),
}


@contextlib.contextmanager
def endless_server(head: bytes, chunk: bytes) -> Iterator[tuple[str, list[int]]]:
    """A loopback server answering every request with ``head`` then ``chunk`` forever (up to CAP
    bytes); yields its URL and the byte count sent so far on each connection it accepted (an
    entry per connection from its accept on, so a connection whose sender is still noticing
    the device's close is counted too)."""
    srv = socket.create_server(("127.0.0.1", 0))
    sent: list[int] = []
    stop = threading.Event()

    def one(conn: socket.socket, i: int) -> None:
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(65536)  # the request (small); the reply does not wait for more
                conn.sendall(head)
                sent[i] = len(head)
                while sent[i] < CAP and not stop.is_set():
                    conn.sendall(chunk)
                    sent[i] += len(chunk)
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            sent.append(0)
            threading.Thread(target=one, args=(conn, len(sent) - 1), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/events", sent
    finally:
        stop.set()
        with contextlib.suppress(OSError):  # wakes the accept() blocked in the thread
            srv.shutdown(socket.SHUT_RDWR)
        srv.close()
        t.join(5)


@pytest.mark.parametrize("kind", list(REPLIES))
def test_attack_unbounded_telemetry_reply(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    with endless_server(*REPLIES[kind]) as (url, sent), Lab(tmp_path / "lab") as lab:
        (lab.work / "step.py").write_text(STEP)
        lab.flash(make_app_image("1.0.0", size=SIZE), report=url)
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        result = lab.boot(script=lab.work / "step.py", heapsize=HEAP, max_boots=2)
        # the update completed and the new image confirmed: the report did not break it
        assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
        assert "BOOT confirmed" in result.log, result.log
        st = statuses(result)
        assert st[0]["state"] == "installed" and st[-1]["state"] == "up_to_date", result.log
        assert "MemoryError" not in result.log and result.boots[-1].ended != "error", result.log
        # a reply the client refuses gives its reason code; an endless body is never read
        want = "ok" if kind == "endless body" else "BAD_RESPONSE"
        assert result.log.count("REPLY " + want) == 2, result.log
        # every report and post went to the server (boot 1: the post, the install's events
        # wait for boot 2: its report, with the trial's outcome, and the post), and none read
        # its reply to the end
        assert len(sent) >= 3 and max(sent) < CAP, sent
