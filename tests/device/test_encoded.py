"""ota.encoded and ota.delta on the real MicroPython unix port, against payloads the host makes.

One MicroPython process decodes a whole batch: each case is a payload file served by a fake HTTP
response (odd read sizes), a base image behind a fake running partition, and a fake slot; the
script prints the decoded image's SHA-256 or the reason code of the refusal. A resumed case
(``k``) starts with the image's first ``k`` chunks in the slot and the body from chunk ``k``'s
encoded offset, as ota.encoded.download resumes.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from otakit.appimage import make_app_image
from otakit.mpy import compile_to_mpy, run_micropython
from otakit.paths import FIRMWARE_DIR
from otakit.payloads import (Encoded, deflate, deflate_chunked, delta_chunked, encode_delta,
                             make_ops, make_patch)

SCRIPT = r"""
import asyncio, hashlib, json, sys, time
from binascii import hexlify, unhexlify
from ota.download import Writer
from ota.encoded import install
from ota.errors import OTAError

def far():  # a download deadline (ota.download.deadline) these cases never reach
    return time.ticks_ms(), 1 << 28

class Resp:
    delay = 0  # ms each read waits (a slow link)
    def __init__(self, data, sizes):
        self.data, self.p, self.sizes, self.k = data, 0, sizes, 0
        self.length = len(data)
    async def readinto(self, mv):
        if self.delay:
            await asyncio.sleep_ms(self.delay)
        n = min(len(mv), len(self.data) - self.p)
        mv[:n] = self.data[self.p:self.p + n]
        self.p += n
        return n

class Part:
    RUNNING = 0
    data = b""
    def __init__(self, which):
        pass
    def info(self):
        return (0, 0, 0x10000, 0x180000, "ota_0", False)
    def readblocks(self, blk, buf, off=0):
        at = blk * 4096 + off
        chunk = self.data[at:at + len(buf)]
        buf[:len(chunk)] = chunk
        for i in range(len(chunk), len(buf)):
            buf[i] = 0xFF

class Esp32:
    Partition = Part

class Slot:
    def __init__(self):
        self.out = bytearray()
        self.part = self  # the Writer reads each block back through slot.part
        self.read_back = 0
    def write_block(self, n, buf):
        assert n * 4096 == len(self.out)
        self.out += buf
    def readblocks(self, n, buf):
        buf[:] = self.out[n * 4096:n * 4096 + 4096]

class M:
    pass

def decode(resp, rep, m, slot, dl, k=0, prefix=b""):
    # install() from chunk k, the slot already holding prefix (the image's first k chunks)
    w = Writer(slot, bytearray(4096), m.size, 0, lambda done, size: None, len(prefix))
    w.h.update(prefix)
    slot.out += prefix
    return install(resp, rep, m, w, Esp32, dl, k, sum(rep[8][:k]) if k else 0)

for case in json.loads(sys.stdin.read()):
    base = open(case["base"], "rb").read() if case["base"] else b""
    data = open(case["payload"], "rb").read()
    m = M()
    m.size, m.sha256 = case["size"], unhexlify(case["sha256"])
    rep = (case["encoding"], "x", case["rep_size"], unhexlify(case["rep_sha256"]), case["wbits"],
           case["base_size"], None, case.get("chunk"), case.get("lengths"), case.get("bases"),
           None)
    k = case.get("k", 0)
    prefix = open(case["prefix"], "rb").read() if k else b""
    data = data[sum(case["lengths"][:k]):] if k else data
    slot = Slot()
    Part.data = base
    Resp.delay = case.get("delay_ms", 0)
    dl = (time.ticks_ms(), case["deadline_ms"]) if "deadline_ms" in case else far()
    try:
        asyncio.run(decode(Resp(data, None), rep, m, slot, dl, k, prefix))
        print(case["name"], "OK", hashlib.sha256(slot.out[:m.size]).digest() == m.sha256)
    except OTAError as e:
        print(case["name"], e.reason, e.detail)
