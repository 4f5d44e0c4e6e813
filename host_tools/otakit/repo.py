"""The release repository (docs/format.md §4): the only code that writes to it.

Layout::

    <repo>/<product>/<board>/<channel>/manifest   the current signed manifest of that channel
    <repo>/blobs/sha256/<64 hex>                   payloads, content-addressed
    <repo>/.otakit/releases/<product>/<board>/<channel>/<revision>
                                                   every manifest signed for the channel, as
                                                   published (`Repository.record`): the history
                                                   `otakit revert` and `otakit.withhold` read
                                                   (a dot-directory: never served or published)

Invariants:
- Every file is written atomically (temporary file in the same directory, fsync, `os.replace`),
  the payload before the manifest that names it, so a reader never sees a manifest whose payload
  is missing or partial; a release that fails to write its manifest removes the blobs it
  wrote, so it leaves nothing behind.
- Per channel, trust only moves forward: a new release needs a higher ``sequence``, a
  ``security_version`` no lower than the current one, and a ``support_end`` no earlier.
- Every manifest this module signs for a channel (a release, a refresh; `otakit.rollout` uses
  `Repository.resign`) carries the channel's published ``revision`` + 1 (1 on a new channel or
  over a body-revision-2 manifest without one) and ``min_keyring`` = the version of the keyring
  published for the product (0 when none), docs/format.md §2 and §4; a revision handed out for
  detached signing (`otakit.detached`) is never handed out again, so the count may skip.
- A document prepared with a `otakit.detached.DetachedKey` (``--digest-out``) is not written:
  `otakit.detached.defer_manifest` keeps it pending, with the blobs it brings, until its
  signature comes back.

A release's arguments (`ReleaseRequest`, `parse_expiry`), its forward-only checks and its encoded
representations live in `otakit.release_request`, which writes nothing; this module re-exports
the names its importers use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from otakit import strictjson
from otakit.errors import ManifestError, RepoError
from otakit.image import check_app_image
from otakit.keys import PrivateKey, PublicKey
from otakit.manifest import parse_envelope, sign_manifest, verify_manifest
from otakit.manifest_body import INT31, MAX_DEPTH, ManifestBody, Payload, body_from_dict
from otakit.release_request import (  # re-exported: importers take them from otakit.repo
    BLOB_DIR, DEFAULT_EXPIRY, ReleaseRequest, check_forward, encode_representations, parse_expiry,
)

MANIFEST_NAME = "manifest"
KEYRING_NAME = "keyring"
HISTORY_DIR = ".otakit/releases"  # every manifest signed for a channel (Repository.record)


@dataclass(frozen=True)
class Published:
    """A channel's published manifest as the repository reads it (signature not checked here):
    its body and its ``revision`` (0 when the body, of body revision 2, has none)."""

    body: ManifestBody
    revision: int


def read_published(data: bytes) -> Published:
    """Parse a published manifest; a body without ``revision`` (written before body revision 3)
    is read with revision 0, so the next signed manifest of its channel takes revision 1.

    Raises:
        ManifestError: the envelope or body is malformed otherwise.
    """
    env = parse_envelope(data)
    try:
        obj = strictjson.loads(env.body, MAX_DEPTH)
    except strictjson.StrictJSONError as e:
        raise ManifestError(f"bad manifest body: {e}", reason="BAD_BODY") from None
    if type(obj) is dict and "revision" not in obj:
        return Published(body_from_dict({**obj, "revision": 1}), 0)
    body = body_from_dict(obj)
    return Published(body, body.revision)


@dataclass(frozen=True)
class PublishResult:
    """Where a release went."""

    manifest_path: Path
    payload_path: Path
    body: ManifestBody
    manifest: bytes
    sbom_path: Path | None = None
    blobs: dict[str, Path] = field(default_factory=dict)  # representation sha256 -> file


@dataclass
class VerifyReport:
    """The outcome of `Repository.verify`; ``problems`` are one line each."""

    manifests: int = 0
    payloads: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing was wrong."""
        return not self.problems


def sha256_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 hex of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sign(body: ManifestBody, key: PrivateKey) -> bytes:
    """`sign_manifest`; a `otakit.detached.DetachedKey` gives a placeholder signature."""
    from otakit.detached import DetachedKey  # noqa: PLC0415 - it imports this module

    if isinstance(key, DetachedKey):
        with key.capture():
            return sign_manifest(body, key)  # type: ignore[arg-type]
    return sign_manifest(body, key)


def _deferred(repo: Repository, key: PrivateKey, body: ManifestBody, manifest: bytes,
              blobs: dict[str, bytes]) -> bool:
    """Keep the document pending if ``key`` stands in for a detached signer."""
    from otakit.detached import DetachedKey, defer_manifest  # noqa: PLC0415

    if not isinstance(key, DetachedKey):
        return False
    defer_manifest(repo, key, body, manifest, blobs)
    return True


