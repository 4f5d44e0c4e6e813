"""Content keys: the AES-256 keys of encrypted payloads (docs/format.md §2.8).

A content key file holds one line: ``otakit-content-key`` and the key as 64 lowercase hex digits.
`otakit key content FILE` writes one (mode 0600, never over an existing file); `otakit release
--encrypt-key FILE` encrypts a release's payload (and its representations) with it; the device
reads the same file as ``ota_content.key`` on its filesystem (``firmware/ota/contentkey.py``),
where `otakit sim flash --content-key FILE` puts it on a simulated board and ``mpremote cp FILE
:ota_content.key`` on a real one. `key_id` is the key's fingerprint, which the manifest carries
so that a device can tell it holds another key (``NO_CONTENT_KEY``) without trying.

Invariant: a key is 32 bytes; a file that is not exactly the format above is refused
(``BAD_KEY``), never read as a shorter or padded key.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from otakit.errors import KeyFileError
from otakit.manifest_body import ENCRYPTED, Payload
from otakit.payloads import encrypt, new_nonce

KEY_LEN = 32
DEVICE_FILE = "ota_content.key"  # where the device keeps it (firmware/ota/contentkey.py)
_TAG = "otakit-content-key"
_DOMAIN = b"otakit content key\x00"
_LINE = re.compile(_TAG + r" ([0-9a-f]{64})\n?")


def new_key() -> bytes:
    """A fresh random content key."""
    return secrets.token_bytes(KEY_LEN)


def key_id(key: bytes) -> str:
    """The key's fingerprint as the manifest's ``payload.key_id``: 16 hex digits of
    SHA-256("otakit content key" NUL || key)."""
    return hashlib.sha256(_DOMAIN + key).digest()[:8].hex()


def write_key_file(path: str | os.PathLike[str], key: bytes) -> Path:
    """Write ``key`` to a new file ``path`` readable by its owner only.

    Raises:
        KeyFileError: the file exists (``EXISTS``) or cannot be written (``WRITE_FAILED``).
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError as e:
        raise KeyFileError(f"{p} exists; refusing to overwrite a key", reason="EXISTS") from e
    except OSError as e:
        raise KeyFileError(f"cannot create {p}: {e.strerror}", reason="WRITE_FAILED") from e
    with os.fdopen(fd, "w") as f:
        f.write(f"{_TAG} {key.hex()}\n")
    return p


def load_key_file(path: str | os.PathLike[str]) -> bytes:
    """The content key in ``path``.

    Raises:
        KeyFileError: missing (``NOT_FOUND``), unreadable (``OS_ERROR``) or not a content key
            file (``BAD_KEY``).
    """
    p = Path(path)
    try:
        text = p.read_bytes()[:200].decode("ascii", "replace")
    except FileNotFoundError as e:
        raise KeyFileError(f"{p}: no such content key file", reason="NOT_FOUND") from e
    except OSError as e:
        raise KeyFileError(f"{p}: cannot read it ({e.strerror})", reason="OS_ERROR") from e
    m = _LINE.fullmatch(text)
    if m is None:
        raise KeyFileError(f"{p} is not a content key file (make one with `otakit key content "
                           "FILE`)", reason="BAD_KEY")
    return bytes.fromhex(m[1])


def key_file_text(path: str | os.PathLike[str]) -> str:
    """The checked text of a content key file, as the device's ``ota_content.key`` holds it.

    Raises:
        KeyFileError: see `load_key_file`.
    """
    return f"{_TAG} {load_key_file(path).hex()}\n"


def encrypted_payload(path_prefix: str, size: int, sha256: str, image: bytes,
                      key: bytes) -> tuple[Payload, bytes]:
    """The manifest's ``payload`` for ``image`` (``size`` bytes, SHA-256 ``sha256``) encrypted
    with ``key`` under a fresh nonce, and the encrypted blob, stored at
    ``<path_prefix>/<its SHA-256>``.

    Raises:
        EncryptError: the image's size is not a multiple of 16 (``BAD_ARGUMENT``).
    """
    nonce = new_nonce()
    blob = encrypt(image, key, nonce)
    blob_sha = hashlib.sha256(blob).hexdigest()
    return Payload(f"{path_prefix}/{blob_sha}", size, sha256, ENCRYPTED, nonce.hex(),
                   key_id(key), blob_sha), blob


__all__ = ["DEVICE_FILE", "KEY_LEN", "encrypted_payload", "key_file_text", "key_id",
           "load_key_file", "new_key", "write_key_file"]