"""


def _edit(image: bytes, rng: random.Random, edits: int) -> bytes:
    """A near copy of ``image``: replaced, inserted and deleted runs past the header."""
    b = bytearray(image)
    for _ in range(edits):
        at = rng.randrange(0x100, len(b) - 64)
        n = rng.randrange(1, 300)
        kind = rng.choice("rid")
        if kind == "r":
            b[at:at + n] = rng.randbytes(min(n, len(b) - at))
        elif kind == "i":
            b[at:at] = rng.randbytes(n)
        else:
            del b[at:at + n]
    return bytes(b)


def _compressible(seed: int, size: int) -> bytes:
    """An app image whose body looks like code: a small alphabet of repeated words."""
    rng = random.Random(seed)
    head = make_app_image("1.0.0", size=4096)[:0x200]
    words = [rng.randbytes(4) for _ in range(64)]
    return head + b"".join(rng.choice(words) for _ in range((size - len(head)) // 4))


class Batch:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.cases: list[dict] = []

    def add(self, name: str, image: bytes, payload: bytes, encoding: str, wbits: int = 12,
            base: bytes | None = None, signed_payload: bytes | None = None,
            **extra: object) -> None:
        pf = self.tmp / f"{name}.payload"
        pf.write_bytes(payload)
        bf = None
        if base is not None:
            bf = self.tmp / f"{name}.base"
            bf.write_bytes(base)
        signed = payload if signed_payload is None else signed_payload
        self.cases.append({
            "name": name, "payload": str(pf), "base": str(bf) if bf else None,
            "size": len(image), "sha256": hashlib.sha256(image).hexdigest(),
            "encoding": encoding, "wbits": wbits, "rep_size": len(signed),
            "rep_sha256": hashlib.sha256(signed).hexdigest(),
            "base_size": len(base) if base is not None else None, **extra})

    def add_chunked(self, name: str, image: bytes, enc: Encoded, encoding: str,
                    base: bytes | None = None, resume: bool = True, **extra: object) -> None:
        """The chunked payload decoded from its start and (resume) from every later chunk."""
        meta = {"chunk": enc.chunk, "lengths": list(enc.lengths),
                "bases": list(enc.bases) if enc.bases is not None else None, **extra}
        self.add(name, image, enc.data, encoding, base=base, **meta)
        for k in range(1, len(enc.lengths) if resume else 1):
            prefix = self.tmp / f"{name}-{k}.prefix"
            prefix.write_bytes(image[:k * enc.chunk])
            self.add(f"{name}-from-{k}", image, enc.data, encoding, base=base, k=k,
                     prefix=str(prefix), **meta)

    def run(self, mpy: bool = False) -> dict[str, str]:
        path = [FIRMWARE_DIR]
        if mpy:  # as a board loads it: compiled, fastadd as native code
            compile_to_mpy(sorted((FIRMWARE_DIR / "ota").glob("*.py")), self.tmp / "ota")
            path = [self.tmp]
        script = self.tmp / "decode.py"
        script.write_text(SCRIPT)
        r = run_micropython([str(script)], path=path, input_data=json.dumps(self.cases).encode(),
                            timeout=300)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        out = {}
        for line in r.stdout.decode().splitlines():
            name, verdict = line.split(" ", 1)
            out[name] = verdict
        return out


@pytest.mark.parametrize("mpy", [False, True], ids=["source", "mpy-native"])
def test_device_decodes_host_made_payloads(tmp_path: Path, mpy: bool) -> None:
    rng = random.Random(10)
    batch = Batch(tmp_path)
    img = _compressible(1, 70_000)
    for wbits in (9, 12, 15):
        batch.add(f"deflate-{wbits}", img, deflate(img, wbits), "deflate", wbits)
    noisy = make_app_image("1.1.0", size=40_000)  # incompressible filler
    batch.add("deflate-incompressible", noisy, deflate(noisy), "deflate")
    tiny = noisy[:100]
    batch.add("deflate-tiny", tiny, deflate(tiny), "deflate")
    for i in range(12):
        old = _compressible(100 + i, rng.randrange(5_000, 60_000))
        new = _edit(old, rng, rng.randrange(0, 30))
        batch.add(f"delta-{i}", new, encode_delta(old, new), "delta", base=old)
    old = make_app_image("1.0.0", size=50_000, seed="s")
    new = make_app_image("1.1.0", size=50_000, seed="s")
    batch.add("delta-same-seed", new, encode_delta(old, new), "delta", base=old)
    batch.add("delta-identical", old, encode_delta(old, old, 15), "delta", 15, base=old)
    # resumable: from the start and from every chunk, deflate and delta segments
    batch.add_chunked("deflate-chunked", img, deflate_chunked(img, 12, 8192), "deflate")
    batch.add_chunked("deflate-chunked-noisy", noisy, deflate_chunked(noisy, 12, 4096), "deflate")
    for i in range(4):
        old = _compressible(300 + i, rng.randrange(30_000, 60_000))
        new = _edit(old, rng, rng.randrange(0, 30))
        batch.add_chunked(f"delta-chunked-{i}", new, delta_chunked(old, new, 12, 8192), "delta",
                          base=old)
    moved = old[:0x200] + old[30_000:] + old[0x200:30_000]  # segments read the base far away
    batch.add_chunked("delta-chunked-moved", moved, delta_chunked(old, moved, 12, 4096), "delta",
                      base=old)
    # a device of body revision 3 (no chunk fields) decodes the same blobs from their first byte
    batch.add("deflate-chunked-as-revision-3", img, deflate_chunked(img, 12, 8192).data, "deflate")
    batch.add("delta-chunked-as-revision-3", moved, delta_chunked(old, moved, 12, 4096).data,
              "delta", base=old)
    out = batch.run(mpy)
    assert out and all(v == "OK True" for v in out.values()), {
        k: v for k, v in out.items() if v != "OK True"}
    assert sum("-from-" in name for name in out) >= 30


def test_device_refuses_bad_payloads(tmp_path: Path) -> None:
    batch = Batch(tmp_path)
    img = _compressible(2, 30_000)
    z = deflate(img)
    flipped = bytearray(z)
    flipped[len(z) // 2] ^= 0x10
    batch.add("deflate-flipped", img, bytes(flipped), "deflate", signed_payload=z)
    batch.add("deflate-trailing", img, z + b"\0\0", "deflate")
    batch.add("deflate-other-image", _compressible(3, 30_000), z, "deflate")
    old = _compressible(4, 30_000)
    new = _edit(old, random.Random(1), 10)
    d = encode_delta(old, new)
    flipped = bytearray(d)
    flipped[len(d) // 3] ^= 0x01
    batch.add("delta-flipped", new, bytes(flipped), "delta", base=old, signed_payload=d)
    batch.add("delta-flipped-resigned", new, bytes(flipped), "delta", base=old)
    batch.add("delta-wrong-base", new, d, "delta", base=_edit(old, random.Random(2), 5)[:30_000])
    batch.add("delta-short-base", new, d, "delta", base=old[:-1])
    batch.add("delta-not-a-patch", new, deflate(b"XXXX" + new), "delta", base=old)
    patch = bytearray(make_patch(old, new))
    patch[13:14] = b"\xff\xff\x7f"  # the first op's add length now reads far past the image
    batch.add("delta-op-past-end", new, deflate(bytes(patch)), "delta", base=old)
    # resumable ones whose signed chunk list does not fit the blob
    c = delta_chunked(old, new, 12, 4096)
    wrong = Encoded(c.data, c.chunk, c.lengths, (0, c.bases[1] + 1) + c.bases[2:])  # type: ignore
    batch.add_chunked("delta-chunked-wrong-base-position", new, wrong, "delta", base=old,
                      resume=False)
    unsegmented = Encoded(d, 4096, (len(d) - 7 * 1, 1, 1, 1, 1, 1, 1, 1), c.bases)
    batch.add_chunked("delta-unsegmented", new, unsegmented, "delta", base=old, resume=False)
    zc = deflate_chunked(img, 12, 4096)
    shifted = Encoded(zc.data, 4096, (zc.lengths[0] + 3, zc.lengths[1] - 3) + zc.lengths[2:])
    batch.add("deflate-chunked-wrong-offset-from-1", img, zc.data, "deflate", chunk=4096,
              lengths=list(shifted.lengths), k=1, prefix=str(_prefix(tmp_path, img[:4096])))
    out = batch.run()
    assert all(v.startswith("HASH_MISMATCH") for v in out.values()), out
    assert "base position" in out["delta-chunked-wrong-base-position"], out
    assert "segment" in out["delta-unsegmented"], out
    assert "another size" in out["delta-short-base"]
    assert "outside the base" in out["delta-op-past-end"] or "past the image" in (
        out["delta-op-past-end"])


def _prefix(tmp: Path, data: bytes) -> Path:
    p = tmp / "prefix"
    p.write_bytes(data)
    return p


def test_encoded_download_stops_at_its_deadline(tmp_path: Path) -> None:
    # ota.download.deadline as the agent computes it, here 100 ms, against a link that waits
    # 20 ms per read (about 20 reads): DEADLINE, for deflate and delta alike
    batch = Batch(tmp_path)
    noisy = make_app_image("1.1.0", size=40_000)
    batch.add("deflate-slow", noisy, deflate(noisy), "deflate", delay_ms=20, deadline_ms=100)
    old = make_app_image("1.0.0", size=40_000)
    batch.add("delta-slow", noisy, encode_delta(old, noisy), "delta", base=old, delay_ms=20,
              deadline_ms=100)
    batch.add("deflate-in-time", noisy, deflate(noisy), "deflate", delay_ms=1,
              deadline_ms=60_000)
    out = batch.run()
    assert out["deflate-slow"].startswith("DEADLINE"), out
    assert out["delta-slow"].startswith("DEADLINE"), out
    assert out["deflate-in-time"] == "OK True"


# The decode's pacing, judged without a wall clock: ota.encoded and ota.delta see a clock that
# moves 1 ms per reading, the HTTP response never yields, and an app task counts the turns it
# gets while install() decodes.
PACED = r"""
import asyncio, sys
class Clock:
    now = 0
    def ticks_ms(self):
        Clock.now += 1
        return Clock.now
    def ticks_diff(self, a, b):
        return a - b
