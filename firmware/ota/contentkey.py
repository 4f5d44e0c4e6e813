# ota/contentkey.py: the device's content key for encrypted releases (docs/format.md §2.8).
# MIT license; Copyright (c) 2026 otakit contributors
#
# The key (32 bytes) is in the file KEY_FILE that provisioning wrote: the host's content key
# file as it is (otakit.contentkey), one line "otakit-content-key " + 64 lowercase hex digits.
# ota.vet calls take(m) in the check phase, for an encrypted release only: it refuses the release
# (NO_CONTENT_KEY) unless the key's fingerprint is the manifest's key_id, and keeps the key in
# m.crypt for the install (ota.decrypt), so that the install opens no file.
import hashlib

from .errors import ManifestError

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

KEY_FILE = "ota_content.key"
_LINE = const(83)  # the key file's line without its newline
_DOMAIN = b"otakit content key\x00"


def key_id(key):
    # The 8-byte fingerprint of a content key: it names the key, never reveals it.
    return hashlib.sha256(_DOMAIN + key).digest()[:8]


def _load():
    # The key in KEY_FILE; None when it is absent or not one line as above.
    try:
        with open(KEY_FILE, "rb") as f:
            line = f.read(_LINE + 2)
    except OSError:
        return None
    if line[-1:] == b"\n":
        line = line[:-1]
    if len(line) != _LINE or line[:19] != b"otakit-content-key ":
        return None
    from binascii import unhexlify
    try:
        return unhexlify(line[19:]) if line[19:].lower() == line[19:] else None
    except ValueError:
        return None


def take(m):
    # m.crypt becomes (nonce, key_id, key), or ManifestError NO_CONTENT_KEY.
    key = _load()
    if key is None:
        raise ManifestError("NO_CONTENT_KEY", "the payload is encrypted and this device holds "
                            "no content key (%s)" % KEY_FILE)
    if key_id(key) != m.crypt[1]:
        raise ManifestError("NO_CONTENT_KEY", "the payload is encrypted for another content "
                            "key than this device's")
    m.crypt = m.crypt[:2] + (key,)
