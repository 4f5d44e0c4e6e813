"""The manifest body, host side (docs/format.md §2, body revision 3): its dataclasses, and the
checks that parse one (`parse_body`, `body_from_dict`) in the order and with the reason code
(``BAD_BODY``) of the device's ``ota/manifest.py``. The signed envelope around it is
`otakit.manifest`.

Invariant: `ManifestBody.to_bytes` checks the body it serialises with `body_from_dict`, so the
host never signs a body the device would refuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otakit import strictjson
from otakit.errors import ManifestError

INT31 = 2**31 - 1
TIME_MAX = 2**32 - 1
MAX_DEPTH = 16  # deepest JSON nesting accepted in a manifest or keyring body
SEVERITIES = ("low", "medium", "high", "critical")
ROLLOUT_STATES = ("active", "paused", "aborted")
NAME_RE = re.compile(r"[a-z0-9._-]{1,32}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_PATH_RE = re.compile(r"[A-Za-z0-9._~/-]{1,255}")
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _bad(detail: str) -> ManifestError:
    return ManifestError(f"bad manifest body: {detail}", reason="BAD_BODY")


@dataclass(frozen=True)
class Payload:
    """The body's ``payload`` object (docs/format.md §2.1)."""

    path: str
    size: int
    sha256: str
    encoding: str = "raw"
    # an encrypted payload (encoding ENCRYPTED, docs/format.md §2.8): the release's 96-bit
    # nonce (24 hex), the content key's fingerprint (16 hex) and the encrypted blob's SHA-256;
    # None for raw
    nonce: str | None = None
    key_id: str | None = None
    blob_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        d: dict[str, Any] = {"path": self.path, "size": self.size, "sha256": self.sha256,
                             "encoding": self.encoding}
        if self.encoding == ENCRYPTED:
            d.update(nonce=self.nonce, key_id=self.key_id, blob_sha256=self.blob_sha256)
        return d


ENCRYPTED = "aes-256-cbc"  # the encrypted payload's encoding (docs/format.md §2.8)


REPRESENTATIONS = ("deflate", "delta")
MAX_REPRESENTATIONS = 4
CHUNK_MIN, CHUNK_MAX = 4096, 1 << 24  # a representation's chunk: a multiple of CHUNK_MIN


@dataclass(frozen=True)
class Representation:
    """One entry of the body's ``payloads`` list (docs/format.md §2.2): the same image as
    ``payload``, encoded. ``base_size``/``base_sha256`` are set for ``delta`` only. A resumable
    one (body revision 4) has ``chunk`` (image bytes per chunk), ``chunks`` (the encoded length
    of each chunk) and, for ``delta``, ``chunk_bases`` (the base position at each chunk's start
    minus that chunk's image offset); all three are None for one without chunks."""

    encoding: str
    path: str
    size: int
    sha256: str
    wbits: int
    base_size: int | None = None
    base_sha256: str | None = None
    chunk: int | None = None
    chunks: tuple[int, ...] | None = None
    chunk_bases: tuple[int, ...] | None = None
    nonce: str | None = None  # an encrypted release's representation: its own nonce (§2.8)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object."""
        d: dict[str, Any] = {"encoding": self.encoding, "path": self.path, "size": self.size,
                             "sha256": self.sha256, "wbits": self.wbits}
        if self.nonce is not None:
            d["nonce"] = self.nonce
        if self.encoding == "delta":
            d["base_size"] = self.base_size
            d["base_sha256"] = self.base_sha256
        if self.chunk is not None:
            d["chunk"] = self.chunk
            d["chunks"] = list(self.chunks or ())
            if self.encoding == "delta":
                d["chunk_bases"] = list(self.chunk_bases or ())
        return d


