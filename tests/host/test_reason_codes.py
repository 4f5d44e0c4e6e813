"""The reason codes the device and the host use are the ones docs/format.md §5 lists.

Read from the sources (ast), not from a list kept here: on the device, the first argument of every
`...Error(...)` and `notice(...)` call and every `(reason, detail)` pair a boot/trial records; on
the host, every constant `reason=` of an `OtakitError` (or subclass) and every constant second
argument of one. Device codes must be in the §5 table; host codes in §5 or §5.1 (host-only); and
every code the doc lists is used by one side or the other.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from otakit.paths import FIRMWARE_DIR, ROOT

CODE = re.compile(r"[A-Z][A-Z0-9_]{2,}")
FORMAT = ROOT / "docs" / "format.md"


def _doc() -> tuple[set[str], set[str]]:
    text = FORMAT.read_text()
    main = text[text.index("\n## 5. "):text.index("\n### 5.1 ")]
    host = text[text.index("\n### 5.1 "):text.index("\n## 6. ")]
    return (set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", main, re.M)),
            set(re.findall(r"`([A-Z][A-Z0-9_]+)`", host)))


def _code(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.fullmatch(node.value):
        return node.value
    return None


def _name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _uses(files: list[Path], device: bool) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            found: list[str | None] = []
            if isinstance(node, ast.Call) and _name(node).endswith("Error"):
                found.append(_code(node.args[0] if device and node.args else
                                   node.args[1] if len(node.args) > 1 else None))
                found += [_code(k.value) for k in node.keywords if k.arg == "reason"]
            elif device and isinstance(node, ast.Call) and _name(node) == "notice" and node.args:
                found.append(_code(node.args[0]))
            elif device and isinstance(node, ast.Tuple) and len(node.elts) == 2:
                # a (reason, detail) pair, as ota.trial records a failed trial
                if isinstance(node.elts[1], (ast.Constant, ast.BinOp, ast.JoinedStr)):
                    found.append(_code(node.elts[0]))
            for c in found:
                if isinstance(c, str) and CODE.fullmatch(c):
                    used.setdefault(c, set()).add(path.name)
    return used


def _device_sources() -> list[Path]:
    return sorted(FIRMWARE_DIR.rglob("*.py"))


def _host_sources() -> list[Path]:
    return sorted((ROOT / "host_tools" / "otakit").rglob("*.py"))


def test_the_collection_sees_both_sides() -> None:
    # the rules above find codes raised, recorded by a trial and kept as a settings notice
    device, host = _uses(_device_sources(), True), _uses(_host_sources(), False)
    assert {"BAD_SIGNATURE", "HEALTH_FAILED", "ROLLED_BACK", "BAD_SETTINGS", "BAD_CONFIG",
            "SHORT_READ", "READBACK_MISMATCH"} <= device.keys()
    assert {"BAD_SIGNATURE", "NOT_PRIVATE", "NO_REPO"} <= host.keys()


def test_device_codes_are_the_format_doc_codes() -> None:
    main, _ = _doc()
    device = _uses(_device_sources(), True)
    missing = {c: sorted(f) for c, f in device.items() if c not in main}
    assert missing == {}, "device codes missing from docs/format.md §5"


def test_host_codes_are_in_the_format_doc() -> None:
    main, host_only = _doc()
    host = _uses(_host_sources(), False)
    missing = {c: sorted(f) for c, f in host.items() if c not in main | host_only}
    assert missing == {}, "host codes missing from docs/format.md §5 / §5.1"


def test_every_documented_code_is_used() -> None:
    main, host_only = _doc()
    device, host = _uses(_device_sources(), True), _uses(_host_sources(), False)
    assert sorted(main - device.keys() - host.keys()) == []
    # a §5.1 code is host-only: the device never uses it
    assert sorted(host_only & device.keys() - main) == []
    # §5.1 codes are used by the host (by a reason= or as a reported string, e.g. otakit verify)
    text = "\n".join(p.read_text() for p in _host_sources())
    assert sorted(c for c in host_only if not re.search(rf"\b{c}\b", text)) == []
