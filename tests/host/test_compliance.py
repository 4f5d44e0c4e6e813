"""Security release notices, the published support period, and the §5.3 evidence report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from otakit import compliance, ixit
from otakit.boards import available_boards, load_board
from otakit.frozen import frozen_entries
from otakit.cli import main
from otakit.errors import RepoError
from otakit.repo import Repository
from otakit.support import plan_support, publish_support


def _release(*extra: str, seq: str = "1") -> int:
    return main(["release", "--key", "keys/release.pem", "--repo", "repo", "--product", "door",
                 "--board", "esp32", "--version", "1.1.0", "--sequence", seq,
                 "--support-end", "2033-12-31", *extra, "app.bin"])


def test_release_security_needs_severity_and_risk(env: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    for extra in (("--security",), ("--security", "--severity", "high"),
                  ("--security", "--risk", "remote unlock"),
                  ("--severity", "high", "--risk", "remote unlock"),
                  ("--security", "--severity", "high", "--risk", "   ")):
        capsys.readouterr()
        assert _release(*extra) == 1, extra
        err = capsys.readouterr().err
        assert "--severity and --risk" in err and err.count("\n") == 1
    assert _release("--security", "--severity", "high", "--risk",
                    "someone nearby could unlock the door") == 0


def _repo_with_release(env: Path, end: str = "2033-12-31") -> Repository:
    assert main(["release", "--key", "keys/release.pem", "--repo", "repo", "--product", "door",
                 "--board", "esp32", "--version", "1.0.0", "--sequence", "1",
                 "--support-end", end, "app.bin"]) == 0
    return Repository("repo")


def test_support_publish_writes_page_json_and_label(env: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    _repo_with_release(env, "2033-12-31")
    assert main(["support", "publish", "--repo", "repo", "--product", "door", "--model",
                 "Acme SmartLock DL-100", "--manufacturer", "Acme Ltd",
                 "--contact", "security@example.com"]) == 0
    d = Path("repo/door/support")
    page = (d / "index.html").read_text()
    assert '<html lang="en">' in page and "Acme SmartLock DL-100" in page
    assert "December 2033" in page and "2033-12-31" in page
    assert "How to turn automatic updates off" in page and "auto_install" in page
    assert "<script" not in page and "<form" not in page and "cookie" not in page.lower()
    facts = json.loads((d / "support.json").read_text())
    assert facts["support_end"] == "2033-12-31" and facts["model"] == "Acme SmartLock DL-100"
    assert facts["how_updates_are_delivered"] and facts["how_to_turn_automatic_updates_off"]
    label = (d / "label.txt").read_text()
    assert label.splitlines()[0] == "Acme SmartLock DL-100"
    assert "Security updates until: December 2033" in label
    assert capsys.readouterr().err == ""  # 2026 + 5 years < 2033: no warning


def test_support_page_is_served_without_login(env: Path) -> None:
    import urllib.request

    from otakit.server import serve_in_thread

    _repo_with_release(env)
    assert main(["support", "publish", "--repo", "repo", "--product", "door", "--model",
                 "DL-100"]) == 0
    with serve_in_thread(Path("repo")) as url:
        with urllib.request.urlopen(url.rstrip("/") + "/door/support/index.html") as r:
            assert r.status == 200 and "Set-Cookie" not in r.headers
            assert b"DL-100" in r.read()


def test_support_never_shortened(env: Path, capsys: pytest.CaptureFixture) -> None:
    repo = _repo_with_release(env, "2033-12-31")
    # earlier than the date signed in the manifest
    assert main(["support", "publish", "--repo", "repo", "--product", "door", "--model", "X",
                 "--end", "2032-01-01"]) == 1
    assert "would shorten" in capsys.readouterr().err
    assert main(["support", "publish", "--repo", "repo", "--product", "door", "--model", "X",
                 "--end", "2035-06-30"]) == 0
    # earlier than the one published before (read from the repository's history)
    with pytest.raises(RepoError) as e:
        plan_support(repo, "door", "X", "2034-01-01")
    assert e.value.reason == "SHORTENED" and "published on" in str(e.value)
    st = plan_support(repo, "door", "X", "2036-01-01")  # extending is fine
    publish_support(repo, st)
    hist = json.loads(Path("repo/door/support/history.json").read_text())
    assert [h["end"] for h in hist] == ["2035-06-30", "2036-01-01"]


def test_support_under_five_years_warns(env: Path, capsys: pytest.CaptureFixture) -> None:
    soon = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3 * 365)).isoformat()
    _repo_with_release(env, soon)
    capsys.readouterr()
    assert main(["support", "publish", "--repo", "repo", "--product", "door", "--model",
                 "X"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "under 5 years" in err and "Art. 13(8)" in err


def _junit(path: Path, failed: set[str] = frozenset()) -> Path:
    """A hand-written JUnit file naming every mapped test (no run made it)."""
    cases = []
    for t in compliance.mapped_tests():
        file, name = t.split("::")
        cls = file.removesuffix(".py").replace("/", ".")
        inner = "<failure message='x'/>" if name in failed else ""
        cases.append(f'<testcase classname="{cls}" name="{name}">{inner}</testcase>')
    path.write_text(f"<testsuites><testsuite>{''.join(cases)}</testsuite></testsuites>")
    return path


def test_compliance_report_statuses(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # A hand-written results file, every mapped test "passed": nothing in it is traceable to a
    # run, so no verdict resting on tests is PASS (issue 20: a forged file is flagged).
    junit = _junit(tmp_path / "j.xml")
    cfg = tmp_path / "ota_config.json"
    cfg.write_text(json.dumps({"url": "https://updates.example.com/repo", "check_s": 43200,
                               "notice_s": 60}))
    out = tmp_path / "report"
    assert main(["compliance", "report", "--out", str(out), "--junit", str(junit),
                 "--device-config", str(cfg)]) == 0
    doc = json.loads((out / "report.json").read_text())
    rows = {r["provision"]: r for r in doc["provisions"]}
    ids = {f"5.3-{i}" for i in range(1, 17)} | {"5.5-1", "5.9-1", "5.9-2", "5.13-1",
                                                 "CRA I(2)(c)"}
    assert set(rows) == ids
    assert {r["verdict"] for r in rows.values()} == {compliance.UNVERIFIED, compliance.NA}
    assert rows["5.3-14"]["verdict"] == "N/A" and "cannot be updated" in \
        rows["5.3-14"]["cases"][0]["why"]
    assert doc["record"]["verified"] is False and "no run record" in doc["record"]["traceability"]
    assert doc["attacks"] and all("UNVERIFIED" in a["result"] for a in doc["attacks"])
    md = (out / "report.md").read_text()
    assert "UNVERIFIED" in md and "| PASS |" not in md
    assert "IXIT 7-UpdMech" in md and "auto_install=True" in md
    assert "IXIT 6-SoftComp: software components of board esp32" in md
    assert "https://updates.example.com/repo" in md and "43200 s" in md
    assert "604800 s (7 days)" in md  # the security postponement bound, from policy.py
    page = (out / "report.html").read_text()
    assert "<table>" in page and "<h3>IXIT 6-SoftComp" in page and "<h3>IXIT 7-UpdMech" in page
    assert "results UNVERIFIED" in capsys.readouterr().out


def test_compliance_report_unrun_tests_are_not_pass(tmp_path: Path) -> None:
    empty = tmp_path / "j.xml"
    empty.write_text("<testsuites/>")
    rows = compliance.evaluate(compliance.verify_results(empty))
    assert all(r.verdict != compliance.PASS for r in rows)


@pytest.mark.parametrize("name", available_boards())
def test_ixit_softcomp_names_every_component_and_how_it_changes(name: str) -> None:
    # EN 303 645 5.3-1 (IXIT 6-SoftComp): every software component of the board, each with how
    # it is updated or why it is not; read from the board's partition table and manifest.
    board = load_board(name)
    text = ixit.ixit_softcomp(board)
    bullets = [line for line in text.splitlines() if line.startswith("- ")]
    for p in board.partitions:  # every partition is accounted for
        assert any(f"`{p.label}`" in b or p.label in b.split(":")[0] for b in bullets), p.label
    for _, module in frozen_entries(board):  # and every frozen module, in the updatable image
        assert f"`{module}`" in bullets[0]
    assert "Updatable" in bullets[0] and f"{board.bootloader_offset:#x}" in text
    for b in bullets:  # updated how, or why not
        assert any(w in b for w in ("Updatable", "updatable", "immutable", "data:",
                                    "user data")), b
