"""Signed revert (docs/format.md §2.6): send a channel's devices back to the release before.

The repository keeps a history of every manifest signed for a channel
(`otakit.repo.Repository.record`: releases, re-signings, reverts, under
``<repo>/.otakit/releases/<product>/<board>/<channel>/<revision>``, a dot-directory: never
served, never published). `make_revert` finds the channel's previous release there (the newest
recorded manifest with another sequence than the current one, which is what a device that took
the current release ran before, and so what its other slot holds) and signs a revert manifest
from it with the channel's next revision.

Invariants: the previous release's manifest must verify with the signing key and its payload
blob must be in the repository with the signed size and SHA-256 before anything is signed; a
revert never goes below the current release's ``security_version`` (devices would refuse it,
``SECURITY_FLOOR``); the current manifest is replaced atomically (`Repository.resign`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from otakit.errors import ManifestError, RepoError
from otakit.keys import PrivateKey
from otakit.manifest import verify_manifest
from otakit.manifest_body import ManifestBody
from otakit.repo import DEFAULT_EXPIRY, HISTORY_DIR, Repository, sha256_file

ACTION = "revert"


def is_revert(body: ManifestBody) -> bool:
    """Whether ``body`` is a signed revert (``"action": "revert"``)."""
    return body.extra.get("action") == ACTION


def _history(repo: Repository, where: tuple[str, str, str],
             key: PrivateKey) -> list[tuple[Path, ManifestBody]]:
    # The recorded manifests of the channel, newest first, each verified with the key.
    out = []
    for path in repo.history(*where):
        try:
            out.append((path, verify_manifest(path.read_bytes(), {key.key_id: key}).body))
        except ManifestError as e:
            raise RepoError(f"{path} does not verify with key {key.key_id_hex} ({e.reason}); "
                            "sign the revert with the key that signed the releases",
                            reason="VERIFY_FAILED") from e
    return out


def previous(repo: Repository, where: tuple[str, str, str], key: PrivateKey,
             cur: ManifestBody, to_sequence: int | None = None) -> ManifestBody:
    """The release ``cur`` (the channel's current one) replaced, as its body without
    ``action``/``reverted_from``: the newest recorded manifest with another sequence, or with
    ``to_sequence`` the newest recorded one of that sequence.

    Raises:
        RepoError: nothing recorded to go back to (``NO_REPO``), a recorded manifest does not
            verify (``VERIFY_FAILED``), ``to_sequence`` not below the current one
            (``BAD_ARGUMENT``).
    """
    name = "/".join(where)
    if to_sequence is not None and to_sequence >= cur.sequence:
        raise RepoError(f"--to-sequence {to_sequence} is not below {name}'s current sequence "
                        f"{cur.sequence}", reason="BAD_ARGUMENT")
    for _, body in _history(repo, where, key):
        if body.sequence != cur.sequence and to_sequence in (None, body.sequence):
            extra = {k: v for k, v in body.extra.items() if k not in ("action", "reverted_from")}
            return dataclasses.replace(body, extra=extra)
    which = f"sequence {to_sequence}" if to_sequence is not None else "an earlier release"
    raise RepoError(f"{name} has no record of {which} in {HISTORY_DIR} (releases published "
                    "before it was kept are not there)", reason="NO_REPO")


def make_revert(repo: Repository, where: tuple[str, str, str], key: PrivateKey, *,
                expires: int | None = None, to_sequence: int | None = None,
                now: int | None = None) -> ManifestBody:
    """Sign and publish a revert of the channel to its previous release (`previous`).

    The body is that release's (version, sequence, security version, payload and encoded
    payloads whose blobs are present, notes, security, disruption, sbom) with ``action``,
    ``reverted_from`` (the current sequence), the next revision, the current min_keyring,
    ``created`` = now, ``expires`` (default 90 days), the later support end and no rollout.

    Raises:
        RepoError: no current release (``NO_REPO``); the current manifest is a revert already
            (``BAD_ARGUMENT``); the previous release's security version is below the current
            one (``SECURITY_FLOOR``); its payload is missing or differs (``MISSING_PAYLOAD``);
            see `previous`.
    """
    now = int(time.time()) if now is None else now
    name = "/".join(where)
    cur = repo.current(*where)
    if cur is None:
        raise RepoError(f"{name} has no release to revert", reason="NO_REPO")
    if is_revert(cur):
        raise RepoError(f"{name} is a revert to version {cur.version} (sequence {cur.sequence}) "
                        "already: its devices hold the release they reverted from in the other "
                        "slot, not an older one; publish a new release instead",
                        reason="BAD_ARGUMENT")
    prev = previous(repo, where, key, cur, to_sequence)
    if prev.security_version < cur.security_version:
        raise RepoError(f"version {prev.version} has security version {prev.security_version}, "
                        f"below the current {cur.security_version}: devices that installed "
                        f"{cur.version} refuse to go back to it", reason="SECURITY_FLOOR")
    blob = repo.root / prev.payload.path
    if not blob.is_file() or sha256_file(blob) != (prev.payload.size, prev.payload.sha256):
        raise RepoError(f"{prev.payload.path} (version {prev.version}) is absent or differs from "
                        "its signed size and SHA-256", reason="MISSING_PAYLOAD")
    reps = tuple(r for r in prev.payloads if (repo.root / r.path).is_file())
    body = dataclasses.replace(
        prev, extra={**prev.extra, "action": ACTION, "reverted_from": cur.sequence},
        payloads=reps, rollout=None, created=now,
        expires=now + DEFAULT_EXPIRY if expires is None else expires,
        support_end=max(prev.support_end, cur.support_end))
    body, _ = repo.resign(body, key)  # recorded in the history by resign
    return body


__all__ = ["ACTION", "is_revert", "make_revert", "previous"]
