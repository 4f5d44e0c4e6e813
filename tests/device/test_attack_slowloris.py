"""Issue 15 attack 8 with a real device: while one client holds 300 unfinished requests open
against the lab's server, the real agent on the simulated board still checks, downloads,
installs and confirms an update (the server-only view is tests/host/test_server_attacks.py)."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from urllib.parse import urlsplit

from otakit.appimage import make_app_image
from otakit.connguard import PER_CLIENT
from otakit.sim.lab import Lab
from scenario import SIZE, otadata, prepare, statuses, step

ATTACKERS = 300


def test_attack_slowloris_device_still_updates(tmp_path: Path) -> None:
    with Lab(tmp_path) as lab:
        prepare(lab)
        lab.flash(make_app_image("1.0.0", size=SIZE))
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        port = urlsplit(lab.url).port
        attack = []
        try:
            for _ in range(ATTACKERS):
                s = socket.socket()
                s.bind(("127.0.0.2", 0))  # the attacker: its own loopback address
                s.connect(("127.0.0.1", port))
                with contextlib.suppress(OSError):  # over the cap: already closed
                    s.sendall(b"GET /doorlock/esp32/stable/manifest HTTP/1.1\r\nHost: x\r\nX: ")
                attack.append(s)
            result = step(lab)  # the device, from 127.0.0.1, while the attack holds on
            open_ones = 0
            for s in attack:
                s.setblocking(False)
                try:
                    open_ones += s.recv(1) != b""
                except BlockingIOError:
                    open_ones += 1  # still held open by the server: within the cap
                except OSError:
                    pass
        finally:
            for s in attack:
                s.close()
        assert [b.version for b in result.boots] == ["1.0.0", "1.1.0"], result.log
        assert "BOOT confirmed" in result.log
        assert otadata(lab) == [(1, "VALID"), (2, "VALID")]
        assert statuses(result)[-1]["state"] == "up_to_date"
        # the server held at most its per-client cap of the attacker's connections
        assert open_ones <= PER_CLIENT
