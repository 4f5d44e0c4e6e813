"""Differential test of the strict JSON parsers: host ``otakit.strictjson`` against the device's
``ota.strictjson`` on the real MicroPython unix port (docs/format.md §2.5).

Bodies come from a seeded generator: random JSON from the grammar (whitespace, escapes, numbers
of every form, deep nesting, repeated keys) and byte-level mutations of valid manifest bodies
(deleted, inserted and replaced bytes, truncation, and the classes that once split the two
sides: missing and extra commas, non-string keys, a trailing NUL, overlong UTF-8, escaped and
encoded surrogates). All of them go through ONE micropython process (length-prefixed in a
file); each side prints a verdict and a canonical dump of the parsed value per body.

Run: ``.venv/bin/python -m otakit.sim.jsondiff [--bodies 10000] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import tempfile
from pathlib import Path

from otakit import strictjson
from otakit.mpy import run_micropython
from otakit.paths import FIRMWARE_DIR

# The canonical dump, run by both sides: one token per scalar, strings as UTF-8 hex, floats as
# the bits of the double (compared to 1 ulp: MicroPython's float parsing is not correctly
# rounded for long significands, and no field of docs/format.md is a float).
DUMP = r"""
import struct
from binascii import hexlify
def dump(v, out):
    t = type(v)
    if t is dict:
        out.append("{")
        for k in sorted(v):
            out.append("k" + hexlify(k.encode()).decode())
            dump(v[k], out)
        out.append("}")
    elif t is list:
        out.append("[")
        for x in v:
            dump(x, out)
        out.append("]")
    elif t is str:
        out.append("s" + hexlify(v.encode()).decode())
    elif t is float:
        out.append("f%d" % struct.unpack("<q", struct.pack("<d", v))[0])
    elif t is bool:
        out.append("T" if v else "F")
    elif v is None:
        out.append("N")
    else:
        out.append("i%d" % v)
"""

DEVICE = DUMP + r"""
import sys
from ota.strictjson import loads
f = open(sys.argv[1], "rb")
buf = bytearray(4096)
mv = memoryview(buf)
while True:
    h = f.read(2)
    if not h:
        break
    n = h[0] | h[1] << 8
    f.readinto(mv[:n])
    try:
        v = loads(mv, 0, n, 16)
    except ValueError:
        print("ERR")
        continue
    out = []
    dump(v, out)
    print("OK", " ".join(out))
