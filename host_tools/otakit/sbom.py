"""A CycloneDX 1.5 JSON SBOM for a release (`otakit release --sbom`, docs/fleet.md).

What goes in, and where it comes from:
- the firmware (metadata.component): product, version, the image's SHA-256, board and chip;
- ESP-IDF: the version in the image's app descriptor (offset 0x20 + 112);
- MicroPython: the version in the image's banner string (``MicroPython vX.Y.Z on DATE``);
- the otakit agent: ``__version__`` of the frozen ``ota`` package;
- frozen modules: the ``*.py``/``*.mpy`` module names found in the image, and each file of the
  frozen-modules directory (``--frozen``, default: the agent shipped with otakit) with its
  SHA-256. A module found only in the image is listed without a hash.

Invariants: the document is deterministic for the same inputs (serial number derived from the
image hash and release, timestamp from the release's signing time), so re-running a release
gives the same bytes, hence the same hash in the manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from otakit import __version__
from otakit.boards import Board
from otakit.image import check_app_image
from otakit.paths import FIRMWARE_DIR

_BANNER_RE = re.compile(rb"MicroPython (v\d+\.\d+\.\d+[0-9A-Za-z.+-]*) on (\d{4}-\d{2}-\d{2})")
_MODULE_RE = re.compile(rb"(?<=\x00)([A-Za-z0-9_][A-Za-z0-9_/]{0,63}\.m?py)(?=\x00)")
_VERSION_RE = re.compile(r"""^__version__\s*=\s*["']([^"']{1,32})["']""", re.M)


def micropython_version(image: bytes) -> tuple[str, str] | None:
    """(version, build date) from the image's banner, or None."""
    m = _BANNER_RE.search(image)
    return (m[1].decode(), m[2].decode()) if m else None


def frozen_names(image: bytes) -> list[str]:
    """Module file names (``asyncio/core.py``) stored as strings in the image, sorted."""
    return sorted({m.decode() for m in _MODULE_RE.findall(image)})


def frozen_files(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every .py/.mpy file under ``root`` (dot-files skipped)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and p.suffix in (".py", ".mpy") and not any(
                part.startswith((".", "__pycache__")) for part in rel.parts):
            out[rel.as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def agent_version(root: Path) -> str | None:
    """``__version__`` of ``root/ota/__init__.py``, or None."""
    init = root / "ota" / "__init__.py"
    m = _VERSION_RE.search(init.read_text(errors="replace")) if init.is_file() else None
    return m[1] if m else None


def _component(kind: str, ref: str, name: str, version: str | None = None,
               **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"type": kind, "bom-ref": ref, "name": name}
    if version:
        c["version"] = version
    c.update(extra)
    return c


def _hash(h: str) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": h}]


def make_sbom(image: bytes, board: Board, product: str, version: str,
              frozen_dir: Path | None = None, now: int = 0) -> bytes:
    """The SBOM of one release, as compact UTF-8 JSON.

    Raises:
        ImageError: ``image`` is not an app image for ``board``.
    """
    info = check_app_image(image, board)
    frozen_root = frozen_dir or FIRMWARE_DIR
    files = frozen_files(frozen_root)
    in_image = frozen_names(image)
    comps = [_component("framework", "esp-idf", "ESP-IDF", info.idf_version or None,
                        purl=f"pkg:github/espressif/esp-idf@{info.idf_version}"
                        if info.idf_version else None,
                        description="from the image's app descriptor")]
    mp = micropython_version(image)
    if mp:
        comps.append(_component("framework", "micropython", "MicroPython", mp[0],
                                purl=f"pkg:github/micropython/micropython@{mp[0]}",
                                description=f"from the image's banner (built {mp[1]})"))
    av = agent_version(frozen_root)
    if av:
        comps.append(_component("library", "otakit-agent", "otakit agent (ota)", av,
                                description="the frozen update agent"))
    for name in sorted(set(files) | set(in_image)):
        extra: dict[str, Any] = {"properties": [
            {"name": "otakit:frozen-module", "value": "true"},
            {"name": "otakit:found-in-image", "value": str(name in in_image).lower()}]}
        if name in files:
            extra["hashes"] = _hash(files[name])
        comps.append(_component("file", f"frozen:{name}", name, **extra))
    for c in comps:
        for k in [k for k, v in c.items() if v is None]:
            del c[k]
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"otakit:{product}:{board.name}:{version}:"
                                            f"{info.sha256}:{now}")
    doc = {
        "bomFormat": "CycloneDX", "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{serial}", "version": 1,
        "metadata": {
            "timestamp": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [_component("application", "otakit", "otakit",
                                                __version__)]},
            "component": _component(
                "firmware", "firmware", product, version, hashes=_hash(info.sha256),
                properties=[{"name": "otakit:board", "value": board.name},
                            {"name": "otakit:chip", "value": board.chip},
                            {"name": "otakit:image-size", "value": str(info.size)},
                            {"name": "otakit:project-name", "value": info.project_name}]),
        },
        "components": comps,
        "dependencies": [{"ref": "firmware", "dependsOn": [c["bom-ref"] for c in comps]}],
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


__all__ = ["agent_version", "frozen_files", "frozen_names", "make_sbom", "micropython_version"]
