"""The compliance report as an evidence record (issue 20): verdicts per test case, the
devised-attack table, traceable results, IXIT drafts, and the HTML/PDF renderings.

One real report run (a small subset of the mapped tests, through the CLI from another working
directory, with the PDF) is shared by the module; the verdict rules are checked on results
made here."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from otakit import compliance, ixit
from otakit.boards import load_board
from otakit.cli import main
from otakit.compliance import attacks
from otakit.compliance.evidence import Results
from otakit.compliance.provisions import PROVISIONS
from otakit.compliance.render import find_browser
from otakit.paths import ROOT


def _results(failed: frozenset[str] = frozenset(), skipped: frozenset[str] = frozenset(),
             missing: frozenset[str] = frozenset(), verified: bool = True) -> Results:
    cases = {}
    for t in compliance.mapped_tests():
        name = t.split("::")[1]
        if name in missing:
            continue
        state = "failed" if name in failed else "skipped" if name in skipped else "passed"
        cases[t + "[a]"] = state
        cases[t + "[b]"] = "passed" if state != "failed" else state
    return Results(cases, Path("junit.xml"), "0" * 64, verified, "made by the test")


def _verdicts(results: Results, **kw: object) -> dict[str, compliance.verdicts.ProvisionVerdict]:
    return {v.provision.pid: v for v in compliance.evaluate(results, unmapped=[], **kw)}


def _case(v: compliance.verdicts.ProvisionVerdict, tcid: str) -> compliance.verdicts.CaseVerdict:
    return next(c for c in v.cases if c.case.tcid == tcid)


WYCHEPROOF = frozenset({"test_wycheproof_ed25519", "test_wycheproof_rsa_pss_3072"})


def test_verdicts_per_test_case_from_a_traceable_run() -> None:
    v = _verdicts(_results(missing=WYCHEPROOF))  # a user's checkout: no third-party vectors
    assert v["5.3-2"].verdict == compliance.PASS
    assert [c.case.tcid for c in v["5.3-2"].cases] == ["5.3-2-1", "5.3-2-2"]
    assert [c.case.kind for c in v["5.3-2"].cases] == ["c", "f"]
    assert v["5.3-7"].verdict == compliance.PASS  # rests on the vectors the project ships
    assert "absent here: test_wycheproof_ed25519" in v["5.3-7"].cases[0].why
    for pid in ("5.3-14", "5.3-15"):
        assert v[pid].verdict == compliance.NA and "ICS" in v[pid].cases[0].why
    # the manufacturer's own acts: INCONCLUSIVE, each saying what they must supply
    for pid, words in (("5.3-8", "time frames"), ("5.3-13", "published"),
                       ("5.3-11", "risk text"), ("CRA I(2)(c)", "timeframe")):
        assert v[pid].verdict == compliance.INCONCLUSIVE, pid
        assert any("the manufacturer must supply" in c.why and words in c.why
                   for c in v[pid].cases), pid
    # parametrised cases are counted, not collapsed
    c = _case(v["5.3-4"], "5.3-4-1")
    assert c.counts["tests/device/test_policy.py::test_factory_defaults_auto_on"] == \
        {"passed": 2, "failed": 0, "skipped": 0}


def test_a_failed_skipped_or_missing_test_is_never_pass() -> None:
    v = _verdicts(_results(failed=frozenset({"test_factory_defaults_auto_on"})))
    assert v["5.3-4"].verdict == compliance.FAIL
    assert "test_factory_defaults_auto_on" in _case(v["5.3-4"], "5.3-4-1").why
    v = _verdicts(_results(failed=frozenset({"test_wycheproof_ed25519"})))
    assert v["5.3-7"].verdict == compliance.FAIL  # an optional suite that ran and failed
    for kind in ("skipped", "missing"):
        v = _verdicts(_results(**{kind: frozenset({"test_attack_undo_pause"})}))
        assert v["5.3-2"].verdict == compliance.INCONCLUSIVE, kind
        assert "test_attack_undo_pause" in _case(v["5.3-2"], "5.3-2-2").why
    v = _verdicts(_results(failed=frozenset({"test_attack_channel_hop"})))
    assert v["5.3-2"].verdict == v["5.3-9"].verdict == compliance.FAIL
    undo_failed = _results(failed=frozenset({"test_attack_undo_pause"}))  # a 5.3-2-only attack
    table = compliance.verdicts.attack_results(undo_failed, ["5.3-9"])
    assert table and all("5.3-9" in a.attack.provisions and a.result == "passed" for a in table)


def test_an_attack_test_missing_from_the_table_keeps_5_3_2_from_pass(tmp_path: Path) -> None:
    (tmp_path / "tests" / "device").mkdir(parents=True)
    (tmp_path / "tests" / "device" / "test_new.py").write_text(
        "def test_attack_new_trick(lab):\n    pass\n")
    unmapped = attacks.unmapped_attack_tests(tmp_path)
    assert unmapped == ["tests/device/test_new.py::test_attack_new_trick"]
    v = {p.provision.pid: p for p in compliance.evaluate(_results(), unmapped=unmapped)}
    assert v["5.3-2"].verdict == compliance.INCONCLUSIVE
    assert "test_attack_new_trick" in _case(v["5.3-2"], "5.3-2-2").why


def _defined(test: str) -> bool:
    file, name = test.split("::")
    tree = ast.parse((ROOT / file).read_text())
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name
               for n in tree.body)


def test_every_attack_and_every_mapped_test_exists() -> None:
    # every test_attack_* in tests/ is in the table, and every name the report maps exists
    assert attacks.unmapped_attack_tests() == []
    missing = [t for t in compliance.mapped_tests() if not _defined(t)]
    assert missing == []
    issue15 = {a.source for a in attacks.ATTACKS if a.source.startswith("issue 15 #")}
    assert {f"issue 15 #{i}" for i in range(1, 13)} <= {s.split(";")[0] for s in issue15}
    assert all(a.tests for a in attacks.ATTACKS)


def test_an_http_update_url_fails_5_5_1() -> None:
    v = _verdicts(_results(), device_config={"url": "http://updates.example.com/repo"})
    assert v["5.5-1"].verdict == compliance.FAIL and "plain http" in v["5.5-1"].cases[0].why


def test_a_results_file_is_traced_only_through_its_run_record(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text("<testsuites><testsuite><properties><property name='otakit_run_id' "
                     "value='r1'/><property name='otakit_commit' value='c'/></properties>"
                     "</testsuite></testsuites>")
    assert not compliance.verify_results(junit).verified  # no run record
    side = tmp_path / "junit.xml.run.json"
    commit, _ = compliance.evidence.git_state()
    record = {"run_id": "r1", "commit": commit,
              "junit_sha256": hashlib.sha256(junit.read_bytes()).hexdigest()}
    side.write_text(json.dumps(record))
    r = compliance.verify_results(junit)  # the XML names commit "c", not the record's
    assert not r.verified and "commit inside the XML" in r.why
    junit.write_text(junit.read_text().replace("value='c'", f"value='{commit}'"))
    r = compliance.verify_results(junit)  # the file changed after its hash was recorded
    assert not r.verified and "SHA-256" in r.why
    side.write_text(json.dumps({**record,
                                "junit_sha256": hashlib.sha256(junit.read_bytes()).hexdigest()}))
    assert compliance.verify_results(junit).verified


# ---- one real run, through the CLI, from another working directory ------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    cwd = tmp_path_factory.mktemp("caller")
    mp = pytest.MonkeyPatch()
    mp.chdir(cwd)
    assert not (ROOT / "rep").exists()
    pdf = find_browser() is not None
    try:
        code = main(["compliance", "report", "--out", "rep", "--provision", "5.3-11"]
                    + (["--pdf"] if pdf else []))
    finally:
        mp.undo()
    assert code == 0
    assert not (ROOT / "rep").exists()  # --out is the caller's, not the checkout's
    yield cwd / "rep", "pdf" if pdf else ""


def test_report_run_is_an_evidence_record(run: tuple[Path, str]) -> None:
    out, _ = run
    assert {"junit.xml", "junit.xml.run.json", "report.md", "report.html",
            "report.json"} <= {p.name for p in out.iterdir()}
    doc = json.loads((out / "report.json").read_text())
    rec = doc["record"]
    assert rec["verified"] is True
    assert rec["results_sha256"] == hashlib.sha256((out / "junit.xml").read_bytes()).hexdigest()
    assert rec["commit"] == compliance.evidence.git_state()[0]
    assert rec["micropython"].startswith("MicroPython ")
    assert "simulated ESP32" in rec["target"]
    assert rec["commands"][0] == "otakit compliance report --out rep --board esp32 " \
        "--provision 5.3-11" + (" --pdf" if run[1] else "")
    assert "-m pytest" in rec["commands"][1] and "test_release_security_needs_severity" \
        in rec["commands"][1]
    (prov,) = doc["provisions"]
    assert prov["provision"] == "5.3-11" and prov["verdict"] == compliance.INCONCLUSIVE
    assert doc["attacks"] == []  # no attack tests 5.3-11: the table is left out
    (case,) = prov["cases"]
    assert len(case["tests"]) == 3  # the severity, the risk sentence, the notice
    # parametrised cases are counted, not collapsed (the risk-sentence test has 4)
    assert [n["passed"] for n in case["tests"].values()] == [1, 4, 1]
    assert all(n["failed"] == n["skipped"] == 0 for n in case["tests"].values())
    md = (out / "report.md").read_text()
    assert re.search(r"\| traceability \| VERIFIED: ", md)
    assert rec["results_sha256"] in md


def test_report_rereads_its_own_results_and_flags_an_edited_copy(run: tuple[Path, str],
                                                                  tmp_path: Path) -> None:
    out, _ = run
    assert main(["compliance", "report", "--out", str(tmp_path / "again"), "--junit",
                 str(out / "junit.xml"), "--provision", "5.3-11"]) == 0
    assert json.loads((tmp_path / "again" / "report.json").read_text())["record"]["verified"]
    forged = tmp_path / "junit.xml"
    forged.write_text((out / "junit.xml").read_text().replace("<failure", "<passed"))
    forged.write_text(forged.read_text() + "\n")
    shutil.copy(out / "junit.xml.run.json", tmp_path / "junit.xml.run.json")
    assert main(["compliance", "report", "--out", str(tmp_path / "forged"), "--junit",
                 str(forged), "--provision", "5.3-11"]) == 0
    doc = json.loads((tmp_path / "forged" / "report.json").read_text())
    assert doc["record"]["verified"] is False
    assert doc["provisions"][0]["verdict"] == compliance.UNVERIFIED


def test_the_pdf_shows_the_report(run: tuple[Path, str]) -> None:
    out, pdf = run
    if not pdf:
        pytest.skip("no Chromium installed (scripts/install-system-deps.sh installs it)")
    pdfium = pytest.importorskip("pypdfium2", reason="pip install -e '.[test]'")
    doc = pdfium.PdfDocument(str(out / "report.pdf"))
    assert len(doc) >= 2
    for i in range(len(doc)):
        bitmap = doc[i].render(scale=0.5, grayscale=True)  # one byte per pixel
        buf, w, stride = bytes(bitmap.buffer), bitmap.width, bitmap.stride
        rows = [buf[y * stride:y * stride + w] for y in range(0, bitmap.height, 2)]
        dark = sum(1 for row in rows for b in row if b < 128)
        assert dark > len(rows) * w // 500, f"page {i + 1} is blank"
    text = doc[0].get_textpage().get_text_range()
    assert "EN 303 645 §5.3 evidence report" in text and "Evidence record" in text
    everything = "".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    assert "5.3-11-1" in everything and "INCONCLUSIVE" in everything
    assert "IXIT 20-SecBoot" in everything


# ---- IXIT drafts ---------------------------------------------------------------------------

def test_ixit_7_lists_every_way_code_reaches_the_board_and_secure_boot_is_off() -> None:
    text = ixit.ixit_updmech(None, None, load_board("esp32"))
    for way in ("over-the-air", "Keyring update", "USB/serial", "mpremote", "otakit deploy",
                "esptool"):
        assert way in text, way
    assert "Secure Boot is not enabled" in text
    assert "Secure Boot is not enabled" in ixit.ixit_secboot(load_board("esp32"))


def test_ixit_secure_boot_follows_the_board_definition(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    board = load_board("esp32")
    (tmp_path / "esp32").mkdir()
    doc = json.loads((ROOT / "boards" / "esp32" / "board.json").read_text())
    (tmp_path / "esp32" / "board.json").write_text(json.dumps({**doc, "secure_boot": "v2"}))
    monkeypatch.setattr(ixit, "BOARDS_DIR", tmp_path)
    assert "states Secure Boot v2 is enabled" in ixit.ixit_secboot(board)
    assert "not enabled" not in ixit.ixit_updmech(None, None, board)


def test_ixit_drafts_come_from_the_projects_facts() -> None:
    text = ixit.all_drafts(load_board("esp32"), {"url": "http://u.example/r", "check_s": 3600},
                           None, {"support_end": "2033-12-31",
                                  "published": [{"model": "DL-100",
                                                 "path": "door/support/support.json"}]})
    for title in ("2-UserInfo", "4-Conf", "6-SoftComp", "7-UpdMech", "8-UpdProc",
                  "11-ComMech", "20-SecBoot", "23-ResMech", "29-InpVal"):
        assert f"### IXIT {title}" in text, title
    assert "until 2033-12-31" in text and "DL-100" in text
    assert "plain http" in text and "3600 s" in text
    assert "at most 4096 bytes" in text  # the manifest bound, read from firmware/ota/manifest.py
    assert "[the manufacturer states]" in text


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("not xml")
    assert main(["compliance", "report", "--out", str(tmp_path / "o"), "--junit",
                 str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otakit: BAD_JUNIT: ") and err.count("\n") == 1
    cfg = tmp_path / "cfg.json"
    cfg.write_text("[1]")
    assert main(["compliance", "report", "--out", str(tmp_path / "o"), "--junit",
                 str(bad), "--device-config", str(cfg)]) == 1
    assert capsys.readouterr().err.startswith("otakit: BAD_CONFIG: ")
    good = tmp_path / "j.xml"
    good.write_text("<testsuites/>")
    monkeypatch.setenv("OTAKIT_CHROMIUM", "no-such-browser-here")
    assert main(["compliance", "report", "--out", str(tmp_path / "o"), "--junit", str(good),
                 "--pdf"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otakit: NO_RENDERER: ") and err.count("\n") == 1
