"""How users install the agent: `firmware/package.json` for `mpremote mip install` (development
boards) and `firmware/manifest.py` for a product's frozen-module manifest (docs/quickstart.md)."""

from __future__ import annotations

import json
from pathlib import Path

import mpremote.mip

from otakit.paths import FIRMWARE_DIR

PACKAGE_JSON = FIRMWARE_DIR / "package.json"


def test_package_json_installs_every_agent_module_into_lib_ota() -> None:
    doc = json.loads(PACKAGE_JSON.read_text())
    targets = {target: url for target, url in doc["urls"]}
    wanted = {f"ota/{p.name}" for p in (FIRMWARE_DIR / "ota").glob("*.py")}
    assert set(targets) == wanted, f"missing {wanted - set(targets)}, extra {set(targets) - wanted}"
    for target, url in targets.items():
        # relative URLs: mip resolves them beside package.json, in a checkout or on GitHub
        assert not url.startswith(mpremote.mip._ALLOWED_MIP_URL_PREFIXES), url
        assert (FIRMWARE_DIR / url).is_file() and url.endswith(".py"), url
    assert doc["deps"] == [] and doc["version"]
    assert not any("ota_keys" in t for t in targets), "a keyring is the product's, not the agent's"


class _Board:
    """What mpremote's mip needs of a board: a filesystem (here a directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def fs_exists(self, path: str) -> bool:
        return (self.root / path.lstrip("/")).exists()

    def fs_mkdir(self, path: str) -> None:
        (self.root / path.lstrip("/")).mkdir()

    def fs_writefile(self, path: str, data: bytes, progress_callback: object = None) -> None:
        (self.root / path.lstrip("/")).write_bytes(data)


def test_mpremote_mip_installs_the_package_from_a_checkout(tmp_path: Path) -> None:
    # mpremote's own installer on the local package.json (`mpremote mip install
    # firmware/package.json`), with a directory standing in for the board's filesystem
    board = _Board(tmp_path)
    (tmp_path / "lib").mkdir()
    mpremote.mip._install_package(board, str(PACKAGE_JSON), "", "/lib", None, False)
    for src in (FIRMWARE_DIR / "ota").glob("*.py"):
        assert (tmp_path / "lib" / "ota" / src.name).read_bytes() == src.read_bytes()


def test_firmware_manifest_freezes_the_agent_package() -> None:
    calls: list[tuple[str, tuple, dict]] = []
    names = ("include", "package", "module", "require", "freeze", "metadata")
    exec(compile(PACKAGE_JSON.with_name("manifest.py").read_text(), "manifest.py", "exec"),  # noqa: S102
         {n: (lambda n: lambda *a, **k: calls.append((n, a, k)))(n) for n in names})
    frozen = [(kind, args[0]) for kind, args, _ in calls if kind in ("package", "module")]
    assert frozen == [("package", "ota")]
    assert (FIRMWARE_DIR / "ota" / "__init__.py").is_file()  # package() freezes this directory
