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

Run: ``.venv/bin/python -m otakit.sim.fuzz [--cases 10000] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
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
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from otakit.keyring import new_body, sign_keyring
from otakit.keys import ED25519, RSA_PSS, PrivateKey, generate_key
from otakit.manifest import sign_manifest
from otakit.mpy import compile_to_mpy, micropython_binary, micropython_env
from otakit.paths import FIRMWARE_DIR

HEAP = "96K"
BATCH = 400
CASE_TIMEOUT_MS = 1500  # the HTTP client's timeout: a case never legitimately takes longer

HARNESS = r"""
import sys, struct, asyncio, gc
from ota import manifest, keyring
from ota.errors import OTAError
from ota.http import HTTPClient
from ota_fuzz_keys import KEYS, ROOTS
REAL = manifest._verify
PORT = int(sys.argv[2])
BUF = bytearray(4096)  # one buffer for the process, as the agent owns one

async def http(i, mode):
    c = HTTPClient(%d)
    url = "http://127.0.0.1:%%d/case/%%d" %% (PORT, i)
    buf = BUF
    if mode == 0:
        await c.get_small(url, buf)
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


class _Keys:
    """Fixed keys for a run: a release key per algorithm, a root (RSA: cheap to verify)."""

    def __init__(self) -> None:
        self.rsa = generate_key(RSA_PSS)
        self.ed = generate_key(ED25519)
        self.root = self.rsa

    def module(self) -> str:
        def lit(b: bytes) -> str:
            return "b'" + "".join(f"\\x{c:02x}" for c in b) + "'"
        keys = ", ".join(f"{lit(k.key_id)}: ('{k.alg}', {lit(k.raw)})" for k in (self.rsa, self.ed))
        return f"KEYS = {{{keys}}}\nROOTS = {{{lit(self.root.key_id)}: ('{self.root.alg}', " \
               f"{lit(self.root.raw)})}}\n"


SHA = "ab" * 32
BASE: dict[str, Any] = {
    "product": "door-lock", "board": "esp32", "chip_id": 0, "channel": "stable",
    "version": "1.2.0", "sequence": 12, "security_version": 3,
    "payload": {"path": f"blobs/sha256/{SHA}", "size": 65872, "sha256": SHA, "encoding": "raw"},
    "created": 1767225600, "support_end": "2031-12-31", "expires": 1798761600,
    "notes": "n", "security": {"severity": "high", "risk": "r"},
    "disruption": {"reboot": True, "seconds": 45},
}

# --- strategies ---------------------------------------------------------------------------------
_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
            | st.sampled_from(["", "..", "/", "raw", "esp32", "door-lock", SHA, "2031-12-31"]))
_json = st.recursive(_scalars, lambda c: st.lists(c, max_size=4)
                     | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
_fields = st.sampled_from(sorted(BASE) + ["payload.path", "payload.size", "payload.sha256",
                                          "payload.encoding", "security.severity",
                                          "disruption.seconds"])


def _mutate_body(d: dict[str, Any], field: str, value: Any, delete: bool) -> dict[str, Any]:
    d = json.loads(json.dumps(d))
    *parents, last = field.split(".")
    t = d
    for p in parents:
        if not isinstance(t.get(p), dict):
            t[p] = {}
        t = t[p]
    if delete:
        t.pop(last, None)
    else:
        t[last] = value
    return d


def _dump(d: Any) -> bytes:
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode("utf-8",
                                                                           "surrogatepass")


@st.composite
def body_bytes(draw: st.DrawFn) -> bytes:
    how = draw(st.integers(0, 6))
    if how == 0:  # one field replaced by anything, or removed
        return _dump(_mutate_body(BASE, draw(_fields), draw(_json), draw(st.booleans())))
    if how == 1:  # several fields replaced
        d = BASE
        for _ in range(draw(st.integers(1, 4))):
            d = _mutate_body(d, draw(_fields), draw(_scalars), False)
        return _dump(d)
    if how == 2:  # deep nesting
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        depth = draw(st.integers(10, 3600 // (len(opener) + 1)))  # within a 4 KB manifest
        return (opener * depth + "1" + closer * depth).encode()
    if how == 3:  # huge numbers and exotic number syntax
        n = draw(st.sampled_from(["1" * draw(st.integers(20, 3400)), "-0", "1e999", "1E-999",
                                  "0x10", "01", "1.", ".5", "NaN", "Infinity", "-Infinity"]))
        return _dump(BASE).replace(b'"sequence":12', b'"sequence":' + n.encode())
    if how == 4:  # invalid UTF-8 spliced in
        raw = bytearray(_dump(BASE))
        pos = draw(st.integers(0, len(raw) - 1))
        raw[pos:pos] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                             b"\xc0\xaf", b"\x00", b"\\u", b"\\ud800"]))
        return bytes(raw)
    if how == 5:  # any JSON value at all
        return _dump(draw(_json))
    return draw(st.binary(min_size=1, max_size=600))  # arbitrary bytes


@st.composite
def mutated(draw: st.DrawFn, valid: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.integers(0, 4))
        if how == 0 and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif how == 1:
            del data[draw(st.integers(0, len(data))):]
        elif how == 2:
            data += draw(st.binary(max_size=64))
        elif how == 3 and len(data) >= 18:  # header fields: version, alg, lengths, count
            i = draw(st.sampled_from([4, 5, 6, 7, 14, 15, 16, 17]))
            data[i] = draw(st.integers(0, 255))
        elif data:
            i = draw(st.integers(0, len(data) - 1))
            data[i:i + 4] = draw(st.binary(min_size=4, max_size=4))
    return bytes(data[:5000])


def _envelope(body: bytes, alg_id: int = 1, key_id: bytes = bytes(8)) -> bytes:
    s = 64 if alg_id == 1 else 384
    return struct.pack("<4sBB8sHH", b"OTAM", 1, alg_id, key_id, len(body), s) + body + bytes(s)


def _keyring_frame(body: bytes, key_id: bytes) -> bytes:
    return (struct.pack("<4sBBH", b"OTAK", 1, 1, len(body)) + body
            + struct.pack("<B8sH", 2, key_id, 384) + bytes(384))


_STATUS = st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.1 206 Partial Content", b"HTTP/1.0 200",
                           b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 302 Found",
                           b"HTTP/1.1 500 Oops", b"HTTP/2 200", b"HTTP/1.1 20 OK",
                           b"HTTP/1.1 200", b"ICY 200 OK", b"HTTP/1.1 999 X", b""])
_HNAMES = st.sampled_from([b"Content-Length", b"content-length", b"Transfer-Encoding",
                           b"Content-Range", b"ETag", b"Location", b"Date", b"Retry-After",
                           b"Content-Encoding", b"X-Junk", b""])
_HVALUES = st.sampled_from([b"0", b"5", b"100", b"4096", b"4097", b"99999999999999999999",
                            b"-1", b"1e3", b" 12 ", b"chunked", b"gzip", b"identity",
                            b"bytes 100-199/200", b"bytes 0-0/*", b"bytes 5-1/2", b"bytes */9",
                            b"/x", b"http://127.0.0.1:1/x", b"https://h/x", b"//evil/x",
                            b"Sun, 06 Nov 1994 08:49:37 GMT", b"\x00\xff", b"\"e\""])


@st.composite
def http_response(draw: st.DrawFn) -> bytes:
    lines = [draw(_STATUS)]
    for _ in range(draw(st.integers(0, 6))):
        sep = draw(st.sampled_from([b": ", b":", b" : ", b""]))
        lines.append(draw(_HNAMES) + sep + draw(_HVALUES | st.binary(max_size=20)))
    if draw(st.integers(0, 9)) == 0:
        lines.append(b"X-Long: " + b"a" * draw(st.integers(400, 700)))
    if draw(st.integers(0, 9)) == 0:
        lines += [b"X-Many: 1"] * draw(st.integers(30, 40))
    eol = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    head = eol.join(lines) + eol + (eol if draw(st.integers(0, 9)) else b"")
    body = draw(st.binary(max_size=300) | st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n"]))
    return bytes([draw(st.integers(0, 2))]) + head + body  # first byte: the client mode


# --- running -----------------------------------------------------------------------------------
def generate(n: int, seed_value: int, keys: _Keys) -> list[tuple[str, bytes]]:
    """``n`` cases (kind, data), reproducible from ``seed_value``."""
    now = 1767225600
    valid_m = [sign_manifest(_dump(BASE), keys.rsa), sign_manifest(_dump(BASE), keys.ed)]
    kbody = new_body("door-lock", [keys.ed, keys.rsa], 3, now, now + 86400)
    valid_k = [sign_keyring(kbody, [keys.root])]
    kid = keys.rsa.key_id
    plan: list[tuple[str, st.SearchStrategy[bytes], int]] = [
        ("m", mutated(valid_m), n * 20 // 100),
        ("b", body_bytes().map(lambda b: _envelope(b, 2, kid)), n * 30 // 100),
        ("k", mutated(valid_k), n * 10 // 100),
        ("K", body_bytes().map(lambda b: _keyring_frame(b, kid)), n * 10 // 100),
    ]
    plan.append(("h", http_response(), n - sum(p[2] for p in plan)))
    out: list[tuple[str, bytes]] = []
    for i, (kind, strat, count) in enumerate(plan):
        if count <= 0:
            continue
        got: list[bytes] = []

        @seed(seed_value + i)
        @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
                  suppress_health_check=list(HealthCheck))  # pyright: ignore[reportArgumentType]
        @given(strat)
        def collect(data: bytes) -> None:
            got.append(data)

        collect()
        while len(got) < count:  # hypothesis may stop early on a small space: top up
            got.append(got[len(got) % max(1, len(got))] if got else b"")
        out += [(kind, d) for d in got[:count]]
    random.Random(seed_value).shuffle(out)
    return out


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
    keys = _Keys()
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
            cmd = [micropython_binary(), "-X", f"heapsize={heap}", str(d / "harness.py"),
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
