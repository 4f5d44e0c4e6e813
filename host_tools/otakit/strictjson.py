"""Strict JSON for signed bodies (docs/format.md §2.5): what the device's ``ota.strictjson``
accepts, parsed to the same values.

Manifest and keyring bodies are parsed here so that the host tools and the device never
disagree about a signed document: strict UTF-8 (no BOM, no overlong forms, no encoded
surrogates, nothing above U+10FFFF), RFC 8259 syntax (so no ``NaN``/``Infinity``), no ``\\u`` escape of a surrogate (paired or not), no duplicate key,
arrays and objects nested at most ``limit`` deep.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 16  # the deepest nesting of arrays/objects a manifest or keyring body may have

# A backslash and what it escapes, scanned left to right so `\\ud800` is not an escape.
_ESCAPE = re.compile(r"\\(?:u[dD][89a-fA-F][0-9a-fA-F]{2}|.)", re.S)


class StrictJSONError(ValueError):
    """``data`` is not strict JSON; the message is a short detail."""


def _refuse_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise StrictJSONError("duplicate key")
    return d


def depth(data: bytes) -> int:
    """The deepest nesting of arrays/objects in JSON ``data``, brackets inside strings skipped."""
    d = deepest = 0
    in_str = esc = False
    for c in data:
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:
                esc = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            d += 1
            deepest = max(deepest, d)
        elif c in (0x5D, 0x7D):
            d -= 1
    return deepest


def loads(data: bytes, limit: int = MAX_DEPTH) -> Any:
    """Parse ``data`` as strict JSON.

    Raises:
        StrictJSONError: it is not (a ValueError; the message is a short detail).
    """
    if depth(data) > limit:
        raise StrictJSONError(f"nested deeper than {limit}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StrictJSONError("invalid UTF-8") from None
    for m in _ESCAPE.finditer(text):
        if len(m.group()) == 6:
            raise StrictJSONError("surrogate escape")
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_refuse_constant)
    except StrictJSONError:
        raise
    except ValueError as e:  # JSONDecodeError; also a BOM
        raise StrictJSONError(f"not JSON ({e})") from None
