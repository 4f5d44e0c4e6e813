"""Downloads that resume, and network faults at the agent level (docs/reliability.md).

Each scenario runs the real agent on the simulated board against `otakit serve`'s server with a
fault injected (`otakit.sim.faults.Faults`), and judges by what a user would see: the image that
runs, the reason code, and what the device asked the server for (the access log, which records
the body bytes sent for each request).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import random
import re
import struct
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.keys import ED25519
from otakit.server import serve_in_thread, tls_context
from otakit.sim.faults import Faults
from otakit.sim.lab import Lab
from otakit.sim.oracle import lab_kept_progress
from otakit.sim.runner import RunResult

HEAP = "128K"
SIZE = 96 * 1024
BLOCK = 4096
SAVED_EVERY = 64 * 1024  # the resume point is persisted this often (ota.download)

# Confirm/roll back, then up to `attempts` update attempts, waiting the policy's delay
# (Policy.after: the agent's one backoff, here from 2 s up to the 3600 s period, no jitter on the
# period) between failed ones (seconds scaled to ms); `sleep` deep-sleeps between attempts
# instead (one per boot).
SCRIPT = """\
import json, machine, ota, time
from ota.policy import Policy
from ota.settings import Settings
outcome, detail = ota.boot(checks=(), timeout_ms=5000)
print("BOOT " + outcome)
cfg = json.load(open("ota_config.json"))
ca = open(cfg["ca"], "rb").read() if cfg.get("ca") else None
agent = ota.Agent(ota.Config(cfg["url"], cfg["product"], cfg["board"], ca=ca,
                             timeout_ms=cfg.get("timeout_ms", 2000)))
policy = Policy(Settings(), check_s=3600, jitter=0, backoff_s=(2, 3600))
for i in range(cfg.get("attempts", 3)):
    installed = agent.update_sync()
    s = agent.status()
    s["delay"] = int(policy.after(s))
    print("STATUS " + json.dumps(s))
    if installed:
        machine.reset()
    if s["state"] != "failed" or s["delay"] >= 3600:  # done, or not to be retried soon
        break
    if cfg.get("sleep"):
        machine.deepsleep(10)
    time.sleep_ms(s["delay"])
"""


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab", alg=ED25519) as the_lab:  # quick to generate
        (the_lab.work / "step.py").write_text(SCRIPT)
        the_lab.flash(make_app_image("1.0.0", size=SIZE))
        the_lab.new = make_app_image("1.1.0", size=SIZE, seed="new")  # type: ignore[attr-defined]
        the_lab.publish(the_lab.new, "1.1.0", 2)  # type: ignore[attr-defined]
        yield the_lab


def step(lab: Lab, **kw: object) -> RunResult:
    return lab.boot(script=lab.work / "step.py", heapsize=HEAP, max_boots=12,
                    **kw)  # type: ignore[arg-type]


def statuses(result: RunResult) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"^STATUS (.*)$", result.log, re.M)]


def blob_log(lab: Lab) -> list[tuple[int, int]]:
    """(status, body bytes sent) of every payload request, from the server's access log."""
    out = []
    for line in lab.access_log.getvalue().splitlines():
        parts = line.split()
        if len(parts) >= 6 and "/blobs/" in parts[3]:
            out.append((int(parts[4]), int(parts[5])))
    return out


def kept(lab: Lab) -> int:
    """The resume point the board keeps for the new image's raw payload (ota.state)."""
    new = lab.new  # type: ignore[attr-defined]
    return lab_kept_progress(lab, hashlib.sha256(new).digest()[:8], len(new))


def updated(lab: Lab, result: RunResult) -> bool:
    return result.last.version == "1.1.0" and "BOOT confirmed" in result.log and \
        lab.nvs().get("seq") == 2


def unchanged(lab: Lab, result: RunResult) -> bool:
    st = lab.state()
    return all(b.version == "1.0.0" for b in result.boots) and st.next_boot == "ota_0" and \
        [(e.seq, e.state_name) for e in st.otadata if e.valid] == [(1, "VALID")]


# --- resume ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_lost_connection_resumes_losing_less_than_a_block(lab: Lab, seed: int) -> None:
    drop = random.Random(seed).randrange(20_000, 45_000)  # not a block boundary
    lab.faults.drop_after = drop
    lab.faults.reset = seed == 2
    lab.faults.only = "/blobs/"
    lab.provision(attempts=8)
    result = step(lab)
    assert updated(lab, result), result.log
    log = blob_log(lab)
    interruptions = len(log) - 1
    assert interruptions >= 2 and [s for s, _ in log] == [200] + [206] * interruptions
    again = sum(n for _, n in log) - len(lab.new)  # type: ignore[attr-defined]
    assert 0 <= again <= BLOCK * interruptions  # the metric: ≤ one block per interruption
    resumed = [s["resumed_from"] for s in statuses(result) if s.get("resumed_from")]
    assert resumed and all(r % BLOCK == 0 for r in resumed)


