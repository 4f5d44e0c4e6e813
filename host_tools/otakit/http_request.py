"""Parsing what a client sends the repository server (`otakit.server`): the request path
(`resolve`), the strong ETag with ``If-None-Match`` / ``If-Range``, and one ``Range: bytes=``
range (RFC 9110 §13-14).

Invariants: any header text or path gives an answer, never an unexpected exception: a path with
bad percent-encoding raises `BadPath` (→ 400); a range is parsed with ASCII digits only
(``str.isdigit`` would take ``²`` or ``٣``) and is a range, "unsatisfiable", "ignore" or
`MALFORMED` (→ 400). Only `resolve` touches the filesystem (an ``lstat`` of each segment).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Literal
from urllib.parse import unquote_to_bytes

_DIGITS = frozenset("0123456789")
MALFORMED: Literal["malformed"] = "malformed"


def make_etag(st: os.stat_result) -> str:
    """A strong ETag from inode, size and modification time (changes on any atomic replace)."""
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match (weak comparison): a list of entity tags, or ``*``."""
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


def _number(s: str) -> int | None:
    """A non-negative decimal of ASCII digits (at most 18, so no huge ints), or None."""
    return int(s) if s and len(s) <= 18 and set(s) <= _DIGITS else None


def parse_range(value: str, size: int
                ) -> tuple[int, int] | None | Literal[False] | Literal["malformed"]:
    """Parse one ``Range`` header value against ``size``.

    Returns:
        (first, last) inclusive for a satisfiable range; False when unsatisfiable (→ 416); None
        when the header is to be ignored (another unit, several ranges; RFC 9110 allows serving
        the whole file); `MALFORMED` when a ``bytes=`` range is not ``a-b``, ``a-`` or ``-n``
        with ASCII digits (→ 400).
    """
    unit, eq, spec = value.partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None if eq and unit.strip().isascii() and unit.strip().isalpha() else MALFORMED
    if "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    first, last = _number(first_s), _number(last_s)
    if not dash or (first_s and first is None) or (last_s and last is None):
        return MALFORMED
    if first is None:  # suffix: the last n bytes
        if last is None:
            return MALFORMED
        return (max(0, size - last), size - 1) if last > 0 and size > 0 else False
    if last is not None and last < first:
        return MALFORMED
    if first >= size:
        return False
    return first, size - 1 if last is None else min(last, size - 1)


def choose_range(range_header: str | None, if_range: str | None, size: int, etag: str
                 ) -> tuple[int, int] | None | Literal[False] | Literal["malformed"]:
    """The byte range to send: `parse_range` of ``Range``, or None (the whole file) without
    one or when ``If-Range`` names another ETag (or a date)."""
    if range_header is None:
        return None
    if if_range is not None and if_range.strip() != etag:
        return None
    return parse_range(range_header, size)


class BadPath(ValueError):
    """A request path that is not valid percent-encoded UTF-8 (→ 400)."""


def resolve(root: Path, raw_path: str) -> str | None:
    """The regular file a raw request path names inside ``root``, or None (→ 404).

    Each segment is checked with one ``lstat`` below ``root``; only a path through a symlink
    pays for resolving it in full (and is then served only if it resolves inside ``root``).

    Args:
        root: the repository directory, already resolved.
        raw_path: the request path as sent (still percent-encoded), query string removed.

    Returns:
        The file's path as a string (``root`` joined with the segments, or the resolved
        target of a symlink).

    Raises:
        BadPath: a ``%`` not followed by two hex digits, or bytes that are not UTF-8.
    """
    if not raw_path.startswith("/"):
        return None
    parts = []
    for raw in raw_path[1:].split("/"):
        part = _unquote(raw) if "%" in raw else raw
        if (not part or part.startswith(".") or "/" in part or "\\" in part or "\0" in part):
            return None
        parts.append(part)
    if not parts:
        return None
    path = str(root).rstrip("/")
    mode = 0
    for part in parts:
        path += "/" + part
        try:
            mode = os.lstat(path).st_mode
        except (OSError, ValueError):
            return None
        if stat.S_ISLNK(mode):
            return _resolve_links(root, parts)
    return path if stat.S_ISREG(mode) else None


def _resolve_links(root: Path, parts: list[str]) -> str | None:
    """`resolve` for a path through a symlink: the regular file it resolves to inside
    ``root``, or None."""
    try:
        real = root.joinpath(*parts).resolve(strict=True)
        st = real.stat()
    except (OSError, ValueError, RuntimeError):
        return None
    if not real.is_relative_to(root) or not stat.S_ISREG(st.st_mode):
        return None
    return str(real)


def _unquote(raw: str) -> str:
    """Strict percent-decoding of one path segment (`BadPath` on anything else)."""
    if not _PCT.fullmatch(raw):
        raise BadPath("bad percent-encoding")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("percent-encoded bytes that are not UTF-8") from None


_PCT = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*")
