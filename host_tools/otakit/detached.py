"""Detached signing: a document leaves as the exact bytes to sign, its signature comes back.

The signing key then never needs to be on the machine that holds the repository: an air-gapped
machine, an HSM or a cloud KMS signs the 32-byte digest ``D`` (docs/format.md §1.1 for
manifests, §7.1 for keyring documents: the message both algorithms sign, Ed25519 directly,
RSA-PSS after its own SHA-256).

Manifests (``otakit release|refresh|rollout ... --digest-out FILE``): the command prepares the
channel's next manifest exactly as it would sign it, with a `DetachedKey` (the public key) in
place of the private key; `otakit.repo.Repository` hands the prepared document to
`defer_manifest`, which writes ``D`` to FILE and keeps the document *pending* in the
repository's unpublished state directory (dot-directories are never served or published)::

    <repo>/.otakit/pending/<product>/<board>/<channel>/
        reserved       the highest revision ever handed out for signing on the channel
        signed.bin     the manifest's data[0:18+N] (header + body): D = SHA-256(domain || it)
        blobs/<sha256> the payloads (and SBOM) a release brings, not published yet
        pending.json   the command and options that made it, the published manifest and
                       keyring (SHA-256) it was prepared over, its blobs; written last

The same command with ``--signature-in SIG`` (`complete_manifest`) publishes it.

Invariants:
- Every digest handed out for a channel carries a revision no other handed-out digest has
  (``reserved``, which `Repository.next_revision` counts): two signed documents never share a
  revision, so a signature over an abandoned or replaced digest can only ever make a document
  that a device which saw any later one refuses (``OLD_REVISION``).
- Nothing is written into the published repository unless the signature verifies with the given
  key over the pending document's ``D`` (``UNKNOWN_KEY``, ``BAD_SIGNATURE``), the published
  manifest and keyring are byte for byte the ones the document was prepared over (a release,
  refresh or rollout step made meanwhile: ``STALE_PENDING``), the document has not expired
  (``EXPIRED``), and every pending blob matches the hash the signed body names.
- A completed pending document is removed (``reserved`` stays): completing it twice is
  ``NO_PENDING``; a new ``--digest-out`` replaces a pending document (its digest is then useless).

Keyring documents (``otakit keyring sign --digest-out``) keep only their body pending
(`defer_keyring`, `load_keyring_pending`); a device refuses another body under a version it
holds (``KEYRING_ROLLBACK``), so they need no reservation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from otakit.errors import ManifestError, RepoError
from otakit.keys import SIG_LENGTHS, PrivateKey, PublicKey
from otakit.manifest import signed_digest, verify_manifest
from otakit.manifest_body import ManifestBody

PENDING_DIR = ".otakit/pending"
STATE = "pending.json"
SIGNED = "signed.bin"
RESERVED = "reserved"
BLOBS = "blobs"
MAX_SIGNATURE_FILE = 4096
_FIELDS = {"command", "params", "key_id", "alg", "revision", "blobs", "base", "keyring"}


class DetachedKey(PrivateKey):
    """A public key standing in for the signing key while a document is prepared for detached
    signing. It signs nothing: inside `capture` (only `otakit.repo` opens it, and then stores
    the document pending instead of writing it) ``sign`` returns zero bytes as a placeholder
    and remembers ``D``; anywhere else it refuses.

    Attributes:
        digest_out: where ``D`` goes.
        command: the command path (``otakit rollout raise``) that made the document.
        params: that command's options, as JSON values.
        deferred: the revision of the document stored pending (None until one is).
    """

    def __init__(self, public: PublicKey, digest_out: str | Path, command: str,
                 params: Mapping[str, Any]) -> None:
        """Stand in for ``public``'s private key."""
        PublicKey.__init__(self, public._public)  # noqa: SLF001 - no private half
        self._private = None
        self.digest_out = Path(digest_out)
        self.command = command
        self.params = dict(params)
        self.deferred: int | None = None
        self._capturing = False

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Let ``sign`` return a placeholder while the caller builds the document."""
        self._capturing = True
        try:
            yield
        finally:
            self._capturing = False

    def sign(self, digest: bytes) -> bytes:
        """A placeholder of the signature's length (inside `capture` only).

        Raises:
            RepoError: outside `capture`: this document cannot be signed detached.
        """
        if not self._capturing:
            raise RepoError(f"{self.command} cannot sign this document detached",
                            reason="BAD_ARGUMENT")
        return bytes(SIG_LENGTHS[self.alg])

    def private_pem(self, passphrase: bytes | None) -> bytes:
        """Refused: there is no private half here.

        Raises:
            RepoError: always (``NOT_PRIVATE``).
        """
        raise RepoError("a detached signer has no private key", reason="NOT_PRIVATE")


def jsonable(value: object) -> Any:
    """A click parameter value as JSON stores it (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


def pending_dir(root: Path, where: tuple[str, str, str]) -> Path:
    """``<root>/.otakit/pending/<product>/<board>/<channel>``."""
    return Path(root) / PENDING_DIR / where[0] / where[1] / where[2]


def reserved_revision(root: Path, where: tuple[str, str, str]) -> int:
    """The highest revision handed out for signing on the channel (0 when none).

    Raises:
        RepoError: the record is malformed (``BAD_REPO``).
    """
    path = pending_dir(root, where) / RESERVED
    if not path.is_file():
        return 0
    text = path.read_text(errors="replace").strip()
    if not text.isdigit():
        raise RepoError(f"{path} is malformed", reason="BAD_REPO")
    return int(text)


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _clear(d: Path) -> None:
    (d / STATE).unlink(missing_ok=True)
    (d / SIGNED).unlink(missing_ok=True)
    shutil.rmtree(d / BLOBS, ignore_errors=True)


def defer_manifest(repo: Any, key: DetachedKey, body: ManifestBody, manifest: bytes,
                   blobs: Mapping[str, bytes]) -> bytes:
    """Keep a prepared manifest pending and write its ``D`` to ``key.digest_out``.

    Args:
        repo: the `otakit.repo.Repository`.
        key: the stand-in key the document was prepared with.
        body: its body (``revision`` already the channel's next).
        manifest: the document with a placeholder signature (`DetachedKey.capture`).
        blobs: sha256 hex -> bytes, the files a release brings (none for a re-signing).

    Returns:
        ``D``.
    """
    from otakit.repo import write_atomic  # noqa: PLC0415 - otakit.repo imports this module

    where = (body.product, body.board, body.channel)
    d = pending_dir(repo.root, where)
    signed = manifest[:len(manifest) - SIG_LENGTHS[key.alg]]
    digest = signed_digest(signed)
    _clear(d)
    write_atomic(d / RESERVED, f"{max(body.revision, reserved_revision(repo.root, where))}\n"
                 .encode())
    for sha, data in blobs.items():
        write_atomic(d / BLOBS / sha, data)
    write_atomic(d / SIGNED, signed)
    state = {"command": key.command, "params": key.params, "key_id": key.key_id_hex,
             "alg": key.alg, "revision": body.revision, "blobs": sorted(blobs),
             "base": _sha(repo.manifest_path(*where)),
             "keyring": _sha(repo.keyring_path(body.product)), "prepared": int(time.time())}
    write_atomic(d / STATE, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode())
    write_atomic(key.digest_out, digest)
    key.deferred = body.revision
    return digest


def load_pending(root: Path, where: tuple[str, str, str]) -> tuple[dict[str, Any], bytes]:
    """The channel's pending document: its state record and its signed bytes.

    Raises:
        RepoError: none pending (``NO_PENDING``), or a malformed record (``BAD_REPO``).
    """
    d = pending_dir(root, where)
    if not (d / STATE).is_file() or not (d / SIGNED).is_file():
        raise RepoError(f"{'/'.join(where)} has no pending document: prepare one with "
                        "--digest-out FILE first (a completed one is gone)", reason="NO_PENDING")
    try:
        state = json.loads((d / STATE).read_text())
    except ValueError:
        state = None
    if not isinstance(state, dict) or not _FIELDS <= state.keys() or not isinstance(
            state["params"], dict) or not isinstance(state["blobs"], list):
        raise RepoError(f"{d / STATE} is malformed", reason="BAD_REPO")
    return state, (d / SIGNED).read_bytes()


def read_signature(path: str | Path, alg: str) -> bytes:
    """The raw signature in ``path``, of ``alg``'s length.

    Raises:
        ManifestError: another length (``BAD_SIGNATURE``).
    """
    with open(path, "rb") as f:
        sig = f.read(MAX_SIGNATURE_FILE + 1)
    if len(sig) != SIG_LENGTHS[alg]:
        raise ManifestError(f"{path} is {len(sig)} bytes; a raw {alg} signature is "
                            f"{SIG_LENGTHS[alg]} (not base64, hex or DER)",
                            reason="BAD_SIGNATURE")
    return sig


def check_params(state: Mapping[str, Any], command: str, given: Mapping[str, Any]) -> None:
    """Refuse completing a document another command, or other options, prepared.

    ``given`` holds only the options the completing command was given explicitly.

    Raises:
        RepoError: ``BAD_ARGUMENT``.
    """
    if state["command"] != command:
        raise RepoError(f"the pending document was prepared by `{state['command']}`; complete "
                        f"it with that command", reason="BAD_ARGUMENT")
    for name, value in given.items():
        was = state["params"].get(name)
        if name in state["params"] and jsonable(value) != was:
            flag = "--" + name.replace("_", "-")
            raise RepoError(f"the pending document was prepared with {flag} {was}, not "
                            f"{jsonable(value)}", reason="BAD_ARGUMENT")


def complete_manifest(repo: Any, where: tuple[str, str, str], key: PublicKey,
                      signature_file: str | Path, command: str, given: Mapping[str, Any],
                      now: int | None = None) -> tuple[ManifestBody, bytes, Path]:
    """Publish the channel's pending manifest with the detached signature in
    ``signature_file``, after every check of the module's invariants.

    Returns:
        The body, the manifest bytes and where they went.

    Raises:
        RepoError: ``NO_PENDING``, ``BAD_ARGUMENT`` (another command or options),
            ``STALE_PENDING``, ``BAD_REPO`` (a pending blob does not match).
        ManifestError: ``UNKNOWN_KEY``, ``BAD_SIGNATURE``, ``EXPIRED``, or the document fails
            `otakit.manifest.verify_manifest`.
    """
    from otakit.repo import write_atomic  # noqa: PLC0415

    now = int(time.time()) if now is None else now
    state, signed = load_pending(repo.root, where)
    check_params(state, command, given)
    if (key.alg, key.key_id_hex) != (state["alg"], state["key_id"]):
        raise ManifestError(f"the pending document names {state['alg']} key {state['key_id']}; "
                            f"--key is {key.alg} key {key.key_id_hex}", reason="UNKNOWN_KEY")
    sig = read_signature(signature_file, key.alg)
    if not key.verify(signed_digest(signed), sig):
        raise ManifestError(f"{signature_file} is not key {key.key_id_hex}'s signature over the "
                            f"pending digest of {'/'.join(where)} revision {state['revision']} "
                            "(an older digest file, or another key?)", reason="BAD_SIGNATURE")
    manifest = signed + sig
    body = verify_manifest(manifest, {key.key_id: key}).body
    mpath = repo.manifest_path(*where)
    published = repo.published(*where)
    if (_sha(mpath), _sha(repo.keyring_path(where[0]))) != (state["base"], state["keyring"]) or (
            published is not None and body.revision <= published.revision):
        raise RepoError(f"{'/'.join(where)} changed since the digest was made (another release, "
                        "refresh, rollout step or keyring): prepare and sign it again",
                        reason="STALE_PENDING")
    if body.expires is not None and body.expires <= now:
        raise ManifestError(f"the pending document expired at {body.expires}; prepare and sign "
                            "it again", reason="EXPIRED")
    d = pending_dir(repo.root, where)
    named = {p.sha256 for p in (body.payload, *body.payloads)}
    if body.sbom is not None:
        named.add(body.sbom["sha256"])
    blobs: dict[str, bytes] = {}
    for sha in state["blobs"]:
        data = (d / BLOBS / sha).read_bytes() if (d / BLOBS / sha).is_file() else b""
        if sha not in named or hashlib.sha256(data).hexdigest() != sha:
            raise RepoError(f"{d / BLOBS / sha} does not match the signed body",
                            reason="BAD_REPO")
        blobs[sha] = data
    for sha in named - set(blobs):
        if not repo.payload_path(sha).is_file():
            raise RepoError(f"the signed body names blob {sha[:16]}..., which is neither "
                            "pending nor in the repository", reason="BAD_REPO")
    new_blobs: list[Path] = []
    try:
        for sha, data in blobs.items():
            if not repo.payload_path(sha).is_file():
                new_blobs.append(repo.payload_path(sha))
            repo._write_blob(sha, data)  # noqa: SLF001 - the repository's own helper
        write_atomic(mpath, manifest)
    except BaseException:
        for path in new_blobs:
            path.unlink(missing_ok=True)
        raise
    repo.record(body, manifest)  # the channel's history (otakit revert, otakit.withhold)
    _clear(d)
    return body, manifest, mpath


def keyring_pending_dir(repo: str | Path | None, product: str | None,
                        out: str | Path | None) -> Path:
    """Where a new keyring document waits for its signatures: under the repository's state
    directory (``<repo>/.otakit/pending/<product>/keyring``) when publishing there, else
    beside ``--out`` (``<out>.pending``).

    Raises:
        RepoError: neither given, or --repo without --product (``BAD_ARGUMENT``).
    """
    if repo is not None:
        if not product:
            raise RepoError("with --repo, give --product", reason="BAD_ARGUMENT")
        return Path(repo) / PENDING_DIR / product / "keyring"
    if out is None:
        raise RepoError("give --out FILE and/or --repo DIR", reason="BAD_ARGUMENT")
    return Path(f"{out}.pending")


def defer_keyring(d: Path, body: bytes, published: Path | None, digest_out: str | Path,
                  digest: bytes) -> None:
    """Keep a keyring body pending in ``d`` and write its ``D`` to ``digest_out``;
    ``published`` is the keyring document it will replace (checked again on completion)."""
    from otakit.repo import write_atomic  # noqa: PLC0415

    _clear(d)
    write_atomic(d / SIGNED, body)
    state = {"command": "otakit keyring sign", "params": {},
             "keyring": _sha(published) if published is not None else None,
             "prepared": int(time.time())}
    write_atomic(d / STATE, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode())
    write_atomic(Path(digest_out), digest)


def load_keyring_pending(d: Path, published: Path | None) -> bytes:
    """The pending keyring body in ``d``.

    Raises:
        RepoError: none (``NO_PENDING``), or the published keyring changed since
            (``STALE_PENDING``).
    """
    if not (d / STATE).is_file() or not (d / SIGNED).is_file():
        raise RepoError(f"no pending keyring document in {d}: prepare one with --digest-out "
                        "FILE first (a completed one is gone)", reason="NO_PENDING")
    try:
        state = json.loads((d / STATE).read_text())
        was = state["keyring"]
    except (ValueError, KeyError, TypeError) as e:
        raise RepoError(f"{d / STATE} is malformed", reason="BAD_REPO") from e
    if published is not None and _sha(published) != was:
        raise RepoError(f"{published} changed since the digest was made: prepare and sign the "
                        "keyring again", reason="STALE_PENDING")
    return (d / SIGNED).read_bytes()


def clear_keyring_pending(d: Path) -> None:
    """Remove a completed keyring document's pending state."""
    _clear(d)
    with contextlib.suppress(OSError):
        d.rmdir()


__all__ = ["PENDING_DIR", "DetachedKey", "check_params", "clear_keyring_pending",
           "complete_manifest", "defer_keyring", "defer_manifest", "jsonable",
           "keyring_pending_dir", "load_keyring_pending", "load_pending", "pending_dir",
           "read_signature", "reserved_revision"]
