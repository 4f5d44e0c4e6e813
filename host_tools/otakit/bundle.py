"""Bundle files: one release of a repository in one signed file for an offline install
(docs/format.md §8).

`make_bundle` writes a channel's current signed manifest and one of its payloads (the raw image
or one of its encoded representations, byte for byte as the server serves it) into one file,
with the product's keyring document when the repository publishes one, behind a 48-byte header.
The device checks the manifest exactly as a downloaded one (`agent.install_file`, ota.bundle);
nothing here is signed again. `read_header` parses a bundle's header for tools and tests.

Invariants: a bundle is written only from a manifest that parses, for the product, board and
channel asked, with a payload blob whose size and SHA-256 are the signed ones; the header's
lengths are within the device's bounds (keyring document and manifest at most 4096 bytes each);
the file is written whole or not at all (a temporary file renamed into place).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from otakit.errors import ManifestError, OtakitError, RepoError
from otakit.manifest import parse_unverified
from otakit.manifest_body import ManifestBody
from otakit.repo import Repository

MAGIC = b"OTAB"
VERSION = 1
HEADER = 48
MAX_DOC = 4096  # the device's manifest buffer: the keyring document and the manifest each
SUFFIX = ".otab"
ENCODINGS = ("raw", "deflate", "delta")
_FMT = "<4sBBHHHI32s"  # magic, version, 0, keyring length, manifest length, 0, payload length,
#                       payload SHA-256


@dataclass(frozen=True)
class Header:
    """A bundle's header: the lengths of its three parts and the payload's SHA-256."""

    keyring_len: int
    manifest_len: int
    payload_len: int
    payload_sha256: bytes

    @property
    def size(self) -> int:
        """The size the whole file must have."""
        return HEADER + self.keyring_len + self.manifest_len + self.payload_len

    def pack(self) -> bytes:
        """The 48 header bytes."""
        return struct.pack(_FMT, MAGIC, VERSION, 0, self.keyring_len, self.manifest_len, 0,
                           self.payload_len, self.payload_sha256)


@dataclass(frozen=True)
class BundleInfo:
    """What `make_bundle` wrote."""

    path: Path
    body: ManifestBody
    encoding: str
    header: Header
    keyring: bool


def read_header(data: bytes) -> Header:
    """Parse the first `HEADER` bytes of a bundle.

    Raises:
        OtakitError: ``BAD_BUNDLE`` (not a version 1 bundle), ``TOO_LARGE`` (a keyring document
            or manifest over 4096 bytes).
    """
    if len(data) < HEADER:
        raise OtakitError(f"a bundle starts with a {HEADER}-byte header; {len(data)} bytes",
                          reason="SHORT_READ")
    magic, version, r1, klen, mlen, r2, plen, sha = struct.unpack_from(_FMT, data)
    if magic != MAGIC or version != VERSION or r1 or r2:
        raise OtakitError("not an otakit bundle of version 1", reason="BAD_BUNDLE")
    if klen > MAX_DOC or mlen > MAX_DOC:
        raise OtakitError(f"keyring ({klen}) or manifest ({mlen} bytes) over {MAX_DOC} bytes",
                          reason="TOO_LARGE")
    return Header(klen, mlen, plen, sha)


def _payload(body: ManifestBody, encoding: str, base: str | None) -> tuple[str, int, str, str]:
    # (path, size, sha256 hex, the file's sha256 hex) of the representation asked for: the file
    # of an encrypted payload (docs/format.md §2.8) is the ciphertext, its blob_sha256.
    if encoding == "raw":
        p = body.payload
        return p.path, p.size, p.sha256, p.blob_sha256 or p.sha256
    reps = [r for r in body.payloads if r.encoding == encoding and
            (base is None or (r.base_sha256 or "").startswith(base))]
    if not reps:
        have = ", ".join(sorted({r.encoding for r in body.payloads})) or "only raw"
        raise OtakitError(f"sequence {body.sequence} has no {encoding} payload"
                          f"{' on base ' + base if base else ''} (it has: {have})",
                          reason="BAD_ARGUMENT")
    if len(reps) > 1:
        bases = ", ".join((r.base_sha256 or "")[:12] for r in reps)
        raise OtakitError(f"several {encoding} payloads (bases {bases}): choose one with --base",
                          reason="BAD_ARGUMENT")
    return reps[0].path, reps[0].size, reps[0].sha256, reps[0].sha256


def _check_blob(path: Path, size: int, sha: str) -> None:
    if not path.is_file():
        raise RepoError(f"{path} is missing; run `otakit verify`", reason="MISSING_PAYLOAD")
    h = hashlib.sha256()
    n = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            h.update(chunk)
            n += len(chunk)
    if n != size or h.hexdigest() != sha:
        raise RepoError(f"{path} is not the signed payload ({n} bytes, the manifest signs "
                        f"{size}); run `otakit verify`", reason="HASH_MISMATCH")


def make_bundle(repo: Repository, product: str, board: str, channel: str, out: Path | None = None,
                *, encoding: str = "raw", base: str | None = None,
                keyring: bool = True) -> BundleInfo:
    """Write the channel's current release as a bundle file (default name
    ``<product>-<board>-<channel>-<version>[-<encoding>].otab`` in the current directory).

    Raises:
        RepoError: no release on the channel (``NO_REPO``), an unreadable manifest or keyring
            (``BAD_REPO``), a payload blob missing (``MISSING_PAYLOAD``) or not the signed one
            (``HASH_MISMATCH``).
        OtakitError: ``BAD_ARGUMENT`` (no such encoding), ``TOO_LARGE``.
    """
    if encoding not in ENCODINGS:
        raise OtakitError(f"encoding must be one of {', '.join(ENCODINGS)}", reason="BAD_ARGUMENT")
    mpath = repo.manifest_path(product, board, channel)
    if not mpath.is_file():
        raise RepoError(f"{product}/{board}/{channel} has no release in {repo.root}",
                        reason="NO_REPO")
    manifest = mpath.read_bytes()
    try:
        body = parse_unverified(manifest).body
    except ManifestError as e:
        raise RepoError(f"{mpath} is unreadable ({e}); run `otakit verify`",
                        reason="BAD_REPO") from e
    if (body.product, body.board, body.channel) != (product, board, channel):
        raise RepoError(f"{mpath} is for {body.product}/{body.board}/{body.channel}",
                        reason="BAD_REPO")
    kdoc = b""
    kpath = repo.keyring_path(product)
    if keyring and kpath.is_file():
        repo.keyring_version(product)  # parses (BAD_REPO otherwise)
        kdoc = kpath.read_bytes()
    if len(manifest) > MAX_DOC or len(kdoc) > MAX_DOC:
        raise OtakitError(f"the manifest or keyring document is over {MAX_DOC} bytes",
                          reason="TOO_LARGE")
    rel, size, sha, file_sha = _payload(body, encoding, base)
    blob = repo.root / rel
    _check_blob(blob, size, file_sha)
    header = Header(len(kdoc), len(manifest), size, bytes.fromhex(sha))
    if out is None:
        tail = "" if encoding == "raw" else "-" + encoding
        out = Path(f"{product}-{board}-{channel}-{body.version}{tail}{SUFFIX}")
    tmp = out.with_name(out.name + ".tmp")
    try:
        with tmp.open("wb") as f, blob.open("rb") as src:
            f.write(header.pack() + kdoc + manifest)
            shutil.copyfileobj(src, f, 1 << 16)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BundleInfo(out, body, encoding, header, bool(kdoc))


__all__ = ["ENCODINGS", "HEADER", "MAGIC", "MAX_DOC", "SUFFIX", "BundleInfo", "Header",
           "make_bundle", "read_header"]
