"""The example door lock's local interface, driven as its user would: a device-side client that
talks HTTP to the app's own server over the simulated board's TCP/IP (loopback), before the app's
update loop starts (shared by tests/device/test_doorlock*.py)."""

from __future__ import annotations

import json
import re
import socket

from otakit.sim.runner import RunResult

# OTAKIT_LOCAL: the requests ("POST /settings?auto_install=off", "GET /info", ...), one per
# line, sent before the app's first check at every boot. Each answer is one line:
# LOCAL <request> <JSON: the answer's status line and body>.
CLIENT = """\
import asyncio, doorlock, json, os
REQS = [r for r in os.getenv("OTAKIT_LOCAL", "").split("\\n") if r]
PORT = json.load(open("ota_config.json"))["local_port"]

async def ask(req):
    r, w = await asyncio.open_connection("127.0.0.1", PORT)
    w.write(req.encode() + b" HTTP/1.0\\r\\nHost: lock\\r\\n\\r\\n")
    await w.drain()
    data = b""
    while True:
        more = await r.read(512)
        if not more:
            break
        data += more
    w.close()
    await w.wait_closed()
    head, _, body = data.decode().partition("\\r\\n\\r\\n")
    print("LOCAL %s %s" % (req, json.dumps([head.split("\\r\\n")[0], body])))

make = doorlock.make_updater

def make_updater(*args):
    up = make(*args)
    run = up.run

    async def run_after_the_user(n):
        for req in REQS:
            await ask(req)
        await run(n)
    up.run = run_after_the_user
    return up

doorlock.make_updater = make_updater
doorlock.main()
"""


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(result: RunResult, request: str) -> list[tuple[str, str]]:
    """Every (status line, body) the app's local interface gave ``request``, in order."""
    return [tuple(json.loads(m)) for m in  # type: ignore[misc]
            re.findall(rf"^LOCAL {re.escape(request)} (.*)$", result.log, re.M)]


def info(body: str) -> dict[str, str]:
    """The ``name: value`` lines of a ``GET /info`` answer."""
    return dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
