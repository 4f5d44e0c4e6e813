"""Benchmark of on-device signature verification (`ota.crypto.verify`) on the MicroPython unix port.

For each algorithm it reports, as figures relative to a baseline measured in the same process:

* the median verify time divided by the median time of SHA-256 over 1.5 MB (``hashlib``, 4 KB
  chunks), both measured interleaved in one ``micropython`` process;
* the smallest ``-X heapsize`` from which one verify succeeds at every 1 KB step up to the top of
  the scan (`bench.heap_scan`), with the ``ota`` package loaded from ``.mpy`` files
  (``firmware/ota/*.py`` compiled with mpy-cross into a temp dir).

Run: ``.venv/bin/python -m bench.verify [--rounds N] [--write-docs]``. ``--write-docs`` replaces the
"Signature verification" section of docs/performance.md with the figures, command and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


from bench import heap_scan, write_section
from otakit.keys import generate_key
from otakit.mpy import compile_to_mpy, run_micropython
from otakit.paths import FIRMWARE_DIR

ALGS = ("rsa3072-pss-sha256", "ed25519")
TARGETS = {"rsa3072-pss-sha256": (0.35, 16), "ed25519": (0.7, 32)}  # (ratio, heap KB), issue 2
HEADING = "Signature verification"

TIMING = """
import time, hashlib
from ota.crypto import verify
CASES = {cases}
def sha():
    buf = bytearray(4096)
    t = time.ticks_us()
    h = hashlib.sha256()
    for _ in range(384):
        h.update(buf)
    h.digest()
    return time.ticks_diff(time.ticks_us(), t)
def one(c):
    t = time.ticks_us()
    ok = verify(*c)
    dt = time.ticks_diff(time.ticks_us(), t)
    if not ok:
        raise SystemExit("verify failed")
    return dt
res = {{"sha256": []}}
for name in CASES:
    res[name] = []
    one(CASES[name])
for _ in range({rounds}):
    res["sha256"].append(sha())
    for name in CASES:
        res[name].append(one(CASES[name]))
print("RESULT", res)
"""

HEAP = """
import gc
import ota.crypto
gc.collect()
print("RESULT", ota.crypto.verify(*{case}))
"""


def signed_cases() -> dict[str, tuple[str, bytes, bytes, bytes]]:
    """One fresh key and one signature over a 32-byte digest per algorithm (as in a manifest)."""
    msg = bytes(range(32))
    out = {}
    for alg in ALGS:
        key = generate_key(alg)
        out[alg] = (alg, key.raw, msg, key.sign(msg))
    return out


def compile_package(dest: Path) -> Path:
    """firmware/ota/*.py compiled to dest/ota/*.mpy; returns dest (for MICROPYPATH)."""
    compile_to_mpy(sorted((FIRMWARE_DIR / "ota").glob("*.py")), dest / "ota")
    return dest


def _result(proc: subprocess.CompletedProcess[bytes]) -> str | None:
    out = proc.stdout.decode()
    if proc.returncode != 0 or "RESULT " not in out:
        return None
    return out.split("RESULT ", 1)[1].strip()


def time_verify(pkg: Path, cases: dict, rounds: int) -> dict[str, float]:
    """Median microseconds of SHA-256 over 1.5 MB and of each verify, interleaved."""
    script = pkg / "bench_timing.py"
    script.write_text(TIMING.format(cases=repr(cases), rounds=rounds))
    proc = run_micropython([str(script)], path=[pkg], timeout=600)
    res = _result(proc)
    if res is None:
        raise RuntimeError(proc.stderr.decode() + proc.stdout.decode())
    data = json.loads(res.replace("'", '"'))
    return {k: statistics.median(v) for k, v in data.items()}


def min_heap_kb(pkg: Path, case: tuple, lo: int = 2, hi: int = 256) -> int:
    """Smallest heap in KB from which the .mpy driver verifies ``case`` at every 1 KB step up to
    the top of the scan (`bench.heap_scan`)."""
    mod = pkg / "bench_heap.py"
    mod.write_text(HEAP.format(case=repr(case)))
    compile_to_mpy([mod], pkg)  # as the project compiles device code (-march for viper)
    mod.unlink()

    def ok(kb: int) -> bool:
        return _result(run_micropython(["-m", "bench_heap"], path=[pkg], heapsize=f"{kb}K",
                                       cwd=pkg)) == "True"

    return heap_scan(ok, lo, hi).lowest  # from there every 1 KB step up passes


def run(rounds: int) -> dict[str, dict[str, float]]:
    """Figures per algorithm: verify_us, sha256_us, ratio, heap_kb."""
    cases = signed_cases()
    with tempfile.TemporaryDirectory() as tmp:
        pkg = compile_package(Path(tmp))
        med = time_verify(pkg, cases, rounds)
        return {alg: {"verify_us": med[alg], "sha256_us": med["sha256"],
                      "ratio": med[alg] / med["sha256"], "heap_kb": min_heap_kb(pkg, cases[alg])}
                for alg in ALGS}


def table(fig: dict[str, dict[str, float]]) -> str:
    rows = ["| algorithm | verify (median) | SHA-256 of 1.5 MB (median) | ratio | target "
            "| min heap (.mpy) | target |", "|---|---|---|---|---|---|---|"]
    for alg in ALGS:
        f = fig[alg]
        ratio, heap = TARGETS[alg]
        rows.append(f"| {alg} | {f['verify_us'] / 1000:.2f} ms | {f['sha256_us'] / 1000:.2f} ms "
                    f"| {f['ratio']:.2f} | ≤ {ratio} | {f['heap_kb']} KB | ≤ {heap} KB |")
    return "\n".join(rows)


def section(fig: dict[str, dict[str, float]], cmd: str) -> str:
    """The docs/performance.md section for the figures of `run`."""
    return (f"## {HEADING}\n\n{SECTION_TEXT}\n\n{table(fig)}\n\nMeasured "
            f"{datetime.date.today()} with `{cmd}` (MicroPython unix port, same process for "
            "verify and SHA-256; fresh keys, a 32-byte message as in a manifest).\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=31, help="timed rounds (default 31)")
    ap.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    args = ap.parse_args(argv)
    fig = run(args.rounds)
    tab = table(fig)
    print(tab)
    if args.write_docs:
        cmd = " ".join([".venv/bin/python -m bench.verify", *(argv or sys.argv[1:])])
        write_section(HEADING, section(fig, cmd))
    return 0


SECTION_TEXT = (
    "`ota.crypto.verify` checks a manifest signature in pure Python. The ratio is the median "
    "verify time over the median time of `hashlib.sha256` over 1.5 MB in 4 KB chunks (the work "
    "of hashing a typical app image), interleaved in one `micropython` process. The heap figure "
    "is the smallest `-X heapsize` (1 KB steps) at which one verify succeeds with `ota` loaded "
    "from `.mpy`. RSA: one `pow(s, 65537, n)` plus MGF1 on integers. Ed25519: half-size scalars "
    "(c·k ≡ d mod 8L by a truncated Euclid), a four-scalar Straus chain of ~128 doublings, "
    "frozen tables of B and 2^128·B, and pure-Python SHA-512 (one block for a 32-byte message).")

if __name__ == "__main__":
    sys.exit(main())
