"""`otakit sim flash|run|inspect` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from otakit.cli import cli, main
from otakit.cli import sim as sim_cli


def invoke(*args: str):
    for c in sim_cli.COMMANDS:
        cli.add_command(c)
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_sim_commands_have_help():
    for sub in ("flash", "run", "inspect"):
        r = invoke("sim", sub, "--help")
        assert r.exit_code == 0 and "Usage:" in r.output
    assert "--heapsize" in invoke("sim", "run", "--help").output


def test_flash_run_inspect(tmp_path: Path, images):
    img = tmp_path / "f.img"
    r = invoke("sim", "flash", "--board", "esp32", "--app", str(images["v1"]), "--out", str(img))
    assert r.exit_code == 0, r.output
    assert img.stat().st_size == 4 * 1024 * 1024
    script = tmp_path / "s.py"
    script.write_text("import esp32\nprint('fw', esp32.sim_firmware())\n")
    empty = tmp_path / "app"
    empty.mkdir()
    r = invoke("sim", "run", str(img), "--app-dir", str(empty), "--", str(script))
    assert r.exit_code == 0, r.output
    assert "fw ('ota_0', '1.0.0', '')" in r.output
    assert "--- finished: 1 boot(s)" in r.output
    r = invoke("sim", "inspect", str(img))
    assert r.exit_code == 0
    assert "otadata[0]: seq=1 VALID crc ok -> valid" in r.output
    assert "next hard reset boots: ota_0" in r.output
    st = json.loads(invoke("sim", "inspect", str(img), "--json").output)
    assert st["board"] == "esp32" and st["next_boot"] == "ota_0"
    assert [p["label"] for p in st["partitions"]][-1] == "vfs"


def test_run_cut_at_reports_power_cut(tmp_path: Path, images):
    img = tmp_path / "f.img"
    invoke("sim", "flash", "--app", str(images["v1"]), "--out", str(img))
    empty = tmp_path / "app"
    empty.mkdir()
    r = invoke("sim", "run", str(img), "--app-dir", str(empty), "--cut-at", "1", "--no-restart")
    assert r.exit_code == 0
    assert "power_cut" in r.output and "power cut" in r.output


def test_device_error_exits_1(tmp_path: Path, images, capsys):
    img = tmp_path / "f.img"
    invoke("sim", "flash", "--app", str(images["v1"]), "--out", str(img))
    script = tmp_path / "bad.py"
    script.write_text("raise RuntimeError('x')\n")
    empty = tmp_path / "app"
    empty.mkdir()
    assert main(["sim", "run", str(img), "--app-dir", str(empty), str(script)]) == 1
    assert "otakit: DEVICE_ERROR: the device script ended with an exception" in capsys.readouterr().err


def test_flash_refuses_a_non_image(tmp_path: Path, capsys):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"hello")
    assert main(["sim", "flash", "--app", str(bad), "--out", str(tmp_path / "x.img")]) == 1
    assert "not an ESP app image" in capsys.readouterr().err
