"""Type-check the device code against MicroPython's ESP32 stubs, and the host package.

    python scripts/typecheck.py firmware   # firmware/ against micropython-esp32-stubs
    python scripts/typecheck.py host       # host_tools/otakit against its dependencies

Both run basedpyright (installed from PyPI with its own Node.js; no network at run time). The
device check replaces CPython's typeshed with micropython-stdlib-stubs (installed beside the
esp32 stubs in site-packages), so `machine`, `esp32`, `tls`, `asyncio` are checked as the ESP32
port has them. The keyring module `ota_keys` is generated per product and `ota_origin` per build,
so stand-ins with their shapes are put on the path. Exit status: basedpyright's (0 = no errors).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYRING_STUB = ("# stand-in for the generated keyring (docs/format.md §3), for type checks only\n"
                "KEYS: dict[bytes, tuple[str, bytes]] = {}\n")
ORIGIN_STUB = ("# stand-in for the generated ota_origin (the firmware's own release), type checks only\n"
               "SEQUENCE = 0\nSECURITY_VERSION = 0\n")


def basedpyright() -> str:
    beside = Path(sys.executable).parent / "basedpyright"
    found = str(beside) if beside.exists() else shutil.which("basedpyright")
    if not found:
        sys.exit("basedpyright is not installed: run `make setup`")
    return found


def firmware_config(tmp: Path) -> dict:
    site = sysconfig.get_paths()["purelib"]
    if not (Path(site) / "esp32.pyi").is_file():
        sys.exit("micropython-esp32-stubs is not installed: run `make setup`")
    (tmp / "ota_keys.py").write_text(KEYRING_STUB)
    (tmp / "ota_origin.py").write_text(ORIGIN_STUB)
    return {"include": [str(ROOT / "firmware")], "typeshedPath": site, "stubPath": site,
            "extraPaths": [str(ROOT / "firmware"), str(tmp)], "pythonVersion": "3.11",
            "typeCheckingMode": "basic", "reportMissingModuleSource": "none"}


def host_config(tmp: Path) -> dict:
    return {"include": [str(ROOT / "host_tools" / "otakit")], "pythonVersion": "3.11",
            "pythonPlatform": "Linux", "extraPaths": [str(ROOT / "host_tools")],
            "typeCheckingMode": "standard"}


def main(argv: list[str]) -> int:
    what = argv[0] if argv else ""
    if what not in ("firmware", "host"):
        print(__doc__)
        return 2
    with tempfile.TemporaryDirectory(prefix="otakit-typecheck-") as d:
        tmp = Path(d)
        cfg = firmware_config(tmp) if what == "firmware" else host_config(tmp)
        (tmp / "pyrightconfig.json").write_text(json.dumps(cfg, indent=1))
        cmd = [basedpyright(), "-p", str(tmp / "pyrightconfig.json"),
               "--pythonpath", sys.executable]
        return subprocess.run(cmd, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