@dataclass(frozen=True)
class ManifestBody:
    """The manifest body (docs/format.md §2). Optional fields are None when absent.

    ``security`` is ``{"severity": ..., "risk": ...}``; ``disruption`` is
    ``{"reboot": bool, "seconds": int}``; ``rollout`` is ``{"percent", "salt", "state"}``
    (§2.3); ``sbom`` is ``{"path", "size", "sha256"}`` (§2.4); ``payloads`` holds the encoded
    representations (§2.2). ``extra`` keeps unknown fields (ignored, but kept so that `to_dict`
    round-trips). ``revision`` orders every signed manifest of one product/board/channel
    (body revision 3); ``min_keyring`` is None when absent, which means 0 (`required_keyring`).
    """

    product: str
    board: str
    chip_id: int
    channel: str
    version: str
    sequence: int
    security_version: int
    payload: Payload
    created: int
    support_end: str
    revision: int
    expires: int | None = None
    min_keyring: int | None = None
    notes: str | None = None
    security: dict[str, str] | None = None
    disruption: dict[str, Any] | None = None
    rollout: dict[str, Any] | None = None
    sbom: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    payloads: tuple[Representation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, optional fields omitted when None."""
        d: dict[str, Any] = {
            "product": self.product, "board": self.board, "chip_id": self.chip_id,
            "channel": self.channel, "version": self.version, "sequence": self.sequence,
            "security_version": self.security_version,
            "payload": self.payload.to_dict(),
            "created": self.created, "support_end": self.support_end,
            "revision": self.revision,
        }
        for name in ("min_keyring", "expires", "notes", "security", "disruption", "rollout",
                     "sbom"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        if self.payloads:
            d["payloads"] = [r.to_dict() for r in self.payloads]
        d.update({k: v for k, v in self.extra.items() if k not in d})
        return d

    @property
    def required_keyring(self) -> int:
        """The lowest keyring version a device must hold for this manifest (absent = 0)."""
        return 0 if self.min_keyring is None else self.min_keyring

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON, validated first (so nothing invalid is ever signed).

        Raises:
            ManifestError: a field is out of range (``BAD_BODY``).
        """
        d = self.to_dict()
        body_from_dict(d)
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")


def parse_body(body: bytes) -> ManifestBody:
    """Decode and check the body (docs/format.md §2): strict UTF-8 JSON object.

    Raises:
        ManifestError: ``BAD_BODY``.
    """
    try:
        obj = strictjson.loads(body, MAX_DEPTH)
    except strictjson.StrictJSONError as e:
        raise _bad(str(e)) from None
    return body_from_dict(obj)


def _get(d: Mapping[str, Any], name: str) -> Any:
    if name not in d:
        raise _bad(f"missing {name}")
    return d[name]


def _int(d: Mapping[str, Any], name: str, lo: int, hi: int, required: bool = True) -> int | None:
    if not required and name not in d:
        return None
    v = _get(d, name)
    if type(v) is not int or not lo <= v <= hi:
        raise _bad(f"{name} must be an integer {lo}..{hi}")
    return v


def _str(d: Mapping[str, Any], name: str, hi: int, required: bool = True) -> str | None:
    if not required and name not in d:
        return None
    v = _get(d, name)
    if type(v) is not str or len(v) > hi:
        raise _bad(f"{name} must be a string of at most {hi} characters")
    return v


def _name(d: Mapping[str, Any], name: str) -> str:
    v = _get(d, name)
    if type(v) is not str or not NAME_RE.fullmatch(v):
        raise _bad(f"{name} must be 1-32 characters of [a-z0-9._-]")
    return v


def _is_printable(s: str) -> bool:
    return all(0x20 <= ord(c) != 0x7F for c in s)


def valid_date(s: object) -> bool:
    """Whether ``s`` is a ``YYYY-MM-DD`` string with month 1-12 and day 1-31."""
    m = _DATE_RE.fullmatch(s) if type(s) is str else None
    return bool(m) and 1 <= int(m[2]) <= 12 and 1 <= int(m[3]) <= 31  # type: ignore[index]


def safe_path(p: object) -> bool:
    """Whether a payload path is relative and safe (docs/format.md §2.1)."""
    if type(p) is not str or not _PATH_RE.fullmatch(p) or p.startswith("/"):
        return False
    return all(seg not in ("", ".", "..") for seg in p.split("/"))


def _payload(d: Mapping[str, Any]) -> Payload:
    p = _get(d, "payload")
    if type(p) is not dict:
        raise _bad("payload must be an object")
    if not safe_path(_get(p, "path")):
        raise _bad("payload.path must be a safe relative path")
    sha = _get(p, "sha256")
    if type(sha) is not str or not _HEX64_RE.fullmatch(sha):
        raise _bad("payload.sha256 must be 64 lowercase hex digits")
    size, enc = _int(p, "size", 1, INT31), _name(p, "encoding")
    if enc != ENCRYPTED:
        return Payload(p["path"], size, sha, enc)  # type: ignore[arg-type]
    if size % 16:  # type: ignore[operator]
        raise _bad("an encrypted payload's size must be a multiple of 16")
    return Payload(p["path"], size, sha, enc,  # type: ignore[arg-type]
                   _hex_field(p, "nonce", 12), _hex_field(p, "key_id", 8),
                   _sha_field(p, "blob_sha256"))


def _hex_field(d: Mapping[str, Any], name: str, n: int, where: str = "payload.") -> str:
    v = _get(d, name)
    if type(v) is not str or not re.fullmatch(f"[0-9a-f]{{{2 * n}}}", v):
        raise _bad(f"{where}{name} must be {2 * n} lowercase hex digits")
    return v


def _sha_field(d: Mapping[str, Any], name: str) -> str:
    sha = _get(d, name)
    if type(sha) is not str or not _HEX64_RE.fullmatch(sha):
        raise _bad(f"{name} must be 64 lowercase hex digits")
    return sha


def _int_list(r: Mapping[str, Any], name: str, n: int, lo: int, hi: int) -> tuple[int, ...]:
    v = _get(r, name)
    if (type(v) is not list or len(v) != n
            or any(type(x) is not int or not lo <= x <= hi for x in v)):
        raise _bad(f"payloads[].{name} must be a list of {n} integers {lo}..{hi}")
    return tuple(v)


def _chunks(r: Mapping[str, Any], enc: str, size: int, image_size: int,
            base_size: int | None) -> tuple[int | None, tuple[int, ...] | None,
                                            tuple[int, ...] | None]:
    """(chunk, chunks, chunk_bases) of a resumable representation (§2.2), Nones without."""
    if "chunk" not in r:
        return None, None, None
    chunk = _int(r, "chunk", CHUNK_MIN, CHUNK_MAX)
    assert chunk is not None
    if chunk % CHUNK_MIN:
        raise _bad(f"payloads[].chunk must be a multiple of {CHUNK_MIN}")
    n = -(-image_size // chunk)
    lengths = _int_list(r, "chunks", n, 1, INT31)
    if sum(lengths) != size:
        raise _bad("payloads[].chunks must add up to the representation's size")
    bases = None
    if enc == "delta":
        assert base_size is not None
        bases = _int_list(r, "chunk_bases", n, -INT31, INT31)
        if any(not 0 <= k * chunk + b <= base_size for k, b in enumerate(bases)) or bases[0]:
            raise _bad("payloads[].chunk_bases must start at 0 and stay within the base")
    return chunk, lengths, bases


def _representation(r: object, image_size: int, encrypted: bool) -> Representation | None:
    if type(r) is not dict:
        raise _bad("payloads entries must be objects")
    enc = _name(r, "encoding")
    if enc not in REPRESENTATIONS:
        return None  # a later revision's encoding: ignored
    if not safe_path(_get(r, "path")):
        raise _bad("payloads[].path must be a safe relative path")
    base_size = base_sha = None
    if enc == "delta":
        base_size = _int(r, "base_size", 1, INT31)
        base_sha = _sha_field(r, "base_sha256")
    size = _int(r, "size", 1, INT31)
    wbits = _int(r, "wbits", 9, 15)
    sha = _sha_field(r, "sha256")
    chunk, lengths, bases = _chunks(r, enc, size, image_size, base_size)  # type: ignore[arg-type]
    nonce = None
    if encrypted:  # encrypted per chunk (§2.8): chunks of whole AES blocks, and a nonce
        if lengths is None or any(n % 16 for n in lengths):
            raise _bad("an encrypted representation needs chunks of multiples of 16 bytes")
        nonce = _hex_field(r, "nonce", 12, "payloads[].")
    return Representation(enc, r["path"], size, sha, wbits,  # type: ignore[arg-type]
                          base_size, base_sha, chunk, lengths, bases, nonce)


def _payloads(d: Mapping[str, Any]) -> tuple[Representation, ...]:
    if "payloads" not in d:
        return ()
    v = d["payloads"]
    if type(v) is not list or not 1 <= len(v) <= MAX_REPRESENTATIONS:
        raise _bad(f"payloads must be a list of 1-{MAX_REPRESENTATIONS} objects")
    image_size = d["payload"]["size"]  # checked by _payload first
    encrypted = d["payload"]["encoding"] == ENCRYPTED  # then so is every representation (§2.8)
    return tuple(r for r in (_representation(x, image_size, encrypted) for x in v)
                 if r is not None)


def _security(d: Mapping[str, Any]) -> dict[str, str] | None:
    if "security" not in d:
        return None
    v = d["security"]
    if type(v) is not dict or v.get("severity") not in SEVERITIES:
        raise _bad("security must be an object with severity " + "|".join(SEVERITIES))
    return {"severity": v["severity"], "risk": _str(v, "risk", 512)}  # type: ignore[dict-item]


def _disruption(d: Mapping[str, Any]) -> dict[str, Any] | None:
    if "disruption" not in d:
        return None
    v = d["disruption"]
    if type(v) is not dict or type(v.get("reboot")) is not bool:
        raise _bad("disruption must be an object with a boolean reboot")
    return {"reboot": v["reboot"], "seconds": _int(v, "seconds", 0, 86400)}


def _rollout(d: Mapping[str, Any]) -> dict[str, Any] | None:
    if "rollout" not in d:
        return None
    v = d["rollout"]
    if type(v) is not dict or v.get("state") not in ROLLOUT_STATES:
        raise _bad("rollout must be an object with state " + "|".join(ROLLOUT_STATES))
    return {"percent": _int(v, "percent", 0, 100), "salt": _name(v, "salt"),
            "state": v["state"]}


def _sbom(d: Mapping[str, Any]) -> dict[str, Any] | None:
    if "sbom" not in d:
        return None
    v = d["sbom"]
    if type(v) is not dict or not safe_path(v.get("path")):
        raise _bad("sbom must be an object with a safe relative path")
    sha = _get(v, "sha256")
    if type(sha) is not str or not _HEX64_RE.fullmatch(sha):
        raise _bad("sbom.sha256 must be 64 lowercase hex digits")
    return {"path": v["path"], "size": _int(v, "size", 1, INT31), "sha256": sha}


def body_from_dict(d: object) -> ManifestBody:
    """Check a decoded body object and build a `ManifestBody` (unknown fields kept in extra).

    Raises:
        ManifestError: ``BAD_BODY``.
    """
    if type(d) is not dict:
        raise _bad("the body must be a JSON object")
    version = _get(d, "version")
    if type(version) is not str or not 1 <= len(version) <= 32 or not _is_printable(version):
        raise _bad("version must be 1-32 printable characters")
    if not valid_date(_get(d, "support_end")):
        raise _bad("support_end must be a YYYY-MM-DD date")
    if "action" in d and d["action"] != "revert":  # §2.6: a signed revert, kept in extra
        raise _bad('action must be "revert"')
    known = {"product", "board", "chip_id", "channel", "version", "sequence", "security_version",
             "payload", "created", "support_end", "revision", "min_keyring", "expires", "notes",
             "security", "disruption",
             "payloads", "rollout", "sbom"}
    return ManifestBody(
        product=_name(d, "product"), board=_name(d, "board"),
        chip_id=_int(d, "chip_id", 0, 65535), channel=_name(d, "channel"),  # type: ignore[arg-type]
        version=version, sequence=_int(d, "sequence", 1, INT31),  # type: ignore[arg-type]
        security_version=_int(d, "security_version", 0, INT31),  # type: ignore[arg-type]
        payload=_payload(d), created=_int(d, "created", 0, TIME_MAX),  # type: ignore[arg-type]
        support_end=d["support_end"],
        revision=_int(d, "revision", 1, INT31),  # type: ignore[arg-type]
        min_keyring=_int(d, "min_keyring", 0, INT31, required=False),
        expires=_int(d, "expires", 0, TIME_MAX, required=False),
        notes=_str(d, "notes", 1024, required=False), security=_security(d),
        disruption=_disruption(d), extra={k: v for k, v in d.items() if k not in known},
        payloads=_payloads(d),
        rollout=_rollout(d), sbom=_sbom(d))


__all__ = ["ENCRYPTED", "INT31", "MAX_DEPTH", "MAX_REPRESENTATIONS", "REPRESENTATIONS",
           "SEVERITIES", "TIME_MAX", "ManifestBody", "Payload", "Representation",
           "body_from_dict", "parse_body", "safe_path", "valid_date"]
