"""The `otakit` command line: the pinned command list, help texts, and whole flows through
`otakit.cli.main(argv)` (the same entry point as the installed command)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from otakit.appimage import make_app_image
from otakit.cli import _register, cli, main

# Pinned: adding or removing a command is a visible change. Other areas add theirs here.
MY_COMMANDS = {"keygen", "key", "release", "verify", "inspect"}
KNOWN_OTHERS = {"init", "serve", "sim", "build", "flash", "deploy", "layout", "keyring", "refresh",
                "support", "compliance", "rollout", "publish", "revert", "bundle",
                "latency"}
SUBCOMMANDS = {"key": {"export", "id", "content"}, "layout": {"check", "suggest"},
               "rollout": {"start", "raise", "pause", "resume", "abort", "status", "policy"}}
SUBCOMMANDS["rollout"] |= {"threshold", "watch", "withheld", "lift", "cohort", "pin", "unpin"}


def _all_commands() -> list[list[str]]:
    _register()
    out = []
    for name, cmd in cli.commands.items():
        out.append([name])
        if isinstance(cmd, click.Group):
            out += [[name, sub] for sub in cmd.commands]
    return out


def test_command_list_is_pinned() -> None:
    _register()
    names = set(cli.commands)
    assert MY_COMMANDS <= names
    assert names <= MY_COMMANDS | KNOWN_OTHERS, f"new command(s): {names - MY_COMMANDS}"
    for group, subs in SUBCOMMANDS.items():
        assert set(cli.commands[group].commands) == subs  # type: ignore[attr-defined]


def test_top_level_help(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "signed, power-safe OTA updates" in out
    for name in MY_COMMANDS:
        assert name in out


@pytest.mark.parametrize("argv", _all_commands(), ids=" ".join)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: otakit " + " ".join(argv)) and len(out) > 80


def _release(*extra: str, image: str = "app.bin", seq: str = "1") -> int:
    return main(["release", "--key", "keys/release.pem", "--repo", "repo", "--product", "door",
                 "--board", "esp32", "--version", "1.1.0", "--sequence", seq, *extra, image])


RISK = "CVE-1: anyone nearby could unlock the door"  # --risk is a sentence (BAD_RISK)


def test_release_verify_inspect_round_trip(env: Path, capsys: pytest.CaptureFixture) -> None:
    assert _release("--support-end", "2031-12-31", "--expires", "90d", "--notes", "faster",
                    "--security", "--severity", "high", "--risk", RISK,
                    "--disruption-seconds", "30") == 0
    out = capsys.readouterr().out
    assert "released door/esp32/stable version 1.1.0 sequence 1" in out
    assert main(["verify", "--repo", "repo", "--key", "keys/release.pub.pem"]) == 0
    assert "ok: 1 manifest(s), 1 payload(s) verified" in capsys.readouterr().out
    manifest = "repo/door/esp32/stable/manifest"
    assert main(["inspect", manifest, "--json", "--key", "keys/release.pub.pem"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["signature"] == "verified" and doc["header"]["alg"] == "ed25519"
    body = doc["body"]
    assert body["security"] == {"severity": "high", "risk": RISK}
    assert body["disruption"] == {"reboot": True, "seconds": 30}
    assert body["notes"] == "faster" and body["support_end"] == "2031-12-31"
    assert main(["inspect", manifest]) == 0
    assert "not checked" in capsys.readouterr().out
    assert main(["key", "export", "--micropython", "keys/release.pub.pem", "--out", "k.py"]) == 0
    assert main(["verify", "--repo", "repo", "--keyring", "k.py"]) == 0


@pytest.mark.parametrize(("target", "offset"), [("manifest", 30), ("payload", 2000)])
def test_verify_fails_on_a_one_byte_change(env: Path, capsys: pytest.CaptureFixture,
                                           target: str, offset: int) -> None:
    assert _release("--support-end", "2031-12-31") == 0
    repo = Path("repo")
    path = (repo / "door/esp32/stable/manifest" if target == "manifest"
            else next((repo / "blobs/sha256").iterdir()))
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x20
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", "--repo", "repo", "--key", "keys/release.pub.pem"]) == 1
    err = capsys.readouterr().err
    assert ("BAD_SIGNATURE" if target == "manifest" else "HASH_MISMATCH") in err
    assert err.splitlines()[-1].startswith("otakit: ") and "problem(s)" in err


def test_release_refusals_are_one_line_and_exit_1(env: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    Path("c3.bin").write_bytes(make_app_image("1", chip="esp32c3"))
    Path("big.bin").write_bytes(make_app_image("1", size=0x180000 + 1024))
    cases = [
        ((), "app.bin", "--support-end YYYY-MM-DD"),
        (("--support-end", "2031-12-31"), "c3.bin", "chip id 5"),
        (("--support-end", "2031-12-31"), "big.bin", "OTA slot holds 1572864"),
        (("--support-end", "2031-12-31", "--severity", "high"), "app.bin", "--security"),
        (("--support-end", "2031-12-31", "--expires", "2001-01-01"), "app.bin",
         "not in the future"),
    ]
    for extra, image, msg in cases:
        capsys.readouterr()
        assert _release(*extra, image=image) == 1, msg
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("otakit: ") and msg in err, err
    assert not Path("repo").exists()
    assert _release("--support-end", "2031-12-31") == 0
    assert _release("--support-end", "2031-12-31") == 1
    assert "is not above" in capsys.readouterr().err


def test_release_refuses_a_full_firmware_bin(env: Path, real_firmware_dir: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    full = real_firmware_dir / "ESP32_GENERIC-OTA-20250415-v1.25.0.bin"
    if not full.is_file():
        pytest.skip("the real firmware.bin is absent")
    assert _release("--support-end", "2031-12-31", image=str(full)) == 1
    assert "this looks like a full firmware.bin" in capsys.readouterr().err


def test_release_needs_the_passphrase(env: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("OTAKIT_KEY_PASSPHRASE", "wrong")
    assert _release("--support-end", "2031-12-31") == 1
    assert "wrong passphrase" in capsys.readouterr().err


def test_verify_needs_keys_and_a_repository(env: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["verify", "--repo", "repo"]) == 1
    assert "--key" in capsys.readouterr().err
    assert main(["verify", "--repo", "nowhere", "--key", "keys/release.pub.pem"]) == 1
    assert "no release repository" in capsys.readouterr().err
