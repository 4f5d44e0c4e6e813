"""Signing keys: generate, load, save, key ids, and the device keyring module.

The algorithms (``ed25519``, ``rsa3072-pss-sha256``; docs/format.md §1.1, §3) live one per
module in `otakit.algs`; the key classes here dispatch through its table. Every algorithm signs
the 32-byte manifest digest ``D`` (`otakit.manifest.signed_digest`).

Invariants:
- A private key is only ever written encrypted (PKCS#8, passphrase) unless the caller asks for
  an insecure key explicitly, with mode 0600, and never over an existing file.
- `load_key` never returns None: a key that needs a passphrase and got none raises
  ``KeyFileError(reason="PASSWORD_REQUIRED")``; a wrong passphrase raises ``BAD_PASSPHRASE``.
"""

from __future__ import annotations

import ast
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from otakit import algs
from otakit.errors import KeyFileError

ED25519 = algs.ed25519.NAME
RSA_PSS = algs.rsa_pss.NAME
ALGORITHMS = tuple(algs.ALGS)
# Envelope algorithm ids (docs/format.md §1) and signature lengths.
ALG_IDS = {name: m.ALG_ID for name, m in algs.ALGS.items()}
SIG_LENGTHS = {name: m.SIG_LEN for name, m in algs.ALGS.items()}
PASSPHRASE_ENV = "OTAKIT_KEY_PASSPHRASE"

_PEM = serialization.Encoding.PEM
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def key_id_of(raw: bytes) -> bytes:
    """The 8-byte key id of a raw public key: ``SHA-256(raw)[0:8]``."""
    return hashlib.sha256(raw).digest()[:8]


