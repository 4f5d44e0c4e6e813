"""What a release asks for, and what follows from it before the repository is written.

`ReleaseRequest` holds `otakit release`'s arguments; `parse_expiry` reads ``--expires``.
`check_forward` applies a channel's forward-only checks (docs/format.md §4) to a request against
the channel's current body; `encode_representations` makes the encoded payloads a request asks
for (docs/format.md §2.2). Nothing here touches the filesystem: `otakit.repo.Repository` reads the
channel's current state, calls these, signs and writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from dataclasses import dataclass

from otakit.boards import Board
from otakit.errors import RepoError
from otakit.image import check_app_image
from otakit.manifest_body import MAX_REPRESENTATIONS, ManifestBody, Representation, valid_date
from otakit.payloads import (DEFAULT_WBITS, Encoded, deflate_chunked, delta_chunked,
                             encrypt_chunks, new_nonce)

BLOB_DIR = "blobs/sha256"
_DURATION_RE = re.compile(r"([0-9]+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_EXPIRY = 90 * 86400  # `otakit release` without --expires / --no-expiry


@dataclass(frozen=True)
class ReleaseRequest:
    """What to publish. None means: inherit from the channel's current release (or default).

    ``security`` is ``{"severity", "risk"}``; ``disruption`` is ``{"reboot", "seconds"}``.
    ``support_end`` is required on a channel's first release. ``deflate`` and ``delta_bases``
    (the exact app images devices may be running) add representations (docs/format.md §2.2),
    each a DEFLATE stream with a ``2**wbits``-byte window, beside the raw payload, resumable
    at the chunk boundaries the manifest lists.
    """

    product: str
    board: Board
    channel: str
    version: str
    sequence: int
    security_version: int | None = None
    expires: int | None = None
    notes: str | None = None
    support_end: str | None = None
    security: dict[str, str] | None = None
    disruption: dict[str, object] | None = None
    rollout: dict[str, object] | None = None
    deflate: bool = False
    delta_bases: tuple[bytes, ...] = ()
    wbits: int = DEFAULT_WBITS
    encrypt_key: bytes | None = None  # a content key: the payload is encrypted (format §2.8)


def parse_expiry(text: str, now: int) -> int:
    """Parse ``--expires``: a duration (``90d``, ``12h``, ``2w``), a date or ISO datetime (UTC
    unless it carries an offset), or Unix seconds.

    Raises:
        RepoError: unparseable, or not in the future.
    """
    text = text.strip()
    m = _DURATION_RE.fullmatch(text)
    if m:
        when = now + int(m[1]) * _UNITS[m[2]]
    elif text.isdigit():
        when = int(text)
    else:
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as e:
            raise RepoError(f"--expires {text!r}: use a duration (90d, 12h, 2w), an ISO date or "
                            "Unix seconds", reason="BAD_ARGUMENT") from e
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        when = int(parsed.timestamp())
    if when <= now:
        raise RepoError(f"--expires {text!r} is not in the future", reason="BAD_ARGUMENT")
    return when


def check_forward(req: ReleaseRequest, cur: ManifestBody | None, now: int) -> tuple[int, str]:
    """The ``security_version`` and ``support_end`` a release gets, after the channel's
    forward-only checks against ``cur``, its current body (None on a new channel).

    Raises:
        RepoError: sequence not higher (than the current one, and than the one a revert
            replaced), security version or support end lower, no support
            end on a first release, or a support end in the past (``ROLLBACK`` /
            ``SECURITY_FLOOR`` / ``BAD_ARGUMENT``).
    """
    where = f"{req.product}/{req.board.name}/{req.channel}"
    if cur is not None and req.sequence <= cur.sequence:
        raise RepoError(f"sequence {req.sequence} is not above {where}'s current "
                        f"{cur.sequence} (version {cur.version})", reason="ROLLBACK")
    gone = cur.extra.get("reverted_from") if cur is not None else None  # a signed revert's
    if type(gone) is int and req.sequence <= gone:  # (§2.6): devices may still run that one
        raise RepoError(f"sequence {req.sequence} is not above {gone}, the release {where} "
                        "was reverted from", reason="ROLLBACK")
    floor = cur.security_version if cur else 0
    sec = floor if req.security_version is None else req.security_version
    if sec < floor:
        raise RepoError(f"security version {sec} is below {where}'s current {floor}",
                        reason="SECURITY_FLOOR")
    support_end = req.support_end or (cur.support_end if cur else None)
    if support_end is None:
        raise RepoError(f"{where} has no release yet: give --support-end YYYY-MM-DD (the end of "
                        "the published support period)", reason="BAD_ARGUMENT")
    if not valid_date(support_end) or not _real_date(support_end):
        raise RepoError(f"--support-end {support_end!r} is not a YYYY-MM-DD date",
                        reason="BAD_ARGUMENT")
    if cur is not None and support_end < cur.support_end:
        raise RepoError(f"--support-end {support_end} would shorten {where}'s published support "
                        f"period (currently {cur.support_end})", reason="BAD_ARGUMENT")
    if support_end < time.strftime("%Y-%m-%d", time.gmtime(now)):
        raise RepoError(f"--support-end {support_end} is in the past", reason="BAD_ARGUMENT")
    return sec, support_end


def _real_date(s: str) -> bool:
    try:
        dt.date.fromisoformat(s)
    except ValueError:
        return False
    return True


def encode_representations(req: ReleaseRequest,
                           image: bytes) -> list[tuple[Representation, bytes]]:
    """The representations ``req`` asks for, with their bytes (not written yet), each named
    by its blob path under `BLOB_DIR`.

    Raises:
        ImageError: a delta base is not an app image for the board.
        RepoError: more than four representations (``BAD_ARGUMENT``).
    """
    if req.deflate + len(req.delta_bases) > MAX_REPRESENTATIONS:
        raise RepoError(f"at most {MAX_REPRESENTATIONS} encoded payloads per release",
                        reason="BAD_ARGUMENT")
    out = []
    key = req.encrypt_key
    align = 1 if key is None else 16  # encrypted per chunk (docs/format.md §2.8)
    if req.deflate:  # resumable: chunks listed in the manifest (docs/format.md §2.2)
        z, nonce = _encrypted(deflate_chunked(image, req.wbits, align=align), key)
        sha = hashlib.sha256(z.data).hexdigest()
        out.append((Representation("deflate", f"{BLOB_DIR}/{sha}", len(z.data), sha,
                                   req.wbits, chunk=z.chunk, chunks=z.lengths, nonce=nonce),
                    z.data))
    for base in req.delta_bases:
        info = check_app_image(base, req.board)
        d, nonce = _encrypted(delta_chunked(base, image, req.wbits, align=align), key)
        sha = hashlib.sha256(d.data).hexdigest()
        out.append((Representation("delta", f"{BLOB_DIR}/{sha}", len(d.data), sha, req.wbits,
                                   info.size, info.sha256, d.chunk, d.lengths, d.bases, nonce),
                    d.data))
    return out


def _encrypted(enc: Encoded, key: bytes | None) -> tuple[Encoded, str | None]:
    """``enc`` encrypted under ``key`` with a fresh nonce of its own, and that nonce (hex);
    ``enc`` itself when there is no key."""
    if key is None:
        return enc, None
    nonce = new_nonce()
    return encrypt_chunks(enc, key, nonce), nonce.hex()


__all__ = ["BLOB_DIR", "DEFAULT_EXPIRY", "ReleaseRequest", "check_forward",
           "encode_representations", "parse_expiry"]
