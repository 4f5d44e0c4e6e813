"""The device package's structure (issue 14), read from the source with ``ast``: no import
cycles between device modules (function-local imports included), no module imports another's
private name, and only ota.state and its second half ota.stateops name an NVS key."""

from __future__ import annotations

import ast
from pathlib import Path

from otakit.paths import FIRMWARE_DIR

OTA = FIRMWARE_DIR / "ota"
STATE_HOME = {"state", "stateops"}
NVS_CALLS = {"i32", "blob", "text", "erase", "set_i32", "set_blob", "get_i32", "get_blob",
             "erase_key", "keyring_keys"}


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(OTA.glob("*.py"))}


def _imports(name: str, tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(imported ota module, names taken from it) for every import anywhere in the module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1 or mod == "ota" or mod.startswith("ota."):
                base = mod[4:] if mod.startswith("ota.") else ("" if mod == "ota" else mod)
                if base:
                    out.append((base.split(".")[0], [a.name for a in node.names]))
                else:  # from . import x / from ota import x: x is a submodule or the package
                    for a in node.names:
                        out.append(((a.name if (OTA / f"{a.name}.py").exists() else "__init__"),
                                    [] if (OTA / f"{a.name}.py").exists() else [a.name]))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("ota."):
                    out.append((a.name[4:].split(".")[0], []))
    return [(m, names) for m, names in out if m != name]


def _graph() -> dict[str, set[str]]:
    return {name: {m for m, _ in _imports(name, tree)} for name, tree in _modules().items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt, path + [node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_the_walk_sees_function_local_imports() -> None:
    # ota.agent (and its second half ota.agentops) loads its phases inside its methods: the walk
    # must see those edges
    graph = _graph()
    assert {"download", "encoded", "report", "state", "slot", "agentops", "info"} <= graph["agent"]
    assert {"check", "httpsmall", "info"} <= graph["agentops"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_device_modules_import_no_cycle() -> None:
    graph = _graph()
    graph.pop("__init__", None)  # the package's deferred factories import what they make
    for deps in graph.values():
        deps.discard("__init__")  # `from . import release`: the package, not a phase
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_device_module_imports_a_private_name_of_another() -> None:
    bad = [f"{name} imports {m}.{n}" for name, tree in _modules().items()
           for m, names in _imports(name, tree) for n in names if n.startswith("_")]
    assert not bad, bad


def _nvs_keys(tree: ast.Module) -> set[str]:
    keys = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in NVS_CALLS):
            keys |= {a.value for a in node.args
                     if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return keys


def _nvs_users(tree: ast.Module) -> bool:
    return any((isinstance(n, ast.Attribute) and n.attr in ("nvs", "NVS"))
               for n in ast.walk(tree))


def test_only_the_state_home_names_an_nvs_key() -> None:
    mods = _modules()
    keys = set().union(*(_nvs_keys(mods[m]) for m in STATE_HOME))
    assert {"seq", "floor", "t_seq", "d_off", "kr_v", "rpt", "bad"} <= keys  # the walk finds them
    outside = {name: sorted(_nvs_keys(tree)) for name, tree in mods.items()
               if name not in STATE_HOME and _nvs_keys(tree)}
    assert not outside, outside
    assert [name for name, tree in mods.items() if _nvs_users(tree)] == ["state", "stateops"]