class PublicKey:
    """A public key of one of the supported algorithms (`otakit.algs`).

    Attributes:
        alg: the algorithm name, e.g. ``"ed25519"`` or ``"rsa3072-pss-sha256"``.
        raw: the raw public key (e.g. a 32-byte point or a 384-byte modulus).
        key_id: ``SHA-256(raw)[0:8]``.
    """

    def __init__(self, key: Any) -> None:
        """Wrap a `cryptography` public key; refuse any other kind or size."""
        self._alg = algs.of_key(key)
        self.alg: str = self._alg.NAME
        self.raw: bytes = self._alg.raw_public(key)
        self._public = key
        self.key_id = key_id_of(self.raw)

    @property
    def key_id_hex(self) -> str:
        """The key id as 16 lowercase hex digits."""
        return self.key_id.hex()

    @classmethod
    def from_raw(cls, alg: str, raw: bytes) -> PublicKey:
        """Build a public key from its raw form as stored in a keyring (docs/format.md §3).

        Raises:
            KeyFileError: unknown algorithm or a raw key of the wrong length.
        """
        m = algs.ALGS.get(alg)
        if m is not None and len(raw) == m.RAW_LEN:
            return cls(m.public_from_raw(raw))
        raise KeyFileError(f"not a raw {alg} public key ({len(raw)} bytes)", reason="BAD_KEY")

    def verify(self, digest: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's signature over the 32-byte ``digest``."""
        return self._alg.verify(self._public, digest, signature)

    def public_pem(self) -> bytes:
        """The SubjectPublicKeyInfo PEM encoding."""
        return self._public.public_bytes(_PEM, _SPKI)

    def public_key(self) -> PublicKey:
        """The public half (itself, for a public key)."""
        return PublicKey(self._public)


class PrivateKey(PublicKey):
    """A signing key; also usable wherever a `PublicKey` is."""

    def __init__(self, key: Any) -> None:
        """Wrap a `cryptography` private key; refuse any other kind or size."""
        algs.of_key(key, private=True)
        super().__init__(key.public_key())
        self._private = key

    def sign(self, digest: bytes) -> bytes:
        """Sign the 32-byte manifest digest ``D`` (docs/format.md §1.1)."""
        return self._alg.sign(self._private, digest)

    def private_pem(self, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted with ``passphrase`` (None: unencrypted, for tests only)."""
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase
            else serialization.NoEncryption())
        return self._private.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, enc)


def normalize_alg(name: str) -> str:
    """Map a CLI spelling (``rsa3072-pss``, ``rsa``, ``ed25519``) to an algorithm name.

    Raises:
        KeyFileError: an unknown algorithm.
    """
    return algs.normalize(name)


def generate_key(alg: str = RSA_PSS) -> PrivateKey:
    """Generate a new signing key of algorithm ``alg`` (a name or CLI spelling)."""
    return PrivateKey(algs.ALGS[normalize_alg(alg)].generate())


def passphrase_from_env() -> bytes | None:
    """The passphrase in ``$OTAKIT_KEY_PASSPHRASE``, or None when unset or empty."""
    value = os.environ.get(PASSPHRASE_ENV, "")
    return value.encode() if value else None


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror}", reason="NO_KEY") from e


def load_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> PublicKey:
    """Load a PEM key file: a private key (returns `PrivateKey`) or a public key (`PublicKey`).

    Args:
        path: a PKCS#8 / traditional private key PEM, or a SubjectPublicKeyInfo PEM.
        passphrase: for an encrypted private key.

    Returns:
        A `PrivateKey` for a private key file, else a `PublicKey`. Never None.

    Raises:
        KeyFileError: unreadable or malformed file (``BAD_KEY``), encrypted key and no
            passphrase (``PASSWORD_REQUIRED``), wrong passphrase (``BAD_PASSPHRASE``), or an
            unsupported key type or size (``UNSUPPORTED_KEY``).
    """
    data = _read(Path(path))
    if b"PRIVATE KEY-----" not in data:
        try:
            return PublicKey(serialization.load_pem_public_key(data))  # type: ignore[arg-type]
        except (ValueError, UnsupportedAlgorithm) as e:
            raise KeyFileError(f"{path} is not a PEM public or private key",
                               reason="BAD_KEY") from e
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as e:
        if passphrase is None:
            raise KeyFileError(f"{path} is encrypted: set {PASSPHRASE_ENV} or enter its "
                               "passphrase", reason="PASSWORD_REQUIRED") from e
        raise KeyFileError(f"{path} is not encrypted, but a passphrase was given",
                           reason="NOT_ENCRYPTED") from e
    except ValueError as e:
        if b"ENCRYPTED" in data and passphrase is not None:
            raise KeyFileError(f"wrong passphrase for {path}", reason="BAD_PASSPHRASE") from e
        raise KeyFileError(f"{path} is not a valid PEM private key", reason="BAD_KEY") from e
    except UnsupportedAlgorithm as e:
        raise KeyFileError(f"{path}: unsupported key type", reason="UNSUPPORTED_KEY") from e
    return PrivateKey(key)  # type: ignore[arg-type]


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> PrivateKey:
    """Load a signing key; like `load_key` but a public key file is refused (``NOT_PRIVATE``)."""
    return require_private(load_key(path, passphrase), path)


def require_private(key: PublicKey, where: object) -> PrivateKey:
    """``key`` if it can sign; a public key is refused (``NOT_PRIVATE``), ``where`` names it."""
    if not isinstance(key, PrivateKey):
        raise KeyFileError(f"{where} is a public key; signing needs the private key",
                           reason="NOT_PRIVATE")
    return key


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    except FileExistsError as e:
        raise KeyFileError(f"{path} exists; refusing to overwrite a key", reason="EXISTS") from e
    except OSError as e:
        raise KeyFileError(f"cannot create {path}: {e.strerror}", reason="WRITE_FAILED") from e
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def key_paths(out_dir: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Where `write_keypair` puts a key pair: ``DIR/NAME.pem`` and ``DIR/NAME.pub.pem``."""
    d = Path(out_dir)
    return d / f"{name}.pem", d / f"{name}.pub.pem"


def write_keypair(key: PrivateKey, out_dir: str | os.PathLike[str], name: str,
                  passphrase: bytes | None) -> tuple[Path, Path]:
    """Write the private key (mode 0600, never over an existing file) and its public key.

    Args:
        key: the key to write.
        out_dir: created if missing (mode 0700).
        name: the file stem.
        passphrase: encrypts the private key; None writes it unencrypted (callers must have
            asked the user for that explicitly).

    Returns:
        ``(private_path, public_path)``.

    Raises:
        KeyFileError: either file exists (``EXISTS``), or a write failed.
    """
    priv, pub = key_paths(out_dir, name)
    for p in (priv, pub):
        if p.exists():
            raise KeyFileError(f"{p} exists; refusing to overwrite a key", reason="EXISTS")
    Path(out_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    _create_exclusive(priv, key.private_pem(passphrase), 0o600)
    _create_exclusive(pub, key.public_pem(), 0o644)
    return priv, pub


def dedupe(keys: Iterable[PublicKey]) -> list[PublicKey]:
    """Public halves of ``keys``, one per key id, first occurrence kept, order preserved."""
    seen: dict[bytes, PublicKey] = {}
    for k in keys:
        seen.setdefault(k.key_id, k.public_key())
    return list(seen.values())


def _bytes_literal(b: bytes) -> str:
    return 'b"' + "".join(f"\\x{c:02x}" for c in b) + '"'


ENVS = ("production", "development")


def _key_dict(name: str, keys: list[PublicKey]) -> list[str]:
    lines = [f"{name} = {{"]
    for k in keys:
        lines.append(f"    # {k.alg} key id {k.key_id_hex}")
        lines.append(f'    {_bytes_literal(k.key_id)}: ("{k.alg}", (')
        lines += [f"        {_bytes_literal(k.raw[i:i + 16])}" for i in range(0, len(k.raw), 16)]
        lines.append("    )),")
    lines.append("}")
    return lines


def export_keyring(keys: Iterable[PublicKey], roots: Iterable[PublicKey] = (),
                   threshold: int = 1, env: str = "production") -> str:
    """The device keyring module ``ota_keys.py`` (docs/format.md §3) for ``keys``, deduplicated.

    With ``roots``, the module also names the root keys, the threshold of root signatures a
    keyring document needs (docs/format.md §7) and the firmware's environment; ``keys`` (may
    then be empty) are trusted only until the device accepts its first keyring document.

    Raises:
        KeyFileError: no keys and no roots given, a threshold out of 1..len(roots), or an
            unknown env.
    """
    unique = dedupe(keys)
    root_list = dedupe(roots)
    if not unique and not root_list:
        raise KeyFileError("no keys to export", reason="NO_KEY")
    if env not in ENVS:
        raise KeyFileError(f"env must be one of {', '.join(ENVS)}", reason="BAD_ARGUMENT")
    if root_list and not 1 <= threshold <= len(root_list):
        raise KeyFileError(f"threshold {threshold} needs 1..{len(root_list)} root keys",
                           reason="BAD_ARGUMENT")
    lines = ["# generated by otakit key export; do not edit"] + _key_dict("KEYS", unique)
    if root_list:
        lines += _key_dict("ROOTS", root_list)
        lines += [f"THRESHOLD = {threshold}", f'ENV = "{env}"']
    return "\n".join(lines) + "\n"


def load_keyring_module(path: str | os.PathLike[str]) -> dict[bytes, PublicKey]:
    """Read a keyring module (``ota_keys.py``) without executing it.

    Returns:
        key id -> `PublicKey`.

    Raises:
        KeyFileError: the file has no literal ``KEYS = {...}``, or an entry is malformed or its
            key id does not match its key.
    """
    text = _read(Path(path)).decode("utf-8", "replace")
    try:
        tree = ast.parse(text)
        node = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "KEYS" for t in n.targets))
        entries = ast.literal_eval(node)
    except (SyntaxError, ValueError, StopIteration) as e:
        raise KeyFileError(f"{path} has no literal KEYS = {{...}} keyring",
                           reason="BAD_KEY") from e
    ring: dict[bytes, PublicKey] = {}
    for kid, value in dict(entries).items():
        alg, raw = value
        key = PublicKey.from_raw(alg, raw)
        if key.key_id != kid:
            raise KeyFileError(f"{path}: key id {kid.hex()} does not match its key "
                               f"({key.key_id_hex})", reason="BAD_KEY")
        ring[kid] = key
    return ring


def load_trust_module(path: str | os.PathLike[str]) -> tuple[dict[bytes, PublicKey],
                                                               dict[bytes, PublicKey], int, str]:
    """Read ``KEYS``, ``ROOTS``, ``THRESHOLD`` and ``ENV`` of a keyring module (not executed).

    Missing ROOTS/THRESHOLD/ENV read as ``{}``, 1 and ``"production"`` (as on the device).

    Raises:
        KeyFileError: as `load_keyring_module`.
    """
    keys = load_keyring_module(path)
    tree = ast.parse(_read(Path(path)).decode("utf-8", "replace"))
    values: dict[str, object] = {}
    for n in tree.body:
        if isinstance(n, ast.Assign):
            for t in n.targets:
                if isinstance(t, ast.Name) and t.id in ("ROOTS", "THRESHOLD", "ENV"):
                    values[t.id] = ast.literal_eval(n.value)
    roots = {}
    for kid, (alg, raw) in dict(values.get("ROOTS", {})).items():  # type: ignore[call-overload]
        roots[kid] = PublicKey.from_raw(alg, raw)  # pyright: ignore[reportArgumentType]
    return (keys, roots, int(values.get("THRESHOLD", 1)),  # type: ignore[call-overload]
            str(values.get("ENV", "production")))
