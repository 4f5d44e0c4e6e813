"""The fuzzer's cases (`otakit.sim.fuzz` runs them): Hypothesis strategies for signed manifests,
manifest bodies, keyring documents and raw HTTP responses, and the fixed keys they are signed
with. `generate` draws ``n`` cases reproducibly from a seed.
"""

from __future__ import annotations

import json
import random
import struct
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from otakit.keyring import new_body, sign_keyring
from otakit.keys import ED25519, RSA_PSS, generate_key
from otakit.manifest import sign_manifest


class Keys:
    """Fixed keys for a run: a release key per algorithm, a root (RSA: cheap to verify)."""

    def __init__(self) -> None:
        self.rsa = generate_key(RSA_PSS)
        self.ed = generate_key(ED25519)
        self.root = self.rsa

    def module(self) -> str:
        """The keyring module the harness imports (``ota_fuzz_keys``)."""
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
    "created": 1767225600, "support_end": "2031-12-31", "revision": 5, "min_keyring": 0,
    "expires": 1798761600, "notes": "n", "security": {"severity": "high", "risk": "r"},
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


def generate(n: int, seed_value: int, keys: Keys) -> list[tuple[str, bytes]]:
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