"""

_ns: dict[str, object] = {}
exec(DUMP, _ns)  # noqa: S102 - the same dump code as the device's


def host_line(body: bytes) -> str:
    try:
        v = strictjson.loads(body, 16)
    except strictjson.StrictJSONError:
        return "ERR"
    out: list[str] = []
    _ns["dump"](v, out)  # type: ignore[operator]
    return "OK " + " ".join(out)


def same(a: str, b: str) -> bool:
    """Whether two result lines agree (floats to 1 ulp)."""
    ta, tb = a.split(" "), b.split(" ")
    if len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb):
        if x != y and not (x[:1] == y[:1] == "f" and abs(int(x[1:]) - int(y[1:])) <= 1):
            return False
    return True


BASE = {"product": "door-lock", "board": "esp32", "chip_id": 0, "channel": "stable",
        "version": "1.2.0 \u00e9\u20ac\U0001F512", "sequence": 12, "security_version": 3,
        "payload": {"path": "blobs/sha256/" + "ab" * 32, "size": 1048576,
                    "sha256": "cd" * 32, "encoding": "raw"},
        "created": 1767225600, "expires": 1798761600, "support_end": "2030-12-31",
        "notes": "Fixes \"lock\" \\ timing.\n\ttab", "disruption": {"reboot": True, "seconds": 30},
        "rollout": {"percent": 25, "salt": "r1", "state": "active"}, "x-future": [1, 2.5, None,
                                                                                  -0.0, 1e-7]}

# The classes that once split host and device, as byte snippets to insert or substitute.
SNIPPETS = [b",", b",,", b":", b"{1:2}", b"\x00", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80", b"\xf0\x9f", b"\\ud800", b"\\udfff", b"\\ud83d\\ude00",
            b"\\u00e9", b"\\u0000", b"\\x", b"\x1f", b"\x7f", b"\xef\xbb\xbf", b"NaN",
            b"Infinity", b"-", b"01", b"1.", b".5", b"1e", b"1e+", b"tru", b"nul", b"\v", b"\f",
            b"\xa0", b"\"", b"\\", b"[", b"]", b"{", b"}", b" ", b"\n", b"\r\n"]
WORDS = [b'"a"', b'"\\u0061"', b'"\xc3\xa9"', b'"\\u00e9"', b"0", b"-0", b"-1.5e+3", b"1E400",
         b"123456789012345678901234567890", b"true", b"false", b"null", b"[]", b"{}", b'""']


def _ws(r: random.Random) -> str:
    return r.choice(["", "", "", " ", "\n", "\t", "\r\n  "])


def _string(r: random.Random) -> str:
    parts = []
    for _ in range(r.randint(0, 6)):
        k = r.randint(0, 9)
        if k < 4:
            parts.append(r.choice("abcxyz-_/ 09"))
        elif k == 4:
            parts.append(r.choice(["\\n", "\\t", '\\"', "\\\\", "\\/", "\\b", "\\f", "\\r"]))
        elif k == 5:
            parts.append("\\u%04x" % r.choice([0, 0x1F, 0x41, 0xE9, 0x20AC, 0xFFFF,
                                                r.randint(0, 0xFFFF)]))
        elif k == 6:
            parts.append(r.choice(["\u00e9", "\u20ac", "\U0001F512", "\u0800", "\U0010FFFF"]))
        elif k == 7:
            parts.append("\\u%04x" % r.randint(0xD800, 0xDFFF))
        elif k == 8:
            parts.append(r.choice(["\x01", "\x1f", "\x7f"]))
        else:
            parts.append("\\u%04X" % r.choice([0x61, 0x62, 0xE9]))
    return '"' + "".join(parts) + '"'


def _number(r: random.Random) -> str:
    k = r.randint(0, 5)
    if k == 0:
        return str(r.randint(-10, 10))
    if k == 1:
        return str(r.randint(-(2 ** 70), 2 ** 70))
    if k == 2:
        return repr(r.uniform(-1e6, 1e6))
    if k == 3:
        return "%s%d.%d%s" % (r.choice(["", "-"]), r.randint(0, 999), r.randint(0, 10 ** 20),
                              r.choice(["", "e5", "E-300", "e+2", "e400"]))
    if k == 4:
        return r.choice(["0", "-0", "0.0", "-0.0e0", "1e0", "1E+0", "5e-324", "1.7976931348623157e308"])
    return r.choice(["01", "1.", ".5", "+1", "1e", "-", "0x1", "1_0", "NaN", "-Infinity"])


def _value(r: random.Random, depth: int) -> str:
    k = r.randint(0, 9 if depth < 19 else 4)
    if k < 2:
        return _string(r)
    if k < 4:
        return _number(r)
    if k == 4:
        return r.choice(["true", "false", "null", "True", "nul"])
    if k < 7:
        items = [_ws(r) + _value(r, depth + 1) + _ws(r) for _ in range(r.randint(0, 4))]
        return "[" + ",".join(items) + "]"
    keys = [r.choice(['"a"', '"b"', '"\\u0061"', '"\u00e9"', '"\\u00e9"', '"c\\n"'])
            if r.random() < 0.3 else _string(r) for _ in range(r.randint(0, 4))]
    pairs = [_ws(r) + key + _ws(r) + ":" + _ws(r) + _value(r, depth + 1) + _ws(r) for key in keys]
    return "{" + ",".join(pairs) + "}"


def _mutate(r: random.Random, b: bytearray) -> None:
    for _ in range(r.randint(1, 3)):
        k = r.randint(0, 6)
        p = r.randint(0, len(b))
        if k == 0 and b:
            del b[min(p, len(b) - 1)]
        elif k == 1:
            b[p:p] = r.choice(SNIPPETS)
        elif k == 2 and p < len(b):
            s = r.choice(SNIPPETS + WORDS)
            b[p:p + len(s)] = s
        elif k == 3:
            del b[p:]
        elif k == 4:
            b += r.choice([b"\x00", b" ", b"\n", b",", b"}", b"x"])
        elif k == 5:  # replace a comma, colon or quote: missing separators
            i = b.find(r.choice([b",", b":", b'"']), p)
            if i >= 0:
                del b[i]
        elif p < len(b):
            b[p] = r.randint(0, 255)


def _manifest(r: random.Random) -> bytes:
    d = dict(BASE)
    if r.random() < 0.3:
        d["sequence"] = r.randint(0, 2 ** 40)
    raw = json.dumps(d, ensure_ascii=r.random() < 0.5, indent=r.choice([None, None, 1, 2]),
                     separators=r.choice([None, (",", ":")]) if r.random() < 0.5 else None)
    return raw.encode()


def bodies(n: int, seed: int) -> list[bytes]:
    """``n`` bodies (≤ 4096 bytes each), the same for the same seed."""
    r = random.Random(seed)
    out: list[bytes] = [
        b'{"a":1 "b":2}', b'{"a":1,,"b":2}', b'{"a":1,}', b"[1,2,]", b"[,1]", b"{1:2}",
        b'{"a":1}\x00', b'"\xc0\xaf"', b'"\xe0\x80\xaf"', b'"\\ud800"', b'"\\udc00x"',
        b'"\\ud83d\\ude00"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"', b'"\xf0\x9f\x98"',
        b'{"a":' * 17 + b"1" + b"}" * 17, b'{"a":' * 16 + b"1" + b"}" * 16,
        b'{"a":1,"a":2}', b'{"a":1,"\\u0061":2}', b'{"a":{"a":1}}', b"\xef\xbb\xbf{}",
        b"[NaN]", b"[-Infinity]", b"[1.0, -0, 1e5, 1E-5]", b"", b" ", b"{} ", b"\t[]\r\n",
    ]
    while len(out) < n:
        k = r.random()
        if k < 0.4:
            body = bytearray(_manifest(r))
            _mutate(r, body)
        elif k < 0.5:
            body = bytearray(_manifest(r))
        elif k < 0.8:
            body = bytearray(_value(r, 0).encode("utf-8", "surrogatepass"))
        else:
            body = bytearray(_value(r, 0).encode("utf-8", "surrogatepass"))
            _mutate(r, body)
        out.append(bytes(body[:4096]))
    return out[:n]


def run(n: int, seed: int) -> tuple[list[str], list[str], list[bytes]]:
    """Host and device result lines for ``n`` generated bodies, and the bodies."""
    return run_cases(bodies(n, seed))


def run_cases(cases: list[bytes]) -> tuple[list[str], list[str], list[bytes]]:
    """Host and device result lines for ``cases``, and the cases."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bodies.bin"
        data.write_bytes(b"".join(struct.pack("<H", len(c)) + c for c in cases))
        script = Path(tmp) / "diff.py"
        script.write_text(DEVICE)
        p = run_micropython([str(script), str(data)], path=[FIRMWARE_DIR], timeout=300)
    if p.returncode:
        raise RuntimeError(p.stdout.decode(errors="replace")[-2000:]
                           + p.stderr.decode(errors="replace")[-2000:])
    device = p.stdout.decode().splitlines()
    return [host_line(c) for c in cases], device, cases


def main() -> None:
    ap = argparse.ArgumentParser(description="Host/device strict JSON differential.")
    ap.add_argument("--bodies", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=15)
    a = ap.parse_args()
    host, device, cases = run(a.bodies, a.seed)
    bad = [i for i, (h, d) in enumerate(zip(host, device)) if not same(h, d)]
    for i in bad[:20]:
        print(repr(cases[i]), "\n  host:  ", host[i][:200], "\n  device:", device[i][:200])
    ok = sum(h.startswith("OK") for h in host)
    print(f"{len(cases)} bodies ({ok} accepted), {len(bad) + abs(len(host) - len(device))} "
          "disagreements")


if __name__ == "__main__":
    main()