sys.modules["time"] = Clock()  # asyncio keeps the real clock: it was imported first
exec(open(sys.argv[1]).read().split("for case in")[0])  # the fakes of SCRIPT
import json
case = json.loads(sys.stdin.read())
base = open(case["base"], "rb").read()
data = open(case["payload"], "rb").read()
m = M()
m.size, m.sha256 = case["size"], unhexlify(case["sha256"])
rep = ("delta", "x", len(data), unhexlify(case["rep_sha256"]), 12, len(base), None, None, None,
       None, None)
Part.data = base
turns = [0]
async def app():
    while True:
        turns[0] += 1
        await asyncio.sleep_ms(0)
async def main():
    t = asyncio.create_task(app())
    await asyncio.sleep_ms(0)
    t0 = turns[0]
    try:
        await decode(Resp(data, None), rep, m, Slot(), far())
        out = "OK"
    except OTAError as e:
        out = e.reason + " " + e.detail
    print(json.dumps({"out": out, "turns": turns[0] - t0, "ms": Clock.now}))
asyncio.run(main())
"""


def _paced(tmp: Path, base: bytes, image: bytes, payload: bytes) -> dict:
    (tmp / "script.py").write_text(SCRIPT)
    (tmp / "paced.py").write_text(PACED)
    (tmp / "base").write_bytes(base)
    (tmp / "payload").write_bytes(payload)
    case = {"base": str(tmp / "base"), "payload": str(tmp / "payload"), "size": len(image),
            "sha256": hashlib.sha256(image).hexdigest(),
            "rep_sha256": hashlib.sha256(payload).hexdigest()}
    r = run_micropython([str(tmp / "paced.py"), str(tmp / "script.py")], path=[FIRMWARE_DIR],
                        input_data=json.dumps(case).encode(), timeout=300)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_patch_without_output_progress_is_refused_and_the_decode_yields(tmp_path: Path) -> None:
    old = _compressible(5, 20_000)
    new = _edit(old, random.Random(3), 5)
    header = make_patch(old, new)[:13]
    # a thousand empty operations per byte of DEFLATE: a CPU bomb in place of a patch
    got = _paced(tmp_path, old, new, deflate(header + b"\0" * 300_000))
    assert got["out"].startswith("BAD_PATCH"), got
    assert int(got["out"].split()[1]) <= 65  # refused after a few dozen operations
    assert got["turns"] >= got["ms"] // 20, got  # a turn for the app every 10-20 clock ms


def test_patch_with_one_byte_per_operation_is_refused(tmp_path: Path) -> None:
    old = _compressible(6, 20_000)
    new = _edit(old, random.Random(4), 5)
    ops = b"".join(b"\x00\x01\x00" + new[k:k + 1] for k in range(len(new)))  # copy 1 byte
    got = _paced(tmp_path, old, new, deflate(make_patch(old, new)[:13] + ops))
    assert got["out"].startswith("BAD_PATCH"), got
    assert "image bytes" in got["out"], got


def test_host_patches_stay_inside_the_work_bound_and_the_decode_yields(tmp_path: Path) -> None:
    old = _compressible(7, 60_000)
    new = _edit(old, random.Random(5), 40)
    got = _paced(tmp_path, old, new, encode_delta(old, new))
    assert got["out"] == "OK", got
    assert got["turns"] >= got["ms"] // 20 > len(new) // 4096, got  # more often than per block


def test_host_encoder_never_exceeds_the_device_work_bound() -> None:
    rng = random.Random(11)
    for i in range(8):
        old = _compressible(200 + i, rng.randrange(5_000, 60_000))
        new = _edit(old, rng, rng.randrange(0, 40))
        out = idle = 0
        for n, op in enumerate(make_ops(old, new), 1):
            assert n <= 64 + out // 16  # ota.delta: _FREE_OPS + written / _BYTES_PER_OP
            idle = 0 if op.add or op.copy else idle + 1
            assert idle <= 1
            out += op.add + op.copy
