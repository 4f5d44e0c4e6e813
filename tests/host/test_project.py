"""The project file: `otakit init` writes otakit.toml, every command takes its defaults from it,
flags and environment variables override it, and a bad file is one `otakit:` line."""

from __future__ import annotations

from pathlib import Path

import pytest

from otakit import project
from otakit.appimage import make_app_image
from otakit.cli import _register, cli, main
from otakit.errors import OtakitError
from otakit.sim.flash import make_firmware_bin


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory as the working directory, with a key and two app images."""
    monkeypatch.chdir(tmp_path)
    for var in (*project.ENV.values(), *project.SERIAL_ENV.values(), project.PROJECT_ENV):
        monkeypatch.delenv(var, raising=False)
    assert main(["init"]) == 0
    assert main(["keygen", "--alg", "ed25519", "--out", "keys", "--insecure-no-passphrase"]) == 0
    (tmp_path / "app.bin").write_bytes(make_app_image("1.1.0"))
    return tmp_path


def _release(*extra: str) -> int:
    return main(["release", "app.bin", "--version", "1.1.0", "--sequence", "1",
                 "--support-end", "2031-12-31", *extra])


def test_init_writes_the_project_and_refuses_to_overwrite_it(proj: Path, capsys) -> None:
    text = (proj / "otakit.toml").read_text()
    assert 'product = "doorlock"' in text and 'boards = ["esp32"]' in text
    assert 'url = "http://127.0.0.1:8080"' in text and 'key = "keys/release.pem"' in text
    capsys.readouterr()
    assert main(["init", "--product", "other"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["init", "--product", "other", "--board", "esp32s3", "--force"]) == 0
    got = project.load()
    assert got.settings["product"] == "other" and got.settings["board"] == "esp32s3"


def test_release_takes_repo_product_board_channel_key_from_the_project(proj: Path) -> None:
    assert _release() == 0  # no --repo/--product/--board/--key: all required, all from the file
    assert (proj / "repo/doorlock/esp32/stable/manifest").is_file()
    assert main(["verify"]) == 1  # no trusted keys yet: the project's keyring is not written
    assert main(["key", "export", "--micropython", "keys/release.pub.pem"]) == 0
    assert main(["verify"]) == 0  # --repo and --keyring from the file


def test_a_flag_overrides_the_file_and_the_environment_overrides_it_too(
        proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _release("--channel", "beta") == 0
    assert (proj / "repo/doorlock/esp32/beta/manifest").is_file()
    monkeypatch.setenv("OTAKIT_REPO", "elsewhere")
    monkeypatch.setenv("OTAKIT_PRODUCT", "gate")
    assert _release() == 0
    assert (proj / "elsewhere/gate/esp32/stable/manifest").is_file()
    assert _release("--repo", "third") == 0  # the flag beats the environment
    assert (proj / "third/gate/esp32/stable/manifest").is_file()


def test_project_option_reads_paths_relative_to_its_file(
        proj: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path_factory.mktemp("cwd")
    (elsewhere / "app.bin").write_bytes(make_app_image("1.1.0"))
    monkeypatch.chdir(elsewhere)
    assert _release() != 0  # no otakit.toml here: --repo etc. are missing
    assert main(["--project", str(proj / "otakit.toml"), "release", "app.bin", "--version",
                 "1.1.0", "--sequence", "1", "--support-end", "2031-12-31"]) == 0
    assert (proj / "repo/doorlock/esp32/stable/manifest").is_file()
    monkeypatch.setenv("OTAKIT_PROJECT", str(proj / "otakit.toml"))
    assert main(["key", "export", "--micropython", str(proj / "keys/release.pub.pem"),
                 "--out", str(proj / "ota_keys.py")]) == 0
    assert main(["verify"]) == 0


@pytest.mark.parametrize("text, detail", [
    ("product = \n", "not valid TOML"),
    ("prodcut = \"x\"\n", "unknown setting 'prodcut'"),
    ("boards = [\"esp99\"]\n", "unknown board 'esp99'"),
    ("boards = \"esp32\"\n", "boards must be a non-empty list"),
    ("channel = 3\n", "channel must be a string"),
])
def test_a_bad_project_file_is_one_line(proj: Path, capsys, text: str, detail: str) -> None:
    (proj / "otakit.toml").write_text(text)
    capsys.readouterr()
    assert _release() == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otakit: ") and detail in err, err
    assert "otakit.toml" in err and "Traceback" not in err
    with pytest.raises(OtakitError) as e:
        project.load()
    assert e.value.reason == "BAD_PROJECT"


def test_a_missing_named_project_is_refused(proj: Path, capsys) -> None:
    assert main(["--project", "nope.toml", "verify"]) == 1
    assert "nope.toml: no such project file" in capsys.readouterr().err


def test_esptool_port_is_the_flash_port(proj: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys) -> None:
    fw = proj / "firmware.bin"
    fw.write_bytes(make_firmware_bin("esp32", make_app_image("1.0.0")))
    monkeypatch.setenv("ESPTOOL_PORT", "/dev/otakit-no-such-port")
    assert main(["flash", str(fw)]) == 1  # --board from the project, --port from esptool's var
    assert "/dev/otakit-no-such-port" in capsys.readouterr().err
    # serve's --port is a TCP port, never esptool's
    _register()
    defaults = project.default_map(cli, project.load())
    assert defaults["deploy"]["port"] == "/dev/otakit-no-such-port"  # type: ignore[index]
    assert "port" not in defaults["serve"]  # type: ignore[operator]


def test_sim_flash_refuses_a_firmware_bin_and_another_chips_app(proj: Path, capsys) -> None:
    fw = proj / "firmware.bin"
    fw.write_bytes(make_firmware_bin("esp32", make_app_image("1.0.0")))
    c3 = proj / "c3.bin"
    c3.write_bytes(make_app_image("1.0.0", chip="esp32c3"))
    for app, detail in ((fw, "full firmware.bin"), (c3, "chip id")):
        capsys.readouterr()
        assert main(["sim", "flash", "--app", str(app), "--out", "flash.img"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and detail in err, err
        assert not (proj / "flash.img").exists()


def test_sim_run_exits_1_in_a_boot_loop(proj: Path, capsys) -> None:
    assert main(["sim", "image", "--version", "1.0.0", "--crash", "--out", "crash.bin"]) == 0
    assert main(["sim", "flash", "--bare", "--app", "crash.bin", "--out", "flash.img"]) == 0
    assert not (proj / "flash.img.firmware").exists()
    capsys.readouterr()
    assert main(["sim", "run", "flash.img"]) == 1
    out = capsys.readouterr()
    assert "--- boot_loop:" in out.out and "boot loop" in out.err


def test_sim_flash_provisions_the_projects_ca_model_and_product_build(
        proj: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    # The project's `ca` (PEM) is what the board gets for an https update URL: written as
    # ota_ca.der and named by ota_config.json, which the example app reads (firmware/doorlock.py).
    import json

    from hosthelpers import write_ca_pem

    der = write_ca_pem(proj / "ca.pem")
    monkeypatch.setenv("OTAKIT_CA", "ca.pem")
    monkeypatch.setenv("OTAKIT_URL", "https://updates.example.com/repo")
    assert main(["key", "export", "--micropython", "keys/release.pub.pem", "--out",
                 "ota_keys.py"]) == 0
    capsys.readouterr()
    assert main(["sim", "flash", "--app", "app.bin", "--out", "flash.img", "--product-build",
                 "--model", "DL-100", "--local-port", "8081"]) == 0
    out = capsys.readouterr().out
    assert "a product build: https update URLs only" in out
    assert "provisioned ota_config.json: https://updates.example.com/repo" in out
    (proj / "show.py").write_text(
        "import json, binascii\ncfg = json.load(open('ota_config.json'))\n"
        "print('CFG ' + json.dumps(cfg))\n"
        "print('CA ' + binascii.hexlify(open(cfg['ca'], 'rb').read()).decode())\n")
    assert main(["sim", "run", "flash.img", "show.py", "--max-boots", "1"]) == 0
    lines = dict(line.split(" ", 1) for line in capsys.readouterr().out.splitlines()
                 if line.startswith(("CFG ", "CA ")))
    cfg = json.loads(lines["CFG"])
    assert (cfg["ca"], cfg["model"], cfg["local_port"]) == ("ota_ca.der", "DL-100", 8081)
    assert bytes.fromhex(lines["CA"]) == der
    assert main(["sim", "flash", "--app", "app.bin", "--out", "f2.img", "--ca", "app.bin"]) == 1
    assert "otakit: BAD_ARGUMENT: app.bin is not an X.509 certificate" in capsys.readouterr().err
