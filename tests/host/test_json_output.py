"""``--json`` on every command that reports something: stdout is one JSON object, also when the
command fails (then ``{"ok": false, "reason": ..., "message": ...}`` beside the one stderr line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otakit.cli import _register, cli, main
from otakit.keyring import new_body, sign_keyring
from otakit.keys import ED25519, generate_key, write_keypair

# Every command that reports something has --json (pinned: a new reporting command adds itself)
REPORTING = {
    "release", "verify", "inspect", "refresh", "publish", "key id", "keyring show",
    "layout check", "layout suggest", "support publish", "sim inspect", "rollout status",
    "rollout start", "rollout raise", "rollout pause", "rollout resume", "rollout abort",
    "revert",
    "latency",
}


def _leaf(path: str):  # type: ignore[no-untyped-def]
    cmd = cli
    for name in path.split():
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    return cmd


def test_reporting_commands_have_json() -> None:
    _register()
    for path in sorted(REPORTING):
        assert any("--json" in getattr(p, "opts", ()) for p in _leaf(path).params), path


def _json(argv: list[str], capsys: pytest.CaptureFixture, code: int = 0) -> dict:
    capsys.readouterr()
    assert main([*argv, "--json"]) == code, capsys.readouterr().err
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["ok"] is (code == 0)
    if code:
        assert err.splitlines()[-1].startswith(f"otakit: {data['reason']}: ")
    return data


def test_json_flow(env: Path, capsys: pytest.CaptureFixture) -> None:
    repo = ["--repo", "repo", "--product", "door", "--board", "esp32"]
    rel = _json(["release", "--key", "keys/release.pem", *repo, "--version", "1.1.0",
                 "--sequence", "1", "--support-end", "2031-12-31", "app.bin"], capsys)
    assert (rel["version"], rel["sequence"], rel["payload_size"]) == ("1.1.0", 1, Path("app.bin").stat().st_size)
    assert _json(["verify", "--repo", "repo", "--key", "keys/release.pub.pem"],
                 capsys)["manifests"] == 1
    assert _json(["inspect", "repo/door/esp32/stable/manifest"], capsys)["body"]["sequence"] == 1
    assert _json(["key", "id", "keys/release.pub.pem"], capsys)["alg"] == "ed25519"
    assert _json(["refresh", "--key", "keys/release.pem", *repo, "--expires", "200d"],
                 capsys)["revision"] == 2
    assert _json(["rollout", "start", *repo, "--key", "keys/release.pem", "--percent", "10"],
                 capsys)["rollout"]["percent"] == 10
    assert _json(["rollout", "status", *repo], capsys)["rollout"]["percent"] == 10
    assert _json(["support", "publish", "--repo", "repo", "--product", "door", "--model", "D1"],
                 capsys)["end"] == "2031-12-31"
    assert _json(["publish", "--repo", "repo", "--to", "site"], capsys)["manifests"] == 1
    assert _json(["layout", "check", "--board", "esp32", "--app", "app.bin"], capsys)["fits"]
    assert _json(["layout", "suggest", "--flash", "4MB", "--app", "app.bin"],
                 capsys)["partitions"][3]["label"] == "ota_0"
    root = generate_key(ED25519)
    write_keypair(root, "roots", "root", None)
    Path("keyring").write_bytes(sign_keyring(new_body("door", [root.public_key()], 1, 1, 2**31,
                                                      "production"), [root]))
    assert _json(["keyring", "show", "keyring"], capsys)["version"] == 1
    # failures: the reason code on stdout and stderr
    fail = _json(["release", "--key", "keys/release.pem", *repo, "--version", "1.1.0",
                  "--sequence", "1", "app.bin"], capsys, code=1)
    assert fail["reason"] and "is not above" in fail["message"]
    Path("repo/blobs/sha256").joinpath(rel["payload"].rsplit("/", 1)[1]).write_bytes(b"x")
    bad = _json(["verify", "--repo", "repo", "--key", "keys/release.pub.pem"], capsys, code=1)
    assert bad["reason"] == "VERIFY_FAILED" and any("HASH_MISMATCH" in p or "size" in p
                                                     for p in bad["problems"])
