"""Shared pieces of the end-to-end scenarios on the simulated board (tests/device/test_agent.py,
test_security*.py): a device step script with a settable clock and CA, manifests signed by hand,
and helpers to read what the board did."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from otakit.keys import PrivateKey
from otakit.manifest import sign_manifest
from otakit.manifest_body import body_from_dict
from otakit.sim.lab import PRODUCT, SUPPORT_END, Lab
from otakit.sim.runner import RunResult

HEAP = "128K"
SIZE = 64 * 1024

# Confirm/roll back at boot, then check (and install) `checks` times, printing the agent's status
# as one JSON line after each. cfg "clock": Unix seconds the device clock shows (0: not set;
# absent: the real clock). cfg "ca": a CA file on the board for https. cfg "reset": False to
# stay in the installed-but-not-rebooted state.
STEP = """\
import json, machine, ota
cfg = json.load(open("ota_config.json"))
outcome, detail = ota.boot(checks=(), timeout_ms=5000)
print("BOOT " + outcome)
ca = open(cfg["ca"], "rb").read() if cfg.get("ca") else None
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], channel=cfg["channel"],
                             ca=ca, timeout_ms=cfg.get("timeout_ms", 15000)))
if "clock" in cfg:
    agent.clock = lambda: cfg["clock"]
for i in range(cfg.get("checks", 1)):
    installed = agent.update_sync()
    print("STATUS " + json.dumps(agent.status()))
    if installed and cfg.get("reset", True):
        machine.reset()
"""


def prepare(lab: Lab) -> Lab:
    (lab.work / "step.py").write_text(STEP)
    return lab


def step(lab: Lab, **kw: object) -> RunResult:
    return lab.boot(script=lab.work / "step.py", heapsize=HEAP, **kw)  # type: ignore[arg-type]


def statuses(result: RunResult) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"^STATUS (.*)$", result.log, re.M)]


def last(result: RunResult) -> dict:
    s = statuses(result)
    assert s, result.log
    return s[-1]


def blob_requests(lab: Lab) -> list[tuple[str, str, int]]:
    return [r for r in lab.requests() if "/blobs/" in r[1]]


def otadata(lab: Lab) -> list[tuple[int, str]]:
    return [(e.seq, e.state_name) for e in lab.state().otadata if e.seq != 0xFFFFFFFF]


def manifest_by_hand(lab: Lab, image: bytes, key: PrivateKey | None = None,
                     **overrides: object) -> bytes:
    """Sign a manifest the release command would refuse to make (lower sequence, past expiry,
    another product...), store its payload, and return it (not published). Unless overridden,
    it takes the channel's next revision and the published keyring's version as min_keyring, as
    the release key's holder signing it now would (docs/format.md §2)."""
    sha = hashlib.sha256(image).hexdigest()
    blob = lab.repo.payload_path(sha)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(image)
    body = {"product": PRODUCT, "board": lab.board.name, "chip_id": lab.board.chip_id,
            "channel": lab.channel, "version": "9.9.9", "sequence": 9, "security_version": 0,
            "payload": {"path": f"blobs/sha256/{sha}", "size": len(image), "sha256": sha,
                        "encoding": "raw"},
            "created": int(time.time()), "support_end": SUPPORT_END,
            "revision": lab.next_revision(str(overrides.get("channel", lab.channel))),
            "min_keyring": lab.repo.keyring_version(PRODUCT)}
    for k, v in overrides.items():  # payload_<field> overrides a field of the payload
        if k.startswith("payload_"):
            body["payload"][k[8:]] = v  # type: ignore[index]
        else:
            body[k] = v
    return sign_manifest(body_from_dict(body), key or lab.key)


def publish_by_hand(lab: Lab, image: bytes, key: PrivateKey | None = None,
                    **overrides: object) -> bytes:
    data = manifest_by_hand(lab, image, key, **overrides)
    lab.manifest_path.parent.mkdir(parents=True, exist_ok=True)
    lab.manifest_path.write_bytes(data)
    return data


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
