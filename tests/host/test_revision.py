"""The host side of the channel's total order (docs/format.md §2, §4): every manifest `otakit`
signs for a channel carries the published revision + 1 and the published keyring's version as
min_keyring; `release` writes an expiry by default; `verify` reports what devices would refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otakit import keys
from otakit.appimage import make_app_image
from otakit.cli import main
from otakit.errors import ManifestError
from otakit.keyring import new_body, sign_keyring
from otakit.keyring import parse_unverified as parse_keyring
from otakit.manifest import parse_unverified, sign_manifest
from otakit.manifest_body import parse_body
from otakit.repo import DEFAULT_EXPIRY, Repository

MANIFEST = "repo/door/esp32/stable/manifest"
KEY = ["--key", "keys/release.pem"]
WHERE = ["--repo", "repo", "--product", "door", "--board", "esp32"]


def _release(version: str, seq: int, *extra: str) -> int:
    Path(f"{version}.bin").write_bytes(make_app_image(version))
    return main(["release", *KEY, *WHERE, "--version", version, "--sequence", str(seq),
                 "--support-end", "2031-12-31", *extra, f"{version}.bin"])


def _body(path: str = MANIFEST):  # type: ignore[no-untyped-def]
    return parse_unverified(Path(path).read_bytes()).body


def _publish_keyring(version: int) -> None:
    root = keys.generate_key(keys.ED25519)
    release_pub = keys.load_key("keys/release.pub.pem")
    body = new_body("door", [release_pub], version, 1767225600, 2**32 - 1)
    Repository("repo").publish_keyring(sign_keyring(body, [root]))


def test_body_needs_a_revision_and_round_trips_min_keyring(env: Path) -> None:
    assert _release("1.1.0", 1) == 0
    raw = json.loads(parse_unverified(Path(MANIFEST).read_bytes()).envelope.body)
    assert raw["revision"] == 1 and raw["min_keyring"] == 0
    b = _body()
    assert parse_body(b.to_json()) == b
    del raw["revision"]
    with pytest.raises(ManifestError, match="missing revision") as e:
        parse_body(json.dumps(raw).encode())
    assert e.value.reason == "BAD_BODY"
    del raw["min_keyring"]  # absent min_keyring = 0, and stays absent
    absent = parse_body(json.dumps({**raw, "revision": 7}).encode())
    assert absent.min_keyring is None and absent.required_keyring == 0
    assert "min_keyring" not in json.loads(absent.to_json())
    for bad in (0, 2**31, True, "3"):
        with pytest.raises(ManifestError):
            parse_body(json.dumps({**raw, "revision": bad}).encode())
    with pytest.raises(ManifestError):
        parse_body(json.dumps({**raw, "revision": 1, "min_keyring": -1}).encode())


def test_release_numbers_revisions_per_channel_and_names_the_published_keyring(
        env: Path, capsys: pytest.CaptureFixture) -> None:
    assert _release("1.1.0", 1) == 0
    assert "revision: 1 (min_keyring 0)" in capsys.readouterr().out
    _publish_keyring(3)
    assert _release("1.2.0", 2) == 0
    b = _body()
    assert (b.revision, b.min_keyring) == (2, 3)
    assert _release("1.2.1", 3, "--channel", "beta") == 0  # another channel starts at 1
    assert _body("repo/door/esp32/beta/manifest").revision == 1
    capsys.readouterr()
    assert main(["inspect", MANIFEST, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)["body"]
    assert (body["revision"], body["min_keyring"]) == (2, 3)
    assert main(["inspect", MANIFEST]) == 0
    out = capsys.readouterr().out
    assert "          revision: 2" in out and "       min_keyring: 3" in out


def test_release_expires_after_90_days_unless_no_expiry_is_asked(
        env: Path, capsys: pytest.CaptureFixture) -> None:
    assert _release("1.1.0", 1) == 0
    b = _body()
    assert b.expires == b.created + DEFAULT_EXPIRY == b.created + 90 * 86400
    assert capsys.readouterr().err == ""
    assert _release("1.2.0", 2, "--expires", "12h") == 0
    assert _body().expires == _body().created + 12 * 3600
    assert _release("1.3.0", 3, "--no-expiry") == 0
    err = capsys.readouterr().err
    assert _body().expires is None
    assert len(err.splitlines()) == 1 and "never expires" in err
    assert _release("1.4.0", 4, "--no-expiry", "--expires", "30d") == 1
    assert "contradict" in capsys.readouterr().err and _body().sequence == 3


def test_release_warns_when_the_version_goes_down(env: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    assert _release("1.10.0", 1) == 0
    capsys.readouterr()
    assert _release("1.9.0", 2) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "version 1.9.0 is below the published 1.10.0" in err[0]
    assert _release("1.11.0", 3) == 0
    assert capsys.readouterr().err == ""


def test_release_over_a_manifest_without_revision_starts_at_1(env: Path) -> None:
    key = keys.load_private_key("keys/release.pem", b"pw")
    assert _release("1.1.0", 1) == 0
    raw = json.loads(parse_unverified(Path(MANIFEST).read_bytes()).envelope.body)
    del raw["revision"], raw["min_keyring"]  # as published before body revision 3
    Path(MANIFEST).write_bytes(sign_manifest(json.dumps(raw).encode(), key))
    assert main(["rollout", "start", *WHERE, *KEY, "--percent", "10"]) == 0
    assert _body().revision == 1
    assert _release("1.2.0", 2) == 0
    assert _body().revision == 2


RESIGN = [
    ("refresh", ["refresh", *KEY, *WHERE, "--expires", "200d"]),
    ("start", ["rollout", "start", *WHERE, *KEY, "--percent", "10"]),
    ("raise", ["rollout", "raise", *WHERE, *KEY, "--percent", "50"]),
    ("pause", ["rollout", "pause", *WHERE, *KEY]),
    ("resume", ["rollout", "resume", *WHERE, *KEY]),
    ("abort", ["rollout", "abort", *WHERE, *KEY]),
]


@pytest.mark.parametrize(("name", "argv"), RESIGN, ids=[n for n, _ in RESIGN])
def test_every_resigning_orders_the_new_document_after_the_old(
        env: Path, name: str, argv: list[str]) -> None:
    assert _release("1.1.0", 1, "--rollout", "5") == 0
    for _, earlier in RESIGN[1:[n for n, _ in RESIGN].index(name)]:
        assert main(earlier) == 0  # the states that lead to this command
    _publish_keyring(2)
    before = Path(MANIFEST).read_bytes()
    old = parse_unverified(before).body
    assert main(argv) == 0
    after = Path(MANIFEST).read_bytes()
    new = parse_unverified(after).body
    assert new.revision == old.revision + 1 and new.min_keyring == 2
    assert (new.sequence, new.payload, new.support_end) == (old.sequence, old.payload,
                                                             old.support_end)
    # a replay of the earlier, validly signed document is told apart by its lower revision
    assert before != after and parse_unverified(before).body.revision < new.revision


def test_verify_reports_a_missing_revision_and_an_unpublished_keyring(
        env: Path, capsys: pytest.CaptureFixture) -> None:
    key = keys.load_private_key("keys/release.pem", b"pw")
    assert _release("1.1.0", 1) == 0
    verify = ["verify", "--repo", "repo", "--key", "keys/release.pub.pem"]
    raw = json.loads(parse_unverified(Path(MANIFEST).read_bytes()).envelope.body)
    Path(MANIFEST).write_bytes(sign_manifest(json.dumps({**raw, "min_keyring": 4}).encode(),
                                             key))
    capsys.readouterr()
    assert main(verify) == 1
    err = capsys.readouterr().err
    assert "KEYRING_REQUIRED: min_keyring 4 is above the published keyring's version 0" in err
    _publish_keyring(4)
    assert main(verify) == 0
    del raw["revision"]
    Path(MANIFEST).write_bytes(sign_manifest(json.dumps(raw).encode(), key))
    capsys.readouterr()
    assert main(verify) == 1
    assert "BAD_BODY" in capsys.readouterr().err


def test_keyring_sign_expires_after_365_days_by_default(env: Path) -> None:
    assert main(["keygen", "--alg", "ed25519", "--out", "keys", "--name", "root"]) == 0
    assert main(["keyring", "sign", "--root", "keys/root.pem", "--key", "keys/release.pub.pem",
                 "--product", "door", "--version", "1", "--out", "kr"]) == 0
    b = parse_keyring(Path("kr").read_bytes()).body
    assert b.expires == b.created + 365 * 86400
