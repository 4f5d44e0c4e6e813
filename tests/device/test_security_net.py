"""Network attacks end to end through the agent on the simulated board: a tampering proxy
(man in the middle, malicious mirror), a resume splice, and TLS with a throwaway CA.

Whatever the attacker does, the running slot and the boot target stay as they were.
"""

from __future__ import annotations

import datetime as dt
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from scenario import (SIZE, blob_requests, last, otadata, prepare, publish_by_hand, statuses,
                        step)

from otakit.appimage import make_app_image
from otakit.sim.lab import Lab
from otakit.sim.mitm import TamperProxy


@pytest.fixture
def lab(tmp_path: Path):
    with Lab(tmp_path / "lab") as the_lab:
        prepare(the_lab)
        the_lab.flash(make_app_image("1.0.0", size=SIZE))
        yield the_lab


@pytest.fixture
def mitm(lab: Lab):
    with TamperProxy(lab.url) as proxy:
        lab.provision(url=proxy.url)
        yield proxy


def unchanged(lab: Lab, result) -> None:  # type: ignore[no-untyped-def]
    assert len(result.boots) == 1 and result.last.version == "1.0.0" and result.last.slot == "ota_0"
    assert otadata(lab) == [(1, "VALID")] and lab.state().next_boot == "ota_0"
    assert "t_seq" not in lab.nvs()


def flip_blob_bit(path: str, body: bytes) -> bytes | None:
    if "/blobs/" not in path:
        return None
    b = bytearray(body)
    b[len(b) // 2] ^= 0x10
    return bytes(b)


def test_mitm_bit_flip_in_the_payload_is_refused(lab: Lab, mitm: TamperProxy) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    mitm.rewrite = flip_blob_bit
    result = step(lab)
    assert last(result)["reason"] == "HASH_MISMATCH"
    unchanged(lab, result)


def test_mitm_bit_flip_in_the_manifest_is_refused(lab: Lab, mitm: TamperProxy) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    for index in (5, 8, 20, 60, -3):  # algorithm id, key id, body, body, signature
        def flip(path: str, body: bytes, i: int = index) -> bytes | None:
            if not path.endswith("/manifest"):
                return None
            b = bytearray(body)
            b[i] ^= 0x01
            return bytes(b)
        mitm.rewrite = flip
        result = step(lab)
        assert last(result)["reason"] in ("UNKNOWN_ALGORITHM", "UNKNOWN_KEY", "BAD_SIGNATURE")
        unchanged(lab, result)
    assert blob_requests(lab) == []


def test_mitm_serves_another_releases_payload(lab: Lab, mitm: TamperProxy) -> None:
    other = lab.publish(make_app_image("6.6.6", size=SIZE), "6.6.6", 2)  # same size
    evil = other.payload_path.read_bytes()
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 3)
    mitm.rewrite = lambda path, body: evil if "/blobs/" in path else None
    result = step(lab)
    assert last(result)["reason"] == "HASH_MISMATCH"
    unchanged(lab, result)


def test_mitm_replays_an_old_manifest(lab: Lab, mitm: TamperProxy) -> None:
    lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
    old = lab.manifest_path.read_bytes()
    lab.publish(make_app_image("1.2.0", size=SIZE), "1.2.0", 3)
    step(lab)
    assert lab.nvs()["seq"] == 3
    mitm.rewrite = lambda path, body: old if path.endswith("/manifest") else None
    result = step(lab)
    assert last(result)["reason"] == "OLD_REVISION"  # superseded by the one accepted
    assert result.last.version == "1.2.0" and len(result.boots) == 1
    assert lab.state().next_boot == "ota_1"


def test_resume_splice_is_caught(lab: Lab, mitm: TamperProxy) -> None:
    # Attempt 1 gets a block swapped, then the connection drops after 96 KB (64 KB durable);
    # attempt 2 resumes with genuine bytes. The agent re-hashes what is already in flash on
    # resume, so the spliced block is caught before set_boot().
    size = 160 * 1024
    lab.publish(make_app_image("1.1.0", size=size), "1.1.0", 2)
    spliced = {"done": False}

    def splice(path: str, body: bytes) -> bytes | None:
        if "/blobs/" not in path or spliced["done"]:
            return None
        spliced["done"] = True
        b = bytearray(body)
        b[8192:12288] = bytes(4096)  # block 2 swapped for zeros
        return bytes(b)

    mitm.rewrite = splice
    mitm.drop_after = 96 * 1024
    lab.provision(url=mitm.url, checks=2)
    result = step(lab)
    reasons = [s["reason"] for s in statuses(result)]
    assert reasons[0] in ("SHORT_READ", "NETWORK") and reasons[-1] == "HASH_MISMATCH", reasons
    ranges = [p for p in mitm.seen if "/blobs/" in p]
    assert len(ranges) == 2  # it did resume (a Range request), not start over
    unchanged(lab, result)


