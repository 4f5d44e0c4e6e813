"""Host package layering: the product never imports the simulator, and each top-level command
lives in the CLI module named after it."""

from __future__ import annotations

import ast
from pathlib import Path

import click

import otakit
from otakit.cli import _register, cli

PACKAGE = Path(otakit.__file__).parent
# The simulator and what is built on it: the simulated board, the demo and the load generator,
# and the CLI front-ends of `otakit sim`. Everything else is the product.
SIM_SIDE = ("sim", "demo.py", "loadgen.py", "cli/sim.py", "cli/sim_campaign.py")
SIM_MODULES = ("otakit.sim", "otakit.demo", "otakit.loadgen")


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (``from otakit import sim`` counts as otakit.sim)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _product_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if not str(p.relative_to(PACKAGE)).startswith(SIM_SIDE)]


def test_the_product_never_imports_the_simulator() -> None:
    modules = _product_modules()
    assert PACKAGE / "build.py" in modules and PACKAGE / "flash.py" in modules
    offenders = {str(p.relative_to(PACKAGE)): sorted(n for n in _imports(p)
                                                     if n.startswith(SIM_MODULES))
                 for p in modules}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_checker_sees_a_simulator_import(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from otakit import sim\nfrom otakit.boards import load_board\n"
                   "import otakit.demo\n")
    assert {n for n in _imports(src) if n.startswith(SIM_MODULES)} == {"otakit.sim",
                                                                       "otakit.demo"}


def test_each_command_lives_in_the_cli_module_named_after_it() -> None:
    _register()
    for name, command in cli.commands.items():
        assert isinstance(command, click.Command)
        module = command.callback.__module__ if command.callback else ""
        assert module == f"otakit.cli.{name}", (name, module)
