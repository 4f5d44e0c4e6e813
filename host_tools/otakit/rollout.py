"""Staged rollouts (docs/format.md §2.3): re-sign a channel's manifest with a new ``rollout``.

A rollout is part of the signed manifest, so it works on any static host or CDN: the device
decides from its own bucket. The operations keep the release (sequence, payload) and its salt and
change only ``percent`` / ``state`` (and ``created``, the signing time, and ``revision`` /
``min_keyring``, which every re-signing advances, `Repository.resign`: a device then refuses a
replay of the earlier document as OLD_REVISION):

- `start`: stage the current release at a percentage, with a fresh random salt;
- `raise_to`: a higher percentage (never lower: that would take the release away from devices
  that were offered it, while the ones that installed it keep it);
- `pause` / `resume`: stop and restart offering it to devices that do not have it yet;
- `abort`: stop offering it for good (devices that updated stay updated; publish a fixed release
  with a higher sequence to move on); an unstaged release gets an aborted rollout at 0 %;
- `lift`: re-sign the manifest unchanged, which ends a withhold (`otakit.withhold`): the
  operator's "resume" of a release its threshold withheld.

Targeting (docs/format.md §2.7): `cohort` limits the release to a named list of at most 64
devices, `pin` keeps a device at or below a sequence (pins are carried into later releases);
both are fields of the signed manifest, so any static host serves them.

Channel policy: `set_policy` makes a channel staged; `otakit release` then starts every release
there at the policy's percentage, unless it is a security release published with
``--skip-staging``. The policy lives in ``<repo>/.otakit/policy.json`` (a dot-directory: never
served, never published).

Invariants: the current manifest must verify with the signing key before it is re-signed (so a
tampered body is never signed again); files are replaced atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otakit.errors import ManifestError, RepoError
from otakit.keys import PrivateKey
from otakit.manifest import verify_manifest
from otakit.manifest_body import ManifestBody
from otakit.repo import Repository, read_published, write_atomic

POLICY_FILE = ".otakit/policy.json"


def new_salt(sequence: int) -> str:
    """A fresh salt for a release: ``r<sequence>-<8 random hex>``."""
    return f"r{sequence}-{secrets.token_hex(4)}"


def _current(repo: Repository, where: tuple[str, str, str], key: PrivateKey) -> ManifestBody:
    path = repo.manifest_path(*where)
    if not path.is_file():
        raise RepoError(f"{'/'.join(where)} has no release", reason="NO_REPO")
    data = path.read_bytes()
    try:
        return verify_manifest(data, {key.key_id: key}).body
    except ManifestError as e:
        if e.reason == "BAD_BODY":  # the signature holds: a body without revision is re-signed
            with contextlib.suppress(ManifestError):
                return read_published(data).body
        raise RepoError(f"{path} does not verify with key {key.key_id_hex} ({e.reason}); "
                        "re-sign rollouts with the key that signed the release",
                        reason="VERIFY_FAILED") from e


def _resign(repo: Repository, where: tuple[str, str, str], key: PrivateKey,
            body: ManifestBody, rollout: dict[str, Any] | None, now: int | None) -> ManifestBody:
    new = dataclasses.replace(body, rollout=rollout,
                              created=int(time.time()) if now is None else now)
    return repo.resign(new, key)[0]


def _check_percent(percent: int) -> None:
    if not 0 <= percent <= 100:
        raise RepoError(f"percent {percent} is not 0..100", reason="BAD_ARGUMENT")


def start(repo: Repository, where: tuple[str, str, str], key: PrivateKey, percent: int,
          now: int | None = None) -> ManifestBody:
    """Stage the channel's current release at ``percent`` with a fresh salt.

    Raises:
        RepoError: no release, it does not verify with ``key``, or percent out of range.
    """
    _check_percent(percent)
    body = _current(repo, where, key)
    if body.rollout is not None and body.rollout["state"] == "aborted":
        raise RepoError(f"the rollout of sequence {body.sequence} was aborted; publish a new "
                        "release", reason="BAD_ARGUMENT")
    rollout = {"percent": percent, "salt": new_salt(body.sequence), "state": "active"}
    return _resign(repo, where, key, body, rollout, now)


def _staged(repo: Repository, where: tuple[str, str, str], key: PrivateKey) -> ManifestBody:
    body = _current(repo, where, key)
    if body.rollout is None:
        raise RepoError(f"{'/'.join(where)} sequence {body.sequence} is not staged (it is "
                        "offered to every device); `otakit rollout start` first",
                        reason="BAD_ARGUMENT")
    return body


def raise_to(repo: Repository, where: tuple[str, str, str], key: PrivateKey, percent: int,
             now: int | None = None) -> ManifestBody:
    """Raise an active or paused rollout to ``percent`` (same salt: only adds devices).

    Raises:
        RepoError: not staged, aborted, or ``percent`` lower than the current one.
    """
    _check_percent(percent)
    body = _staged(repo, where, key)
    r = body.rollout
    assert r is not None
    if r["state"] == "aborted":
        raise RepoError("the rollout was aborted; publish a new release", reason="BAD_ARGUMENT")
    if percent < r["percent"]:
        raise RepoError(f"percent {percent} is below the current {r['percent']}: a rollout only "
                        "grows (pause or abort it instead)", reason="BAD_ARGUMENT")
    return _resign(repo, where, key, body, {**r, "percent": percent}, now)


def set_state(repo: Repository, where: tuple[str, str, str], key: PrivateKey, state: str,
              now: int | None = None) -> ManifestBody:
    """Pause (``paused``), resume (``active``) or abort (``aborted``) a staged rollout.

    Raises:
        RepoError: not staged, or resuming/pausing an aborted rollout.
    """
    if state == "aborted":  # any release can be aborted, staged or not (a withheld one too)
        body = _current(repo, where, key)
        r = body.rollout or {"percent": 0, "salt": new_salt(body.sequence), "state": "aborted"}
        return _resign(repo, where, key, body, {**r, "state": state}, now)
    body = _staged(repo, where, key)
    r = body.rollout
    assert r is not None
    if r["state"] == "aborted" and state != "aborted":
        raise RepoError("the rollout was aborted; publish a new release", reason="BAD_ARGUMENT")
    return _resign(repo, where, key, body, {**r, "state": state}, now)


def lift(repo: Repository, where: tuple[str, str, str], key: PrivateKey,
         now: int | None = None) -> ManifestBody:
    """Offer a withheld release again (`otakit.withhold`): re-sign the channel's manifest
    unchanged but for ``created`` and the next ``revision``, which ends the withhold.

    Raises:
        RepoError: no release, or it does not verify with ``key``.
    """
    body = _current(repo, where, key)
    return _resign(repo, where, key, body, body.rollout, now)


MAX_COHORT = 64  # members of a cohort (docs/format.md §2.7; the device refuses more)
MAX_PINS = 32
_DEVICE_RE = re.compile(r"[A-Za-z0-9._-]{8,64}")
_COHORT_RE = re.compile(r"[a-z0-9._-]{1,32}")


def member(device_id: str) -> str:
    """A device's member hash in cohorts and pins: ``hex(SHA-256("otakit-member\\0" id)[0:8])``
    of its pseudonymous id (docs/format.md §2.7).

    Raises:
        RepoError: ``BAD_ARGUMENT`` for an id that is not 8-64 of ``[A-Za-z0-9._-]``.
    """
    if not _DEVICE_RE.fullmatch(device_id):
        raise RepoError(f"{device_id!r} is not a device id (8-64 of A-Z a-z 0-9 . _ -)",
                        reason="BAD_ARGUMENT")
    return hashlib.sha256(b"otakit-member\0" + device_id.encode()).hexdigest()[:16]


def _resign_extra(repo: Repository, where: tuple[str, str, str], key: PrivateKey,
                  body: ManifestBody, name: str, value: Any, now: int | None) -> ManifestBody:
    extra = {k: v for k, v in body.extra.items() if k != name}
    if value is not None:
        extra[name] = value
    new = dataclasses.replace(body, extra=extra,
                              created=int(time.time()) if now is None else now)
    return repo.resign(new, key)[0]


def cohort(repo: Repository, where: tuple[str, str, str], key: PrivateKey, name: str | None,
           add: Sequence[str] = (), remove: Sequence[str] = (),
           now: int | None = None) -> ManifestBody:
    """Target the channel's current release at a cohort: add or remove devices (by their
    pseudonymous ids) of the cohort ``name``; ``name`` None clears the cohort (every device).
    A cohort left without members is cleared.

    Raises:
        RepoError: a bad name or device id, another cohort's name, more than `MAX_COHORT`.
    """
    body = _current(repo, where, key)
    cur = body.extra.get("cohort")
    if name is None:
        return _resign_extra(repo, where, key, body, "cohort", None, now)
    if not _COHORT_RE.fullmatch(name):
        raise RepoError(f"{name!r} is not a cohort name (1-32 of a-z 0-9 . _ -)",
                        reason="BAD_ARGUMENT")
    if cur is not None and cur.get("name") != name:
        raise RepoError(f"the release targets the cohort {cur.get('name')!r}; clear it first",
                        reason="BAD_ARGUMENT")
    members = list(cur["members"]) if cur else []
    for d in add:
        if member(d) not in members:
            members.append(member(d))
    gone = {member(d) for d in remove}
    members = [m for m in members if m not in gone]
    if len(members) > MAX_COHORT:
        raise RepoError(f"a cohort has at most {MAX_COHORT} devices, not {len(members)}",
                        reason="BAD_ARGUMENT")
    value = {"name": name, "members": members} if members else None
    return _resign_extra(repo, where, key, body, "cohort", value, now)


def pin(repo: Repository, where: tuple[str, str, str], key: PrivateKey, device: str,
        sequence: int | None, now: int | None = None) -> ManifestBody:
    """Pin a device (its pseudonymous id) to ``sequence``: it takes no release above it (None:
    unpin). Pins are carried into the channel's next releases (`Repository.plan`).

    Raises:
        RepoError: a bad device id or sequence, more than `MAX_PINS` pins.
    """
    body = _current(repo, where, key)
    h = member(device)
    pins = [p for p in body.extra.get("pins", []) if p.get("member") != h]
    if sequence is not None:
        if not 1 <= sequence <= 2**31 - 1:
            raise RepoError(f"sequence {sequence} is not 1..2^31-1", reason="BAD_ARGUMENT")
        pins.append({"member": h, "sequence": sequence})
    if len(pins) > MAX_PINS:
        raise RepoError(f"at most {MAX_PINS} devices can be pinned", reason="BAD_ARGUMENT")
    return _resign_extra(repo, where, key, body, "pins", pins or None, now)


def load_policy(root: Path) -> dict[str, int]:
    """``product/board/channel`` -> start percent, for the staged channels."""
    path = Path(root) / POLICY_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): int(v) for k, v in data.get("staged", {}).items()}
    except (ValueError, AttributeError, TypeError) as e:
        raise RepoError(f"{path} is malformed", reason="BAD_REPO") from e


def set_policy(root: Path, where: tuple[str, str, str], start_percent: int | None) -> None:
    """Make a channel staged at ``start_percent`` (None: not staged)."""
    if start_percent is not None:
        _check_percent(start_percent)
    policy = load_policy(root)
    name = "/".join(where)
    if start_percent is None:
        policy.pop(name, None)
    else:
        policy[name] = start_percent
    path = Path(root) / POLICY_FILE
    data = json.loads(path.read_text()) if path.is_file() else {}
    data["staged"] = policy  # other tables (otakit.withhold's thresholds) are kept
    write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def initial_rollout(root: Path, where: tuple[str, str, str], sequence: int,
                    percent: int | None, security: bool,
                    skip_staging: bool) -> dict[str, Any] | None:
    """The ``rollout`` a new release gets: ``percent`` if given, else the channel's policy;
    none for a security release published with ``skip_staging``.

    Raises:
        RepoError: ``skip_staging`` on a release that is not a security release, or together
            with a percentage.
    """
    if skip_staging:
        if not security:
            raise RepoError("--skip-staging is for security releases only (--security)",
                            reason="BAD_ARGUMENT")
        if percent is not None:
            raise RepoError("--skip-staging and --rollout contradict each other",
                            reason="BAD_ARGUMENT")
        return None
    if percent is None:
        percent = load_policy(root).get("/".join(where))
    if percent is None:
        return None
    _check_percent(percent)
    return {"percent": percent, "salt": new_salt(sequence), "state": "active"}


__all__ = ["MAX_COHORT", "MAX_PINS", "POLICY_FILE", "cohort", "initial_rollout", "lift",
           "load_policy", "member", "new_salt", "pin", "raise_to",
           "set_policy", "set_state", "start"]