# --- TLS ----------------------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certs(d: Path, host: str = "127.0.0.1", expired: bool = False
               ) -> tuple[bytes, bytes, ssl.SSLContext]:
    """(CA DER, another CA's DER, a server context for ``host`` signed by the first CA)."""
    now = dt.datetime.now(dt.UTC)
    cas = []
    for label in ("ca", "other"):
        k = ec.generate_private_key(ec.SECP256R1())
        c = (x509.CertificateBuilder().subject_name(_name(f"otakit test {label}"))
             .issuer_name(_name(f"otakit test {label}")).public_key(k.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=30))
             .not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .sign(k, hashes.SHA256()))
        cas.append((k, c))
    (ca_key, ca), (_, other) = cas
    sk = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    san = (x509.IPAddress(ipaddress.ip_address(host)) if host[0].isdigit()
           else x509.DNSName(host))
    before, after = ((now - dt.timedelta(days=20), now - dt.timedelta(days=10)) if expired
                     else (now - dt.timedelta(days=1), now + dt.timedelta(days=10)))
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject)
            .public_key(sk.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(before).not_valid_after(after)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (d / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "server.key").write_bytes(sk.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d / "server.pem", d / "server.key")
    der = serialization.Encoding.DER
    return ca.public_bytes(der), other.public_bytes(der), ctx


def tls_lab(tmp_path: Path, host: str = "127.0.0.1", expired: bool = False):  # type: ignore[no-untyped-def]
    tmp_path.mkdir(parents=True, exist_ok=True)
    ca, other, ctx = make_certs(tmp_path, host, expired)
    (tmp_path / "ca.der").write_bytes(ca)
    (tmp_path / "other.der").write_bytes(other)
    return Lab(tmp_path / "lab", ssl_context=ctx)


def _tls_step(lab: Lab, ca: Path, **settings: object):  # type: ignore[no-untyped-def]
    lab.provision(ca=str(ca), **settings)
    return step(lab)


def test_tls_update_end_to_end_with_the_configured_ca(tmp_path: Path) -> None:
    with tls_lab(tmp_path) as lab:
        assert lab.url.startswith("https://")
        prepare(lab)
        lab.flash(make_app_image("1.0.0", size=SIZE))
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        result = _tls_step(lab, tmp_path / "ca.der")
        assert "BOOT confirmed" in result.log, result.log
        assert result.last.version == "1.1.0"


def test_tls_wrong_ca_wrong_host_and_no_ca_are_refused(tmp_path: Path) -> None:
    with tls_lab(tmp_path, host="updates.example.com") as lab:
        prepare(lab)
        lab.flash(make_app_image("1.0.0", size=SIZE))
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        # the certificate names updates.example.com, the device connects to 127.0.0.1
        r = _tls_step(lab, tmp_path / "ca.der")
        assert last(r)["reason"] == "NETWORK" and len(r.boots) == 1
        assert lab.requests() == []  # the TLS handshake failed: no request reached the server
    with tls_lab(tmp_path / "b") as lab:
        prepare(lab)
        lab.flash(make_app_image("1.0.0", size=SIZE))
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        r = _tls_step(lab, tmp_path / "b" / "other.der")
        assert last(r)["reason"] == "NETWORK" and len(r.boots) == 1
        lab.provision()  # no CA configured
        r = step(lab)
        assert last(r)["reason"] == "NETWORK" and "CA" in last(r)["detail"]
        assert lab.requests() == []
        assert otadata(lab) == [(1, "VALID")]


def test_tls_date_gives_a_clockless_device_the_time(tmp_path: Path) -> None:
    with tls_lab(tmp_path) as lab:
        prepare(lab)
        lab.flash(make_app_image("1.0.0", size=SIZE))
        publish_by_hand(lab, make_app_image("1.1.0", size=SIZE), sequence=2,
                        expires=int(time.time()) - 60)
        r = _tls_step(lab, tmp_path / "ca.der", clock=0)
        assert last(r)["reason"] == "EXPIRED"  # from the verified server's Date header
        assert blob_requests(lab) == []


def test_tls_expired_certificate(tmp_path: Path) -> None:
    # MicroPython's unix port builds mbedtls with MBEDTLS_HAVE_TIME_DATE, so the certificate's
    # validity dates are checked against the system clock (docs/security.md: on an ESP32 only
    # once its clock is set).
    with tls_lab(tmp_path, expired=True) as lab:
        prepare(lab)
        lab.flash(make_app_image("1.0.0", size=SIZE))
        lab.publish(make_app_image("1.1.0", size=SIZE), "1.1.0", 2)
        r = _tls_step(lab, tmp_path / "ca.der")
        assert last(r)["reason"] == "NETWORK", r.log
        assert "certificate validity has expired" in last(r)["detail"]
        assert lab.requests() == [] and len(r.boots) == 1
