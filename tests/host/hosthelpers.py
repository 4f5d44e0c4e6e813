"""Helpers shared by the tests/host modules (a unique name: no clash with other conftest.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path


def write_ca_pem(path: Path, name: str = "otakit test ca") -> bytes:
    """A self-signed CA certificate (EC P-256, valid for a day) written as PEM at ``path``;
    returns its DER bytes, what a device is given."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert.public_bytes(serialization.Encoding.DER)
