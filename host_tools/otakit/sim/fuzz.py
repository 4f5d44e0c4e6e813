"""Fuzz the device's parsers on the real MicroPython unix port (`make fuzz`).

Hypothesis generates cases on the host; they run in batches, one ``micropython`` process per
batch under a small ``-X heapsize``:

- ``m``: signed manifests, mutated (bit flips, truncation, extension, overwritten header fields)
  -> ``ota.manifest.parse`` with real signature checks;
- ``b``: manifest bodies (mutated valid bodies, random JSON of any type, huge numbers, deep
  nesting, invalid UTF-8) in a well-formed envelope -> ``parse`` with the signature check
  stubbed to pass, so the body code is reached;
- ``k`` / ``K``: keyring documents, mutated (real checks) / bodies (signature check stubbed);
- ``h``: raw HTTP responses (status lines, header fields, lying ``Content-Length``, chunked,
  redirects, early close) served by a raw-socket server thread -> ``ota.http.HTTPClient``.

A failure is any exception other than the agent's own rejection (`OTAError` subclasses), a hang
(a batch past its deadline: the case without a result is the culprit) or running out of memory
(``MemoryError`` in the small heap). The run ends with the line ``N cases, M failures``.

The cases (Hypothesis strategies, fixed keys) are `otakit.sim.fuzz_cases`; this module runs them.

Run: ``.venv/bin/python -m otakit.sim.fuzz [--cases 10000] [--seed S]``.
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from otakit.mpy import compile_to_mpy, micropython_command, micropython_env
from otakit.paths import FIRMWARE_DIR
from otakit.sim.fuzz_cases import Keys, generate

HEAP = "96K"
BATCH = 400
CASE_TIMEOUT_MS = 1500  # the HTTP client's timeout: a case never legitimately takes longer

HARNESS = r"""
import sys, struct, asyncio, gc
from ota import manifest, keyring
from ota.errors import OTAError
from ota.http import HTTPClient
from ota.httpsmall import get_small
from ota_fuzz_keys import KEYS, ROOTS
REAL = manifest._verify
PORT = int(sys.argv[2])
BUF = bytearray(4096)  # one buffer for the process, as the agent owns one

async def http(i, mode):
    c = HTTPClient(%d)
    url = "http://127.0.0.1:%%d/case/%%d" %% (PORT, i)
    buf = BUF
    if mode == 0:
        await get_small(c, url, buf)
        return
    r = await c.get(url, 1 << 20, None, 100 if mode == 2 else 0)
    try:
        while await r.readinto(buf):
            pass
    finally:
        await r.close()

def one(i, kind, data):
    if kind == "m":
        manifest.parse(data, KEYS)
    elif kind == "b":
        manifest._verify = lambda *a: True
        try:
            manifest.parse(data, KEYS)
        finally:
            manifest._verify = REAL
    elif kind == "k":
        keyring.parse(data, ROOTS, 1, "door-lock", "production")
    elif kind == "K":
        import ota.crypto  # again: ota.manifest releases it after every signature check
        c = sys.modules["ota.crypto"]
        real = c.verify
        c.verify = lambda *a: True
        try:
            keyring.parse(data, ROOTS, 1, "door-lock", "production")
        finally:
            c.verify = real
    elif kind == "h":
        asyncio.run(http(i, data[0]))

f = open(sys.argv[1], "rb")
while True:
    hdr = f.read(9)
    if len(hdr) < 9:
        break
    i, kind, n = struct.unpack("<IBI", hdr)
    data = f.read(n)
    gc.collect()  # each case starts from the same heap, as each check of the agent does
    try:
        one(i, chr(kind), data)
        print(i, "OK")
    except OTAError as e:
        print(i, "REJ", e.reason)
    except BaseException as e:
        print(i, "EXC", type(e).__name__, repr(str(e))[:120])