class Repository:
    """A release repository directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Open (not create) the repository at ``root``."""
        self.root = Path(root)

    def manifest_path(self, product: str, board: str, channel: str) -> Path:
        """``<root>/<product>/<board>/<channel>/manifest``."""
        return self.root / product / board / channel / MANIFEST_NAME

    def payload_path(self, sha256: str) -> Path:
        """``<root>/blobs/sha256/<sha256>``."""
        return self.root / BLOB_DIR / sha256

    def current(self, product: str, board: str, channel: str) -> ManifestBody | None:
        """The channel's current manifest body (signature not checked), or None.

        Raises:
            RepoError: the current manifest exists but cannot be parsed.
        """
        pub = self.published(product, board, channel)
        return None if pub is None else pub.body

    def published(self, product: str, board: str, channel: str) -> Published | None:
        """The channel's current manifest and its revision (signature not checked), or None.

        Raises:
            RepoError: the current manifest exists but cannot be parsed.
        """
        path = self.manifest_path(product, board, channel)
        if not path.is_file():
            return None
        try:
            return read_published(path.read_bytes())
        except ManifestError as e:
            raise RepoError(f"{path} is unreadable ({e}); run `otakit verify`",
                            reason="BAD_REPO") from e

    def next_revision(self, product: str, board: str, channel: str) -> int:
        """The ``revision`` the channel's next signed manifest takes: the published one + 1
        (1 on a new channel, or over a manifest without a revision), or above the highest
        one handed out for detached signing (`otakit.detached.reserved_revision`).

        Raises:
            RepoError: the published manifest is unreadable, or at the largest revision.
        """
        pub = self.published(product, board, channel)
        from otakit.detached import reserved_revision  # noqa: PLC0415

        rev = max(0 if pub is None else pub.revision,
                  reserved_revision(self.root, (product, board, channel)))
        if rev >= INT31:
            raise RepoError(f"{product}/{board}/{channel} is at revision {rev}, the largest",
                            reason="BAD_REPO")
        return rev + 1

    def keyring_version(self, product: str) -> int:
        """The version of the keyring document published for ``product`` (0 when none): the
        ``min_keyring`` every manifest signed for the product gets.

        Raises:
            RepoError: the published keyring document is malformed.
        """
        from otakit.keyring import parse_unverified as parse_keyring  # noqa: PLC0415

        path = self.keyring_path(product)
        if not path.is_file():
            return 0
        try:
            return parse_keyring(path.read_bytes()).body.version
        except ManifestError as e:
            raise RepoError(f"{path} is unreadable ({e})", reason="BAD_REPO") from e

    def resign(self, body: ManifestBody, key: PrivateKey) -> tuple[ManifestBody, bytes]:
        """Sign ``body`` as its channel's next manifest (revision + 1, the current
        min_keyring) and write it in place of the published one (with a
        `otakit.detached.DetachedKey`: keep it pending instead).

        Raises:
            RepoError: see `next_revision`, `keyring_version`.
            ManifestError: the body is invalid or too large.
        """
        body = dataclasses.replace(
            body, revision=self.next_revision(body.product, body.board, body.channel),
            min_keyring=self.keyring_version(body.product))
        manifest = _sign(body, key)
        if _deferred(self, key, body, manifest, {}):
            return body, manifest
        write_atomic(self.manifest_path(body.product, body.board, body.channel), manifest)
        self.record(body, manifest)
        return body, manifest

    def record(self, body: ManifestBody, manifest: bytes) -> Path:
        """Keep ``manifest``, just published, in its channel's history (`HISTORY_DIR`), named
        by its revision."""
        path = self.history_dir(body.product, body.board, body.channel) / f"{body.revision:010d}"
        write_atomic(path, manifest)
        return path

    def history_dir(self, product: str, board: str, channel: str) -> Path:
        """Where the channel's signed manifests are kept (`record`)."""
        return self.root / HISTORY_DIR / product / board / channel

    def history(self, product: str, board: str, channel: str) -> list[Path]:
        """The channel's recorded manifests, newest (highest revision) first."""
        d = self.history_dir(product, board, channel)
        return sorted((p for p in d.iterdir() if p.name.isdigit()), reverse=True) \
            if d.is_dir() else []

    def plan(self, req: ReleaseRequest, payload: Payload, now: int) -> ManifestBody:
        """The body a release would get, after the channel's forward-only checks.

        Raises:
            RepoError: see `otakit.release_request.check_forward`, `next_revision`,
                `keyring_version`.
        """
        cur = self.current(req.product, req.board.name, req.channel)
        sec, support_end = check_forward(req, cur, now)
        return ManifestBody(
            product=req.product, board=req.board.name, chip_id=req.board.chip_id,
            channel=req.channel, version=req.version, sequence=req.sequence,
            security_version=sec, payload=payload, created=now,
            support_end=support_end, expires=req.expires,
            revision=self.next_revision(req.product, req.board.name, req.channel),
            min_keyring=self.keyring_version(req.product),
            notes=req.notes, security=req.security, disruption=req.disruption,
            rollout=req.rollout,  # type: ignore[arg-type]
            # pins outlive releases (otakit.rollout.pin, docs/format.md §2.6); a cohort does not
            extra={"pins": cur.extra["pins"]} if cur is not None and "pins" in cur.extra else {})

    def _write_blob(self, sha: str, data: bytes) -> Path:
        blob = self.payload_path(sha)
        if not blob.is_file() or sha256_file(blob) != (len(data), sha):
            write_atomic(blob, data)
        return blob

    def publish(self, req: ReleaseRequest, image: bytes, key: PrivateKey,
                now: int | None = None, sbom: bytes | None = None) -> PublishResult:
        """Check ``image`` for the board, sign a manifest and write payload then manifest
        (with a `otakit.detached.DetachedKey`: keep them pending instead; the result then
        names where they will go).

        ``sbom`` (a CycloneDX JSON document, `otakit.sbom`) is stored as a blob beside the payload
        and bound into the manifest by path, size and SHA-256 (docs/format.md §2.4).

        Raises:
            ImageError: the image is not a bootable app for the board, or too large.
            RepoError: a forward-only check failed (see `plan`).
            ManifestError: the body is invalid or the manifest too large.
        """
        now = int(time.time()) if now is None else now
        info = check_app_image(image, req.board)
        payload = Payload(f"{BLOB_DIR}/{info.sha256}", info.size, info.sha256, "raw")
        encoded = encode_representations(req, image)
        data, data_sha = image, info.sha256  # the payload blob and its name
        if req.encrypt_key is not None:  # only the encrypted image is stored (format §2.8)
            from otakit.contentkey import encrypted_payload  # noqa: PLC0415

            payload, data = encrypted_payload(BLOB_DIR, info.size, info.sha256, image,
                                              req.encrypt_key)
            data_sha = payload.blob_sha256 or ""
        body = dataclasses.replace(self.plan(req, payload, now),
                                   payloads=tuple(r for r, _ in encoded))
        sbom_digest = None
        if sbom is not None:
            sbom_digest = hashlib.sha256(sbom).hexdigest()
            body = dataclasses.replace(body, sbom={"path": f"{BLOB_DIR}/{sbom_digest}",
                                                   "size": len(sbom), "sha256": sbom_digest})
        manifest = _sign(body, key)
        mpath = self.manifest_path(req.product, req.board.name, req.channel)
        brought = {info.sha256: image, **{r.sha256: data for r, data in encoded}}
        if sbom is not None and sbom_digest:
            brought[sbom_digest] = sbom
        if _deferred(self, key, body, manifest, brought):
            return PublishResult(mpath, self.payload_path(info.sha256), body, manifest,
                                 self.payload_path(sbom_digest) if sbom_digest else None,
                                 {r.sha256: self.payload_path(r.sha256) for r, _ in encoded})
        new_blobs: list[Path] = []  # written by this release: removed again if it fails

        def put(sha: str, data: bytes) -> Path:
            existed = self.payload_path(sha).is_file()
            path = self._write_blob(sha, data)
            if not existed:
                new_blobs.append(path)
            return path

        try:
            sbom_path = put(sbom_digest, sbom) if sbom is not None and sbom_digest else None
            blob = put(data_sha, data)
            blobs = {r.sha256: put(r.sha256, data) for r, data in encoded}
            write_atomic(mpath, manifest)
        except BaseException:
            for path in new_blobs:
                path.unlink(missing_ok=True)
            raise
        self.record(body, manifest)
        return PublishResult(mpath, blob, body, manifest, sbom_path, blobs)

    def refresh(self, product: str, board: str, channel: str, expires: int, key: PrivateKey,
                now: int | None = None) -> PublishResult:
        """Re-sign the channel's current manifest with a later ``expires``, the next ``revision``
        and the current ``min_keyring``; nothing else changes.

        The sequence stays: a device that installed it stays up to date, one that did not is
        offered the same release. The new manifest replaces the old one atomically.

        Raises:
            RepoError: no current release (``NO_REPO``), or ``expires`` not later than the
                current expiry and in the future (``BAD_ARGUMENT``).
        """
        now = int(time.time()) if now is None else now
        cur = self.current(product, board, channel)
        where = f"{product}/{board}/{channel}"
        if cur is None:
            raise RepoError(f"{where} has no release to refresh", reason="NO_REPO")
        if expires <= now or (cur.expires is not None and expires <= cur.expires):
            raise RepoError(f"the new expiry must be in the future and later than the current "
                            f"one ({cur.expires})", reason="BAD_ARGUMENT")
        body, manifest = self.resign(dataclasses.replace(cur, expires=expires), key)
        mpath = self.manifest_path(product, board, channel)
        return PublishResult(mpath, self.root / cur.payload.path, body, manifest)

    def keyring_path(self, product: str) -> Path:
        """``<root>/<product>/keyring`` (docs/format.md §7.4)."""
        return self.root / product / KEYRING_NAME

    def publish_keyring(self, doc: bytes) -> Path:
        """Write a keyring document for its product; trust only moves forward.

        Raises:
            ManifestError: the document is malformed.
            RepoError: its version is lower than the current one, or equal with another body
                (``ROLLBACK``).
        """
        from otakit.keyring import parse_unverified as parse_keyring
        new = parse_keyring(doc)
        path = self.keyring_path(new.body.product)
        if path.is_file():
            cur = parse_keyring(path.read_bytes())
            if new.body.version < cur.body.version or (
                    new.body.version == cur.body.version and new.body_bytes != cur.body_bytes):
                raise RepoError(f"keyring version {new.body.version} does not follow the "
                                f"published version {cur.body.version}", reason="ROLLBACK")
        write_atomic(path, doc)
        return path

    def manifests(self) -> list[Path]:
        """Every ``<product>/<board>/<channel>/manifest`` in the repository, sorted."""
        return sorted(p for p in self.root.glob(f"*/*/*/{MANIFEST_NAME}")
                      if p.relative_to(self.root).parts[0] != "blobs")

    def verify(self, keyring: Mapping[bytes, PublicKey]) -> VerifyReport:
        """Check every manifest's signature and body (its ``revision`` included), that the
        keyring it needs (``min_keyring``) is published, and every payload's size and SHA-256.

        Raises:
            RepoError: the repository directory does not exist.
        """
        if not self.root.is_dir():
            raise RepoError(f"no release repository at {self.root}", reason="NO_REPO")
        report = VerifyReport()
        for mpath in self.manifests():
            report.manifests += 1
            self._verify_manifest(mpath, keyring, report)
        blob_dir = self.root / BLOB_DIR
        for blob in sorted(blob_dir.iterdir()) if blob_dir.is_dir() else []:
            report.payloads += 1
            if blob.is_file() and sha256_file(blob)[1] != blob.name:
                report.problems.append(f"{blob.relative_to(self.root)}: HASH_MISMATCH: content "
                                       "does not match its name")
        return report

    def _verify_manifest(self, mpath: Path, keyring: Mapping[bytes, PublicKey],
                         report: VerifyReport) -> None:
        rel = mpath.relative_to(self.root)
        try:
            body = verify_manifest(mpath.read_bytes(), keyring).body
        except ManifestError as e:
            report.problems.append(f"{rel}: {e.reason}: {e}")
            return
        if (body.product, body.board, body.channel) != rel.parts[:3]:
            report.problems.append(f"{rel}: WRONG_PLACE: the manifest is for "
                                   f"{body.product}/{body.board}/{body.channel}")
        try:
            held = self.keyring_version(rel.parts[0])
        except RepoError as e:
            report.problems.append(f"{rel.parts[0]}/{KEYRING_NAME}: {e.reason}: {e}")
            held = None
        if held is not None and body.required_keyring > held:
            report.problems.append(
                f"{rel}: KEYRING_REQUIRED: min_keyring {body.required_keyring} is above the "
                f"published keyring's version {held}: devices would refuse the manifest")
        if body.sbom is not None and (not (self.root / body.sbom["path"]).is_file() or sha256_file(
                self.root / body.sbom["path"]) != (body.sbom["size"], body.sbom["sha256"])):
            report.problems.append(f"{rel}: MISSING_SBOM: {body.sbom['path']} is absent or does "
                                   "not match the signed size and SHA-256")
        for p in (body.payload, *body.payloads):
            blob = self.root / p.path
            if not blob.is_file():
                report.problems.append(f"{rel}: MISSING_PAYLOAD: {p.path} is absent")
                continue
            size, digest = sha256_file(blob)
            want = getattr(p, "blob_sha256", None) or p.sha256  # encrypted: the blob's own
            if (size, digest) != (p.size, want):
                report.problems.append(f"{rel}: HASH_MISMATCH: {p.path} is {size} bytes sha256 "
                                       f"{digest[:16]}..., signed {p.size} bytes sha256 "
                                       f"{want[:16]}...")


__all__ = ["BLOB_DIR", "DEFAULT_EXPIRY", "HISTORY_DIR", "Published", "PublishResult", "ReleaseRequest", "Repository",
           "VerifyReport", "parse_expiry", "read_published", "sha256_file", "write_atomic"]
