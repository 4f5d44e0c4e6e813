"""The benchmarks' docs sections: every bench module writes its section of docs/performance.md
through `bench.write_section`, which replaces that section and leaves the others alone. The
benchmarks themselves are not run here (`make bench`); their results are faked."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from otakit.loadgen import LoadResult
from otakit.paths import DOCS_DIR, ROOT

BENCHES = ("agent", "app", "flash_write", "fleet_load", "latency", "payloads", "peer", "resumable",
           "verify")


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("bench")


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "performance.md"
    shutil.copyfile(DOCS_DIR / "performance.md", path)
    return path


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split("\n", 1)[0]: p for p in parts[1:]}


def _only_changed(before: str, after: str, heading: str) -> str:
    old, new = _sections(before), _sections(after)
    assert list(old) == list(new), "sections added, lost or reordered"
    assert {h: t for h, t in old.items() if h != heading} == \
        {h: t for h, t in new.items() if h != heading}
    assert after.endswith("\n") and not after.endswith("\n\n\n")
    return new[heading]


@pytest.mark.parametrize("name", BENCHES)
def test_no_bench_module_writes_the_docs_its_own_way(name: str) -> None:
    src = (ROOT / "bench" / f"{name}.py").read_text()
    tree = ast.parse(src)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    calls = {n.func.id for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "DOCS_DIR" not in names
    assert "write_section" in calls


def test_write_section_replaces_one_section_and_appends_a_new_one(bench: ModuleType,
                                                                  doc: Path) -> None:
    before = doc.read_text()
    bench.write_section("Simulated flash", "## Simulated flash\n\nnew figures\n", doc)
    after = doc.read_text()
    assert _only_changed(before, after, "Simulated flash") == "Simulated flash\n\nnew figures\n\n"
    bench.write_section("Brand new", "## Brand new\n\nx\n", doc)
    assert doc.read_text() == after.rstrip("\n") + "\n\n## Brand new\n\nx\n"


def test_flash_write_section(bench: ModuleType, doc: Path) -> None:
    mod = importlib.import_module("bench.flash_write")
    before = doc.read_text()
    mod.write_docs(1234.0, 1000.0, 5, doc)
    text = _only_changed(before, doc.read_text(), "Simulated flash")
    assert "| 1.2 ms | 1.0 ms | 1.23 |" in text and "median of 5 rounds" in text


def test_fleet_load_section(bench: ModuleType, doc: Path) -> None:
    mod = importlib.import_module("bench.fleet_load")
    ours = LoadResult("otakit serve", 100, 2.0, 100_000_000, [5.0, 9.0])
    nginx = LoadResult("nginx", 100, 1.0, 100_000_000, [3.0, 4.0])
    before = doc.read_text()
    mod.write_docs(ours, nginx, 100, 64 * 1024, 3, doc)
    text = _only_changed(before, doc.read_text(), "Fleet load (otakit serve against nginx)")
    assert "otakit serve / nginx: **0.50**" in text and "| nginx | 100 | 100.0 |" in text


def test_fleet_load_section_gives_the_median_and_every_run(bench: ModuleType,
                                                          doc: Path) -> None:
    mod = importlib.import_module("bench.fleet_load")
    ours = LoadResult("otakit serve", 100, 2.0, 100_000_000, [5.0, 9.0])
    nginx = LoadResult("nginx", 100, 1.0, 100_000_000, [3.0, 4.0])
    before = doc.read_text()
    mod.write_docs(ours, nginx, 100, 64 * 1024, 2, doc, ratios=[0.7, 0.9, 0.8])
    text = _only_changed(before, doc.read_text(), "Fleet load (otakit serve against nginx)")
    assert "**0.80** (median of 3 runs; range 0.70–0.90: 0.70, 0.90, 0.80)" in text
    assert "--devices 100 --runs 3 --write-docs" in text


def test_latency_section(bench: ModuleType, doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module("bench.latency")
    figures = {"presses_baseline": 40, "p50_baseline_ms": 2.0, "p99_baseline_ms": 4.0,
               "presses_update": 80, "p50_update_ms": 3.0, "p99_update_ms": 12.0,
               "max_update_ms": 20.0, "p99_ratio": 3.0}
    monkeypatch.setattr(mod, "run", lambda: figures)
    monkeypatch.setattr(mod, "write_section",
                        lambda heading, text: bench.write_section(heading, text, doc))
    before = doc.read_text()
    assert mod.main(["--write-docs"]) == 0
    text = _only_changed(before, doc.read_text(), "Door lock latency during an update")
    assert "**3.00**" in text and "| 80 | 3.0 ms | 12.0 ms |" in text


def test_verify_section(bench: ModuleType, doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module("bench.verify")
    fig = {alg: {"verify_us": 3000.0, "sha256_us": 10000.0, "ratio": 0.3, "heap_kb": 12}
           for alg in mod.ALGS}
    monkeypatch.setattr(mod, "run", lambda rounds: fig)
    monkeypatch.setattr(mod, "write_section",
                        lambda heading, text: bench.write_section(heading, text, doc))
    before = doc.read_text()
    assert mod.main(["--rounds", "3", "--write-docs"]) == 0
    text = _only_changed(before, doc.read_text(), "Signature verification")
    assert "| ed25519 | 3.00 ms | 10.00 ms | 0.30 |" in text
    assert "`.venv/bin/python -m bench.verify --rounds 3 --write-docs`" in text


def _scan(bench: ModuleType, lowest: int, stray: list[int] | None = None) -> object:
    return bench.HeapScan(lowest, lowest + 4, lowest - 4, stray or [])


def test_agent_section(bench: ModuleType, doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module("bench.agent")
    fig = {"small": _scan(bench, 60, [57, 58]), "large": _scan(bench, 61),
           "frozen": _scan(bench, 30), "names": 353,
           "bare_us": 10_000.0, "hashed_us": 20_000.0, "agent_us": 25_000.0,
           "nvs_writes": 20.7, "nvs_progress": 15.7,
           "nvs_other": ["d_id", "t_armed", "t_sv", "t_addr", "t_seq", "t_armed"],
           "floors": {("empty", False): _scan(bench, 12), ("empty", True): _scan(bench, 5),
                      ("bare", False): _scan(bench, 24), ("bare", True): _scan(bench, 15)}}
    monkeypatch.setattr(mod, "measure", lambda rounds: fig)
    monkeypatch.setattr(mod, "write_section",
                        lambda heading, text: bench.write_section(heading, text, doc))
    before = doc.read_text()
    assert mod.main(["--rounds", "2", "--write-docs"]) == 0
    text = _only_changed(before, doc.read_text(), "Whole update (agent)")
    assert "| `.mpy` | **60 KB** |" in text and "| frozen | **30 KB** |" in text
    assert "57, 58 KB passed too" in text and "| 1 KB |" in text
    assert "**0.40**" in text and "**0.80**" in text
    assert "All of them together, per MB\ndownloaded: **20.7** for this 1.4 MB image " \
        "(goal ≤ 16)" in text
    assert "Once per install,\nwhatever the image's size, 6:" in text
    assert "`d_id`, `t_armed`, `t_sv`, `t_addr`, `t_seq`, `t_armed`" in text
    assert "15.7\nper MB here" in text  # the resume point's d_off records
    assert "running an empty main | 12 KB | 5 KB |" in text
    assert "no checks (`bench/agent.py` `BARE_ASYNC`, a module compiled like the agent) | 24 KB " \
        "| 15 KB |" in text and "| the agent (above) | 60 KB | 30 KB |" in text
    assert "`.venv/bin/python -m bench.agent --rounds 2 --write-docs`" in text


def test_payloads_section(bench: ModuleType, doc: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module("bench.payloads")
    rows = [{"pair": "p", "encoding": "raw", "size": 1.0, "time": 1.0,
             "heap": _scan(bench, 60), "frozen": _scan(bench, 30)},
            {"pair": "p", "encoding": "deflate, wbits 12", "size": 0.69, "time": 2.0,
             "heap": _scan(bench, 70), "frozen": _scan(bench, 38)},
            {"pair": "p", "encoding": "zlib level 9, wbits 15 (reference, not a device encoding)",
             "size": 0.68, "time": None, "heap": None, "frozen": None, "near_zlib": 0.01}]
    monkeypatch.setattr(mod, "measure", lambda rounds, firmware: rows)
    monkeypatch.setattr(mod, "write_section",
                        lambda heading, text: bench.write_section(heading, text, doc))
    before = doc.read_text()
    assert mod.main(["--write-docs"]) == 0
    text = _only_changed(before, doc.read_text(), "Payload encodings (deflate, delta)")
    assert "| p | deflate, wbits 12 | 0.6900 | 2.00 | 70 KB | 38 KB |" in text
    assert "| p | zlib level 9, wbits 15 (reference, not a device encoding) | 0.6800 |  |  |  |" \
        in text
    assert "`.venv/bin/python -m bench.payloads --write-docs`" in text


def test_app_section(bench: ModuleType, doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module("bench.app")
    scans = {False: _scan(bench, 91), True: _scan(bench, 56, [53])}
    monkeypatch.setattr(mod, "min_heap", lambda frozen: scans[frozen])
    monkeypatch.setattr(mod, "write_section",
                        lambda heading, text: bench.write_section(heading, text, doc))
    assert mod.main(["--write-docs"]) == 0
    text = _sections(doc.read_text())["Example app (door lock) through a whole update"]
    assert "| `.mpy` (a development board) | **91 KB** | 112 KB |" in text
    assert "| frozen (a product board) | **56 KB** | 112 KB |" in text
    assert "53 KB passed too" in text
    assert "`.venv/bin/python -m bench.app --write-docs`" in text
    scans[False] = _scan(bench, 113)
    assert mod.main([]) == 1  # over `otakit sim run`'s default heap: the bench fails


def test_resumable_section(bench: ModuleType, doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = importlib.import_module("bench.resumable")
    rows = [mod.Row("p", "deflate", 1000, 1010, 1000, 3, 600, {1: 599, 2: 300}),
            mod.Row("p", "delta", 1000, 100, 100, 1, 100, {0: 99})]
    monkeypatch.setattr(mod, "measure", lambda firmware: rows)
    monkeypatch.setattr(mod, "write_section",
                        lambda heading, text: bench.write_section(heading, text, doc))
    assert mod.main(["--write-docs"]) == 0
    text = _sections(doc.read_text())["Resumable encodings"]
    assert "| p | deflate, wbits 12 | 1,010 B | 1,000 B | **+1.00 %** | 3 | 600 B | " \
        "1: 599 B, 2: 300 B | **599 B** |" in text
    assert "Largest size cost: **+1.00 %**" in text and "**599 B** (before chunking" in text
    assert "`.venv/bin/python -m bench.resumable --write-docs`" in text
    rows.append(mod.Row("q", "deflate", 1000, 1030, 1000, 2, 70_000, {1: 69_999}))
    assert mod.main([]) == 1  # above a goal: the bench fails


def test_peer_section(bench: ModuleType, doc: Path, monkeypatch: pytest.MonkeyPatch,
                      tmp_path: Path) -> None:
    mod = importlib.import_module("bench.peer")
    (tmp_path / "mip" / "ota").mkdir(parents=True)
    for f in mod.PEER_FILES:
        (tmp_path / "mip" / "ota" / f).write_text("")
    fig = {"agent_us": 30_000.0, "peer_us": 20_000.0, "ratios": [1.4, 1.5, 1.6],
           "paced_bare_us": 700_000.0, "paced_agent_us": 730_000.0,
           "paced_peer_us": 710_000.0, "size": 1_400_000, "heap": _scan(bench, 51),
           "heap_frozen": _scan(bench, 40)}
    monkeypatch.setattr(mod, "measure", lambda pkg, rounds: fig)
    monkeypatch.setattr(mod, "write_section",
                        lambda heading, text: bench.write_section(heading, text, doc))
    before = doc.read_text()
    assert mod.main(["--peer-dir", str(tmp_path), "--write-docs"]) == 0
    after = doc.read_text()
    heading = "Agent against glenn20's micropython-esp32-ota"
    if heading in _sections(before):
        text = _only_changed(before, after, heading)
    else:
        text = _sections(after)[heading]
    assert "**1.50** (rounds: 1.40–1.60" in text and "**0.96**" in text
    assert "| 30.0 ms | 20.0 ms | **1.50** (rounds: 1.40–1.60; goal ≤ 1.0) |" in text
    assert "**51 KB** with its code loaded from `.mpy`, **40 KB** in the" in text
    assert "`.venv/bin/python -m bench.peer --peer-dir DIR --write-docs`" in text


@pytest.mark.parametrize("where", ["absent", "wrong"])
def test_peer_bench_skips_with_a_reason_without_a_checkout(
        bench: ModuleType, doc: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], where: str) -> None:
    mod = importlib.import_module("bench.peer")
    monkeypatch.delenv("OTAKIT_PEER_DIR", raising=False)
    monkeypatch.setattr(mod, "measure", lambda pkg, rounds: pytest.fail("measured"))
    monkeypatch.setattr(mod, "write_section", lambda heading, text: pytest.fail("wrote"))
    args = [] if where == "absent" else ["--peer-dir", str(tmp_path)]
    assert mod.main(args + ["--write-docs"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("bench.peer: skipped: ")
    assert ("no --peer-dir" in err) if where == "absent" else ("mip/ota/update.py" in err)