@pytest.mark.parametrize(("during", "resumed"), [(0.3, False), (0.85, True)])
def test_power_cut_mid_download_resumes_from_flash(lab: Lab, during: float, resumed: bool) -> None:
    new = lab.new  # type: ignore[attr-defined]
    golden_ops = 2 * (len(new) // BLOCK)  # ~ the download: every block erase + program
    cut = int(golden_ops * during)  # 0.3: before the first 64 KB is saved, 0.85: after it
    first = step(lab, cut_at=cut, restart_after_cut=False)
    assert first.ended == "power_cut"
    slot = lab.board.partition("ota_1")
    data = lab.flash_path.read_bytes()[slot.offset:slot.offset + len(new)]
    durable = 0
    while durable + BLOCK <= len(new) and data[durable:durable + BLOCK] == new[durable:durable + BLOCK]:
        durable += BLOCK
    result = step(lab)
    assert updated(lab, result), result.log
    status, sent = blob_log(lab)[-1]
    start = len(new) - sent
    assert status == (206 if start else 200) and (start > 0) == resumed
    # at most the blocks after the last 64 KB saved and the block in hand are fetched again
    assert durable - SAVED_EVERY <= start <= durable


@pytest.mark.parametrize("torn", [False, True])
def test_power_cut_at_a_progress_mark(lab: Lab, torn: bool) -> None:
    # The golden run's op trace gives the op that programs mark 0 (the first 64 KB: a 32-byte
    # write at the start of the spare slot's last sector); the power is cut right after it, or
    # during it (the mark torn: its first half programmed).
    new = lab.new  # type: ignore[attr-defined]
    flash = lab.flash_path.read_bytes()
    trace = lab.work / "trace.bin"
    lab.boot(script=lab.work / "step.py", heapsize=HEAP, max_boots=1,
             env={"OTAKIT_SIM_TRACE": str(trace)})
    slot = lab.board.partition("ota_1")
    ops = [struct.unpack_from("<BII", trace.read_bytes(), i)
           for i in range(0, len(trace.read_bytes()), 9)]
    mark = ops.index((1, slot.offset + slot.size - BLOCK, 32)) + 1  # 1-based, as cut_at
    lab.flash_path.write_bytes(flash)
    first = step(lab, cut_at=mark if torn else mark + 1, restart_after_cut=False)
    assert first.ended == "power_cut"
    assert kept(lab) == (0 if torn else SAVED_EVERY)
    result = step(lab)
    assert updated(lab, result), result.log
    status, sent = blob_log(lab)[-1]
    assert (status, len(new) - sent) == ((200, 0) if torn else (206, SAVED_EVERY))


def test_server_ignoring_range_restarts_from_zero(lab: Lab) -> None:
    lab.faults.drop_after = 50_000
    lab.faults.only = "/blobs/"
    lab.provision(attempts=1)
    assert statuses(step(lab))[-1]["reason"] == "SHORT_READ"
    lab.faults.drop_after = None
    lab.faults.ignore_range = True
    result = step(lab)
    assert updated(lab, result), result.log
    assert blob_log(lab)[-1] == (200, len(lab.new))  # type: ignore[attr-defined]


def test_changed_manifest_discards_progress(lab: Lab) -> None:
    lab.faults.drop_after = 50_000
    lab.faults.only = "/blobs/"
    lab.provision(attempts=1)
    step(lab)
    assert kept(lab) == 49152  # the blocks in flash when the connection was lost
    newer = make_app_image("1.2.0", size=SIZE, seed="newer")
    lab.publish(newer, "1.2.0", 3)
    lab.faults.drop_after = None
    result = step(lab)
    assert result.last.version == "1.2.0" and "BOOT confirmed" in result.log, result.log
    assert blob_log(lab)[-1] == (200, len(newer))  # from zero, no Range
    assert statuses(result)[0]["resumed_from"] == 0


def test_deep_sleep_between_attempts_resumes(lab: Lab) -> None:
    lab.faults.drop_after = 40_000
    lab.faults.only = "/blobs/"
    lab.provision(sleep=True, attempts=1)
    result = step(lab)
    assert "deepsleep" in [b.ended for b in result.boots]
    assert [b.reason for b in result.boots][1:3] == ["deepsleep", "deepsleep"]
    assert updated(lab, result), result.log
    assert sum(n for _, n in blob_log(lab)) - len(lab.new) < 3 * BLOCK  # type: ignore


# --- network faults: updated, or unchanged with a clear reason ---------------------------------

FAULTS = {
    # name: (faults, settings, expected reason or None for "updated", retried with backoff)
    "connection reset at a random offset": (
        Faults(drop_after=random.Random(7).randrange(30_000, 50_000), reset=True,
               only="/blobs/"), {"attempts": 5}, None, True),
    "stall past the timeout": (Faults(stall_seconds=2.0, only="/blobs/"),
                               {"timeout_ms": 500, "attempts": 2}, "TIMEOUT", True),
    "slow drip": (Faults(drip=(2048, 0.002), only="/blobs/"), {}, None, False),
    "truncated, correct Content-Length": (Faults(drop_after=60_000, only="/blobs/"), {}, None,
                                          True),
    "truncated, lying Content-Length": (Faults(truncate_to=60_000, only="/blobs/"), {},
                                        "HASH_MISMATCH", False),
    "500": (Faults(fail_status=500), {}, "HTTP", True),
    "503 with Retry-After": (Faults(fail_status=503, retry_after="3"), {"attempts": 2}, "HTTP",
                             True),
    "Range ignored": (Faults(ignore_range=True), {}, None, False),
    "garbage bytes": (Faults(garbage_at=70_000, only="/blobs/"), {"attempts": 1},
                      "HASH_MISMATCH", False),
    "redirect loop": (Faults(redirect_loop=True), {"attempts": 1}, "HTTP", True),
    "unresolvable host": (Faults(), {"url": "http://no-such-host.invalid/repo", "attempts": 1},
                          "NETWORK", True),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_network_fault(lab: Lab, name: str) -> None:
    faults, settings, reason, backoff = FAULTS[name]
    for k, v in vars(faults).items():
        setattr(lab.faults, k, v)
    if settings:
        lab.provision(**settings)
    result = step(lab)
    last = statuses(result)[-1]
    if reason is None:
        assert updated(lab, result), result.log
        assert last["state"] == "up_to_date"
    else:
        assert unchanged(lab, result), result.log
        assert (last["state"], last["reason"]) == ("failed", reason), last
        assert last["detail"]
    failed = [s for s in statuses(result) if s["state"] == "failed"]
    if backoff and failed:
        assert all(1 <= s["delay"] <= 3600 for s in failed)
        if len(failed) > 1 and name != "503 with Retry-After":
            assert failed[1]["delay"] >= failed[0]["delay"]  # 1-2 s, then 2-4 s (jitter)
    if name == "503 with Retry-After":
        assert all(s["delay"] >= 3 for s in failed)  # never sooner than the server asked
    if name == "garbage bytes":
        assert "d_off" not in lab.nvs()  # progress over bad bytes is discarded
        assert kept(lab) == 0
    if not backoff:
        assert all(s["delay"] == 3600 for s in failed)  # not the network's fault: no hurry


def _certs(d: Path, host: str) -> tuple[Path, Path, Path, Path]:
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = dt.datetime.now(dt.UTC)

    def cert(cn: str, issuer: str, pub: ec.EllipticCurvePublicKey,
             key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
             .public_key(pub).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1))
             .not_valid_after(now + dt.timedelta(days=30)))
        return b

    cas = []
    for label in ("ca", "other"):
        k = ec.generate_private_key(ec.SECP256R1())
        c = cert(label, label, k.public_key(), k).add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(
            k, hashes.SHA256())
        (d / f"{label}.der").write_bytes(c.public_bytes(serialization.Encoding.DER))
        cas.append((k, d / f"{label}.der"))
    sk = ec.generate_private_key(ec.SECP256R1())
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    sc = cert(host, "ca", sk.public_key(), cas[0][0]).add_extension(
        x509.SubjectAlternativeName([san]), critical=False).sign(cas[0][0], hashes.SHA256())
    (d / "cert.pem").write_bytes(sc.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(sk.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return cas[0][1], cas[1][1], d / "cert.pem", d / "key.pem"


@pytest.mark.parametrize("case", ["right", "wrong CA", "wrong hostname"])
def test_tls(lab: Lab, tmp_path: Path, case: str) -> None:
    ca, other, cert, key = _certs(tmp_path, "updates.example.com" if case == "wrong hostname"
                                  else "127.0.0.1")
    with serve_in_thread(lab.repo.root, ssl_context=tls_context(cert, key)) as url:
        lab.provision(url=url.rstrip("/"), ca=str(other if case == "wrong CA" else ca),
                      attempts=1)
        result = step(lab)
    last = statuses(result)[-1]
    if case == "right":
        assert result.boots[1].version == "1.1.0", result.log
    else:
        assert unchanged(lab, result), result.log
        assert (last["state"], last["reason"]) == ("failed", "NETWORK") and last["detail"]
