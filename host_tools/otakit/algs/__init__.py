"""Signature algorithms on the host: one module per algorithm, one table the rest dispatches from.

Each module (`ed25519`, `rsa_pss`) holds its algorithm's name, envelope id, signature and raw
public key lengths (docs/format.md §1, §3), its CLI spellings, and its sign, verify, raw key
load/serialise, key generation and PKCS#11 mechanism details. `otakit.keys` and `otakit.hsm`
dispatch through `ALGS`. Adding an algorithm: a module here with the same names, one line in
`ALGS`, plus docs/format.md and the vectors (and the device's own table).
"""

from __future__ import annotations

from types import ModuleType

from otakit.algs import ed25519, rsa_pss
from otakit.errors import KeyFileError

# name -> module; ``otakit keygen`` offers DEFAULT first.
ALGS: dict[str, ModuleType] = {m.NAME: m for m in (ed25519, rsa_pss)}
DEFAULT = rsa_pss.NAME
BY_ID: dict[int, ModuleType] = {m.ALG_ID: m for m in ALGS.values()}
CLI_CHOICES = tuple(m.CLI_NAMES[0] for m in sorted(ALGS.values(), key=lambda m: m.NAME != DEFAULT))
_ALIASES = {alias: m.NAME for m in ALGS.values() for alias in (m.NAME, *m.CLI_NAMES)}


def normalize(name: str) -> str:
    """Map a CLI spelling (``rsa3072-pss``, ``rsa``, ``ed25519``) to an algorithm name.

    Raises:
        KeyFileError: ``UNKNOWN_ALGORITHM``.
    """
    if name not in _ALIASES:
        raise KeyFileError(f"unknown algorithm {name!r} (use {' or '.join(CLI_CHOICES)})",
                           reason="UNKNOWN_ALGORITHM")
    return _ALIASES[name]


def of_key(key: object, private: bool = False) -> ModuleType:
    """The module whose `cryptography` public (or private) key type ``key`` is.

    Raises:
        KeyFileError: ``UNSUPPORTED_KEY`` for any other kind of key.
    """
    for m in ALGS.values():
        if isinstance(key, m.PRIVATE_TYPE if private else m.PUBLIC_TYPE):
            return m
    raise KeyFileError(f"unsupported key type {type(key).__name__}: otakit uses "
                       f"{' or '.join(m.DESCRIPTION for m in ALGS.values())} keys",
                       reason="UNSUPPORTED_KEY")
