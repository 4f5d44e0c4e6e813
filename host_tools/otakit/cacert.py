"""The CA certificate a device checks its https update server against: read once on the host.

The device takes it as a DER file on its filesystem, named by ``ca`` in ``ota_config.json``
(firmware/ota/buildinfo.py); `otakit sim flash --ca` and `otakit deploy --ca` write it there.
"""

from __future__ import annotations

import os
from pathlib import Path

from otakit.errors import OtakitError

DEVICE_FILE = "ota_ca.der"  # its name on the board unless ota_config.json names another


def der(path: str | os.PathLike[str]) -> bytes:
    """The DER bytes of a CA certificate file (PEM or DER).

    Raises:
        OtakitError: ``BAD_ARGUMENT`` (unreadable, or not an X.509 certificate).
    """
    from cryptography import x509  # noqa: PLC0415 - only when a CA is given
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise OtakitError(f"cannot read the CA certificate {path}: {e.strerror or e}",
                          reason="BAD_ARGUMENT") from e
    try:
        cert = (x509.load_pem_x509_certificate(raw) if b"-----BEGIN" in raw
                else x509.load_der_x509_certificate(raw))
    except ValueError as e:
        raise OtakitError(f"{path} is not an X.509 certificate (PEM or DER): {e}",
                          reason="BAD_ARGUMENT") from e
    return cert.public_bytes(Encoding.DER)


__all__ = ["DEVICE_FILE", "der"]
