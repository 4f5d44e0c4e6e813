"""Helpers for the fleet tests: device ids of simulated boards, and a STEP script with
telemetry."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from otakit.sim.lab import PRODUCT, Lab
from otakit.sim.runner import RunResult

HEAP = "128K"
SIZE = 64 * 1024

# Confirm/roll back at boot, then check (and install) `checks` times, printing the agent's
# status after each, and reset when an install needs a reboot. Telemetry follows the settings
# file's "telemetry" (default on).
STEP = """\
import json, machine, ota
cfg = json.load(open("ota_config.json"))
outcome, detail = ota.boot(checks=(), timeout_ms=5000)
print("BOOT " + outcome)
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"],
                             telemetry=cfg.get("telemetry", True)))
for i in range(cfg.get("checks", 1)):
    installed = agent.update_sync()
    print("DEVICE " + agent.cfg.device_id)
    print("STATUS " + json.dumps(agent.status()))
    if installed:
        machine.reset()
"""


def device_id(uid: bytes, product: str = PRODUCT) -> str:
    """The agent's default pseudonymous id for a board (docs/format.md §2.3)."""
    h = hashlib.sha256(b"otakit-device-id\x00" + product.encode() + b"\x00" + uid)
    return h.hexdigest()[:24]


def rollout_bucket(salt: str, device_id: str) -> int:
    """A device's stable bucket 0-99 in a staged rollout, as docs/format.md §2.3 defines it
    (the device computes it in ota/fleet.py; these tests check the boards agree)."""
    h = hashlib.sha256(salt.encode() + b":" + device_id.encode()).digest()
    return int.from_bytes(h[:4], "big") % 100


def rollout_offers(rollout: Mapping[str, Any] | None, device_id: str) -> bool:
    """Whether a manifest with this ``rollout`` is offered to ``device_id`` (§2.3)."""
    if rollout is None:
        return True
    return (rollout["state"] == "active"
            and rollout_bucket(rollout["salt"], device_id) < rollout["percent"])


def uid_in(salt: str, lo: int, hi: int, start: int = 0) -> bytes:
    """A board uid whose bucket for ``salt`` is in lo..hi-1."""
    for i in range(start, start + 100_000):
        uid = b"\x24\x0a\xc4" + i.to_bytes(3, "big")
        if lo <= rollout_bucket(salt, device_id(uid)) < hi:
            return uid
    raise AssertionError("no uid found")


def step(lab: Lab, **kw: object) -> RunResult:
    return lab.boot(script=lab.work / "step.py", heapsize=HEAP, **kw)  # type: ignore[arg-type]


def statuses(result: RunResult) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"^STATUS (.*)$", result.log, re.M)]


def blob_gets(lab: Lab) -> int:
    return sum(1 for r in lab.requests() if "/blobs/" in r[1])