print("END")
""" % CASE_TIMEOUT_MS


class _RawServer:
    """Serves ``responses[i]`` (raw bytes) for ``GET /case/<i>``, then closes."""

    def __init__(self) -> None:
        self.responses: dict[int, bytes] = {}
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                try:
                    conn.settimeout(2)
                    req = b""
                    while b"\r\n\r\n" not in req and len(req) < 8192:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        req += chunk
                    path = req.split(b" ", 2)[1] if req.count(b" ") >= 2 else b""
                    i = int(path.rsplit(b"/", 1)[-1]) if path.startswith(b"/case/") else -1
                    conn.sendall(self.responses.get(i, b""))
                except (OSError, ValueError):
                    pass

    def close(self) -> None:
        self.closed = True
        self.thread.join(timeout=2)
        self.sock.close()


def run(n: int, seed_value: int, *, heap: str = HEAP, batch: int = BATCH,
        log: Callable[[str], None] = print,
        outcomes: dict[str, int] | None = None) -> tuple[int, list[str]]:
    """Generate and run ``n`` cases; return (cases run, failure descriptions). ``outcomes``
    collects counts of "kind verdict" (e.g. "b REJ BAD_BODY", "h OK")."""
    keys = Keys()
    cases = generate(n, seed_value, keys)
    failures: list[str] = []
    server = _RawServer()
    with tempfile.TemporaryDirectory(prefix="otakit-fuzz-") as tmp:
        d = Path(tmp)
        (d / "harness.py").write_text(HARNESS)
        (d / "ota_fuzz_keys.py").write_text(keys.module())
        # the agent as a board has it: compiled (frozen), so the heap holds only its data
        compile_to_mpy(sorted((FIRMWARE_DIR / "ota").glob("*.py")), d / "ota")
        env = micropython_env([d], None)
        start = 0
        t0 = time.monotonic()
        while start < len(cases):
            chunk = list(enumerate(cases))[start:start + batch]
            with (d / "cases.bin").open("wb") as f:
                for i, (kind, data) in chunk:
                    if kind == "h":
                        server.responses[i] = data[1:]
                        data = data[:1]
                    f.write(struct.pack("<IBI", i, ord(kind), len(data)) + data)
            cmd = [*micropython_command(), "-X", f"heapsize={heap}", str(d / "harness.py"),
                   str(d / "cases.bin"), str(server.port)]
            deadline = 30 + len(chunk) * CASE_TIMEOUT_MS / 1000 / 4
            try:
                p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=deadline, check=False)
                out, ended = p.stdout.decode(errors="replace"), f"exit {p.returncode}"
            except subprocess.TimeoutExpired as e:
                out = (e.stdout or b"").decode(errors="replace")
                ended = "hang (batch deadline)"
            done = set()
            for line in out.splitlines():
                parts = line.split(" ", 2)
                if len(parts) >= 2 and parts[0].isdigit():
                    done.add(int(parts[0]))
                    if outcomes is not None:
                        k = f"{cases[int(parts[0])][0]} {parts[1]}"
                        if parts[1] == "REJ":
                            k += " " + parts[2]
                        outcomes[k] = outcomes.get(k, 0) + 1
                    if parts[1] == "EXC":
                        i = int(parts[0])
                        failures.append(f"case {i} ({cases[i][0]}): {parts[2]} "
                                        f"data={cases[i][1][:80]!r}")
            missing = [i for i, _ in chunk if i not in done]
            if "END" not in out and missing:  # crashed or hung at the first unanswered case
                i = missing[0]
                tail = out.strip().splitlines()[-1:] if ended.startswith("exit") else []
                failures.append(f"case {i} ({cases[i][0]}): {ended} {tail} "
                                f"data={cases[i][1][:80]!r}")
                start = i + 1
            else:
                start += len(chunk)
            log(f"  {start}/{len(cases)} cases, {len(failures)} failures, "
                f"{time.monotonic() - t0:.0f} s")
    server.close()
    return len(cases), failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--heap", default=HEAP)
    a = ap.parse_args(argv)
    s = a.seed if a.seed is not None else random.randrange(2**31)
    print(f"fuzzing the device parsers: {a.cases} cases, seed {s}, -X heapsize={a.heap}")
    outcomes: dict[str, int] = {}
    n, failures = run(a.cases, s, heap=a.heap, outcomes=outcomes)
    for k in sorted(outcomes):
        print(f"  {outcomes[k]:6d}  {k}")
    for f in failures:
        print("FAILURE", f)
    print(f"{n} cases, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
