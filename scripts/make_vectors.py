#!/usr/bin/env python3
"""Write the manifest test vectors in tests/vectors/ (run with `make vectors`).

Writes:
  tests/vectors/keys/test-only-*.pem   TEST-ONLY signing keys, unencrypted, published on purpose;
                                       never trust them on a real device
  tests/vectors/vector_keys.py         the keyring (docs/format.md §3) trusting two of them
  tests/vectors/manifests/*.bin        valid and invalid manifests
  tests/vectors/index.json             file -> expected result: "OK" plus the parsed fields, or
                                       the reason code the parser must raise

The Ed25519 keys are derived from fixed seeds, so they and their signatures are reproducible.
RSA keys cannot be derived in `cryptography`: the RSA key is generated once and kept (rerunning
keeps it), but RSA-PSS signatures are salted at random, so the RSA vector files change on every
run while staying valid.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding

from otakit.keys import ALG_IDS, SIG_LENGTHS, PrivateKey, export_keyring, generate_key, load_key
from otakit.keyring import body_digest as kr_digest
from otakit.manifest import DOMAIN, signed_digest

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "vectors"
L = 2**252 + 27742317777372353535851937790883648493  # the Ed25519 group order
PAYLOAD_SHA = hashlib.sha256(b"otakit test vector payload").hexdigest()
BASE: dict[str, Any] = {
    "product": "door-lock", "board": "esp32", "chip_id": 0, "channel": "stable",
    "version": "1.2.0", "sequence": 12, "security_version": 3,
    "payload": {"path": f"blobs/sha256/{PAYLOAD_SHA}", "size": 65872, "sha256": PAYLOAD_SHA,
                "encoding": "raw"},
    "created": 1767225600, "support_end": "2031-12-31", "revision": 5,
}
DEFLATED_SHA = hashlib.sha256(b"otakit test vector payload, deflated").hexdigest()
DELTA_SHA = hashlib.sha256(b"otakit test vector payload, delta").hexdigest()
BASE_SHA = hashlib.sha256(b"otakit test vector base image").hexdigest()
DEFLATE_REP = {"encoding": "deflate", "path": f"blobs/sha256/{DEFLATED_SHA}", "size": 45120,
               "sha256": DEFLATED_SHA, "wbits": 12}
DELTA_REP = {"encoding": "delta", "path": f"blobs/sha256/{DELTA_SHA}", "size": 812,
             "sha256": DELTA_SHA, "wbits": 12, "base_size": 65536, "base_sha256": BASE_SHA}
FUTURE_REP = {"encoding": "zstd-x", "path": "x", "size": "anything", "level": 19}
REPS = {**BASE, "payloads": [DEFLATE_REP, DELTA_REP]}
# resumable (body revision 4): image size 65872 = 2 chunks of 65536, or 3 of 32768
DEFLATE_CHUNKED = {**DEFLATE_REP, "chunk": 65536, "chunks": [45000, 120]}
DELTA_CHUNKED = {**DELTA_REP, "chunk": 32768, "chunks": [400, 300, 112],
                 "chunk_bases": [0, -12, -200]}
FULL = {**BASE, "min_keyring": 2, "expires": 1798761600, "notes": "Türschloss: faster unlock ✓\nsecond line",
        "security": {"severity": "high", "risk": "CVE-2026-0001: BLE pairing bypass"},
        "disruption": {"reboot": True, "seconds": 45}}


SBOM_SHA = hashlib.sha256(b"otakit test vector sbom").hexdigest()
ROLLOUT = {"percent": 25, "salt": "r12-7f3a", "state": "active"}
SBOM = {"path": f"blobs/sha256/{SBOM_SHA}", "size": 2048, "sha256": SBOM_SHA}


def ed25519_key(label: str) -> PrivateKey:
    seed = hashlib.sha256(b"otakit TEST-ONLY vector key: " + label.encode()).digest()
    return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(seed))


def rsa_key(path: Path) -> PrivateKey:
    if path.exists():
        return load_key(path)  # type: ignore[return-value]
    key = generate_key("rsa3072-pss-sha256")
    path.write_bytes(key.private_pem(None))
    return key


def header(alg: str, key_id: bytes, n: int, s: int, magic: bytes = b"OTAM", version: int = 1,
           alg_id: int | None = None) -> bytes:
    return struct.pack("<4sBB8sHH", magic, version, ALG_IDS[alg] if alg_id is None else alg_id,
                       key_id, n, s)


def body_bytes(body: dict[str, Any] | bytes) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signed(key: PrivateKey, body: dict[str, Any] | bytes, **hdr: Any) -> bytes:
    raw = body_bytes(body)
    h = header(key.alg, hdr.pop("key_id", key.key_id), hdr.pop("n", len(raw)),
               hdr.pop("s", SIG_LENGTHS[key.alg]), **hdr)
    return h + raw + key.sign(signed_digest(h + raw))


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of base with the dotted field set (value DELETE removes it)."""
    d = json.loads(json.dumps(base))
    *parents, last = path.split(".")
    target = d
    for p in parents:
        target = target[p]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return d


DELETE = object()


def flip(data: bytes, index: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[index] ^= 1 << bit
    return bytes(b)


def expected_fields(data: bytes, key: PrivateKey) -> dict[str, Any]:
    n = struct.unpack_from("<H", data, 14)[0]
    b = json.loads(data[18:18 + n])
    p = b["payload"]
    out = {"alg": key.alg, "key_id": key.key_id.hex(), "path": p["path"], "size": p["size"],
           "sha256": p["sha256"], "encoding": p["encoding"]}
    for k in ("product", "board", "chip_id", "channel", "version", "sequence",
              "security_version", "created", "support_end", "revision"):
        out[k] = b[k]
    out["min_keyring"] = b.get("min_keyring", 0)  # absent = 0 (docs/format.md §2)
    for k in ("expires", "notes", "security", "disruption", "rollout", "sbom"):
        out[k] = b.get(k)
    out["payloads"] = [_rep_fields(r) for r in b.get("payloads", [])
                       if r["encoding"] in ("deflate", "delta")]
    return out


def _rep_fields(r: dict[str, Any]) -> dict[str, Any]:
    """A known representation as parsed: chunk lists only with ``chunk``, bases only for delta."""
    out = {"base_size": None, "base_sha256": None, **r}
    if "chunk" not in r or r["encoding"] != "delta":
        out.pop("chunk_bases", None)
    if "chunk" not in r:
        out.pop("chunks", None)
    return out


def valid_vectors(ed: PrivateKey, rsa: PrivateKey) -> dict[str, bytes]:
    v = {
        "ok-ed25519-minimal": signed(ed, BASE),
        "ok-ed25519-full": signed(ed, FULL),
        "ok-rsa-minimal": signed(rsa, BASE),
        "ok-rsa-full": signed(rsa, FULL),
        "ok-unknown-field-ignored": signed(ed, {**BASE, "x-future": {"a": [1, 2.5, None]}}),
        "ok-pretty-printed-body": signed(ed, json.dumps(BASE, indent=2).encode()),
        "ok-limits": signed(ed, {**with_(BASE, "payload.size", 2**31 - 1),
                                 "sequence": 2**31 - 1, "security_version": 2**31 - 1,
                                 "revision": 2**31 - 1, "min_keyring": 2**31 - 1,
                                 "chip_id": 65535, "created": 0, "expires": 2**32 - 1,
                                 "notes": "n" * 1024, "version": "é" * 32,
                                 "security": {"severity": "critical", "risk": "r" * 512},
                                 "disruption": {"reboot": False, "seconds": 86400}}),
        "ok-rollout-and-sbom": signed(ed, {**BASE, "rollout": ROLLOUT, "sbom": SBOM}),
        "ok-rollout-limits": signed(ed, {**BASE, "rollout": {"percent": 100, "salt": "s" * 32,
                                                             "state": "aborted"}}),
        "ok-rollout-paused-0": signed(ed, {**BASE, "rollout": {"percent": 0, "salt": "a",
                                                               "state": "paused"}}),
        "ok-encoding-deflate-parses": signed(ed, with_(BASE, "payload.encoding", "deflate")),
        "ok-payloads-deflate-delta": signed(ed, REPS),
        "ok-payloads-rsa-four": signed(rsa, {**FULL, "payloads": [DEFLATE_REP, DELTA_REP,
                                                                  FUTURE_REP, DELTA_REP]}),
        "ok-payloads-unknown-encoding-skipped": signed(ed, {**BASE, "payloads": [FUTURE_REP]}),
        "ok-payloads-chunked": signed(ed, {**BASE, "payloads": [DEFLATE_CHUNKED, DELTA_CHUNKED]}),
        "ok-payloads-chunk-lists-without-chunk-ignored": signed(ed, {**BASE, "payloads": [
            {**DEFLATE_REP, "chunks": "anything"}, {**DELTA_REP, "chunk_bases": None}]}),
        "ok-payloads-rollout-sbom": signed(ed, {**REPS, "rollout": ROLLOUT, "sbom": SBOM}),
        "ok-revision-1-min-keyring-0": signed(ed, {**BASE, "revision": 1, "min_keyring": 0}),
    }
    filler = 4096 - len(signed(ed, {**BASE, "pad": ""}))
    v["ok-exactly-4096-bytes"] = signed(ed, {**BASE, "pad": "p" * filler})
    return v


def envelope_vectors(ed: PrivateKey, rsa: PrivateKey, stranger: PrivateKey) -> dict[str, bytes]:
    good = signed(ed, BASE)
    n = len(body_bytes(BASE))
    big = signed(ed, {**BASE, "pad": "p" * (4097 - len(signed(ed, {**BASE, "pad": ""})))})
    sig = good[-64:]
    s_int = int.from_bytes(sig[32:], "little")
    noncanon = good[:-32] + (s_int + L).to_bytes(32, "little")
    no_domain = good[:-64] + ed.sign(hashlib.sha256(good[:-64]).digest())
    undigested = good[:-64] + ed._private.sign(good[:-64])  # noqa: SLF001 - raw bytes, no D
    rsa_good = signed(rsa, BASE)
    return {
        "too-large-4097-bytes": (big, "TOO_LARGE"),
        "empty": (b"", "BAD_FORMAT"),
        "truncated-header": (good[:17], "BAD_FORMAT"),
        "truncated-last-byte": (good[:-1], "BAD_FORMAT"),
        "trailing-byte": (good + b"\0", "BAD_FORMAT"),
        "bad-magic": (signed(ed, BASE, magic=b"OTAN"), "BAD_FORMAT"),
        "version-0": (signed(ed, BASE, version=0), "UNSUPPORTED_VERSION"),
        "version-2": (signed(ed, BASE, version=2), "UNSUPPORTED_VERSION"),
        "alg-0": (signed(ed, BASE, alg_id=0), "UNKNOWN_ALGORITHM"),
        "alg-9": (signed(ed, BASE, alg_id=9), "UNKNOWN_ALGORITHM"),
        "body-length-0": (header("ed25519", ed.key_id, 0, 64) + sig, "BAD_FORMAT"),
        "body-length-too-long": (signed(ed, BASE, n=n + 1), "BAD_FORMAT"),
        "sig-length-63": (signed(ed, BASE, s=63)[:-1], "BAD_FORMAT"),
        "ed25519-sig-length-384": (signed(ed, BASE, s=384) + b"\0" * 320, "BAD_FORMAT"),
        "unknown-key": (signed(stranger, BASE), "UNKNOWN_KEY"),
        "key-of-other-alg": (header("rsa3072-pss-sha256", ed.key_id, n, 384)
                             + body_bytes(BASE) + b"\1" * 384, "UNKNOWN_KEY"),
        "flipped-key-id-bit": (flip(good, 6), "UNKNOWN_KEY"),
        "ed25519-flipped-body-bit": (flip(good, 18 + n // 2), "BAD_SIGNATURE"),
        "ed25519-flipped-sig-bit": (flip(good, len(good) - 40), "BAD_SIGNATURE"),
        "ed25519-zero-signature": (good[:-64] + b"\0" * 64, "BAD_SIGNATURE"),
        "ed25519-non-canonical-s": (noncanon, "BAD_SIGNATURE"),
        "ed25519-signed-without-domain": (no_domain, "BAD_SIGNATURE"),
        "ed25519-signed-bytes-not-digest": (undigested, "BAD_SIGNATURE"),
        "rsa-flipped-body-bit": (flip(rsa_good, 18 + n // 2), "BAD_SIGNATURE"),
        "rsa-flipped-sig-bit": (flip(rsa_good, len(rsa_good) - 100, 3), "BAD_SIGNATURE"),
        "rsa-signature-is-modulus": (rsa_good[:-384] + rsa.raw, "BAD_SIGNATURE"),
        "rsa-salt-length-20": (rsa_other_salt(rsa, rsa_good[:-384], 20), "BAD_SIGNATURE"),
    }


def rsa_other_salt(rsa: PrivateKey, signed_part: bytes, salt: int) -> bytes:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
    return signed_part + rsa._private.sign(signed_digest(signed_part), pss,  # noqa: SLF001
                                           hashes.SHA256())


def body_vectors() -> dict[str, dict[str, Any] | bytes]:
    base_text = body_bytes(BASE)
    v: dict[str, dict[str, Any] | bytes] = {
        "not-json": b"{not json", "json-array": b"[1,2]", "json-string": b'"door-lock"',
        "invalid-utf8": base_text.replace(b'"1.2.0"', b'"1.2.\xff"'),
        "utf8-bom": b"\xef\xbb\xbf" + base_text,
        "nan-value": base_text[:-1] + b',"x":NaN}',
        "trailing-garbage": base_text + b"x",
        "deep-nesting": base_text[:-1] + b',"x":' + b"[" * 17 + b"]" * 17 + b"}",
    }
    for f in ("product", "board", "chip_id", "channel", "version", "sequence",
              "security_version", "payload", "created", "support_end", "revision",
              "payload.path",
              "payload.size", "payload.sha256", "payload.encoding"):
        v[f"missing-{f}"] = with_(BASE, f, DELETE)
    bad: list[tuple[str, str, Any]] = [
        ("sequence-as-string", "sequence", "12"), ("sequence-as-float", "sequence", 12.0),
        ("chip-id-as-float", "chip_id", 0.0), ("product-as-int", "product", 5),
        ("payload-as-list", "payload", []), ("notes-as-int", "notes", 5),
        ("expires-as-string", "expires", "2030"), ("security-as-string", "security", "high"),
        ("disruption-as-bool", "disruption", True),
        ("sequence-bool", "sequence", True), ("chip-id-bool", "chip_id", False),
        ("security-version-bool", "security_version", True), ("created-bool", "created", True),
        ("expires-bool", "expires", True), ("size-bool", "payload.size", True),
        ("sequence-0", "sequence", 0), ("sequence-2-31", "sequence", 2**31),
        ("security-version-negative", "security_version", -1),
        ("chip-id-65536", "chip_id", 65536), ("created-negative", "created", -1),
        ("expires-2-32", "expires", 2**32), ("size-0", "payload.size", 0),
        ("size-2-31", "payload.size", 2**31),
        ("expires-null", "expires", None), ("notes-null", "notes", None),
        ("security-null", "security", None),
        ("product-empty", "product", ""), ("product-uppercase", "product", "Door"),
        ("product-space", "product", "door lock"), ("product-33-chars", "product", "p" * 33),
        ("channel-slash", "channel", "st/able"), ("board-dotdot-slash", "board", "../x"),
        ("product-non-ascii", "product", "türschloss"),
        ("version-empty", "version", ""), ("version-33-chars", "version", "1" * 33),
        ("version-newline", "version", "1.0\n"), ("notes-1025-chars", "notes", "n" * 1025),
        ("support-end-month-13", "support_end", "2031-13-01"),
        ("support-end-short-month", "support_end", "2031-1-01"),
        ("support-end-day-0", "support_end", "2031-12-00"),
        ("support-end-reversed", "support_end", "31-12-2031"),
        ("support-end-int", "support_end", 20311231),
        ("severity-unknown", "security", {"severity": "urgent", "risk": "x"}),
        ("security-missing-risk", "security", {"severity": "high"}),
        ("risk-513-chars", "security", {"severity": "low", "risk": "r" * 513}),
        ("disruption-reboot-int", "disruption", {"reboot": 1, "seconds": 5}),
        ("disruption-missing-seconds", "disruption", {"reboot": True}),
        ("disruption-seconds-bool", "disruption", {"reboot": True, "seconds": True}),
        ("disruption-seconds-86401", "disruption", {"reboot": True, "seconds": 86401}),
        ("path-traversal", "payload.path", "../../etc/passwd"),
        ("path-inner-dotdot", "payload.path", "blobs/../../x"),
        ("path-absolute", "payload.path", "/blobs/sha256/" + PAYLOAD_SHA),
        ("path-empty-segment", "payload.path", "blobs//x"),
        ("path-dot-segment", "payload.path", "blobs/./x"),
        ("path-space", "payload.path", "blobs/sha256/a b"),
        ("path-backslash", "payload.path", "blobs\\x"),
        ("path-url", "payload.path", "http://evil/x"),
        ("path-empty", "payload.path", ""), ("path-256-chars", "payload.path", "p" * 256),
        ("path-non-ascii", "payload.path", "blobs/é"),
        ("sha256-uppercase", "payload.sha256", PAYLOAD_SHA.upper()),
        ("sha256-63", "payload.sha256", PAYLOAD_SHA[:63]),
        ("sha256-65", "payload.sha256", PAYLOAD_SHA + "0"),
        ("sha256-non-hex", "payload.sha256", "g" * 64),
        ("encoding-uppercase", "payload.encoding", "RAW"),
        ("revision-0", "revision", 0), ("revision-2-31", "revision", 2**31),
        ("revision-negative", "revision", -1), ("revision-as-string", "revision", "5"),
        ("revision-as-float", "revision", 5.0), ("revision-bool", "revision", True),
        ("revision-null", "revision", None),
        ("min-keyring-negative", "min_keyring", -1), ("min-keyring-2-31", "min_keyring", 2**31),
        ("min-keyring-as-string", "min_keyring", "1"), ("min-keyring-bool", "min_keyring", True),
        ("min-keyring-as-float", "min_keyring", 1.0), ("min-keyring-null", "min_keyring", None),
        ("encoding-empty", "payload.encoding", ""),
    ]
    bad += [
        ("rollout-null", "rollout", None), ("rollout-as-int", "rollout", 25),
        ("rollout-percent-101", "rollout", {**ROLLOUT, "percent": 101}),
        ("rollout-percent-negative", "rollout", {**ROLLOUT, "percent": -1}),
        ("rollout-percent-float", "rollout", {**ROLLOUT, "percent": 25.0}),
        ("rollout-percent-bool", "rollout", {**ROLLOUT, "percent": True}),
        ("rollout-missing-salt", "rollout", {"percent": 5, "state": "active"}),
        ("rollout-missing-state", "rollout", {"percent": 5, "salt": "x"}),
        ("rollout-state-unknown", "rollout", {**ROLLOUT, "state": "running"}),
        ("rollout-salt-uppercase", "rollout", {**ROLLOUT, "salt": "ABC"}),
        ("rollout-salt-empty", "rollout", {**ROLLOUT, "salt": ""}),
        ("sbom-null", "sbom", None), ("sbom-path-traversal", "sbom", {**SBOM, "path": "../x"}),
        ("sbom-missing-sha256", "sbom", {"path": SBOM["path"], "size": 1}),
        ("sbom-size-0", "sbom", {**SBOM, "size": 0}),
        ("sbom-sha256-short", "sbom", {**SBOM, "sha256": SBOM_SHA[:10]}),
    ]
    for name, field, value in bad:
        v[name] = with_(BASE, field, value)
    return v


def representation_vectors() -> dict[str, dict[str, Any]]:
    """Bodies whose ``payloads`` list (docs/format.md §2.2) is wrong: all BAD_BODY."""
    v: dict[str, dict[str, Any]] = {
        "payloads-null": {**BASE, "payloads": None},
        "payloads-empty": {**BASE, "payloads": []},
        "payloads-object": {**BASE, "payloads": DEFLATE_REP},
        "payloads-five": {**BASE, "payloads": [DEFLATE_REP] * 5},
        "payloads-entry-string": {**BASE, "payloads": ["deflate"]},
        "payloads-entry-null": {**BASE, "payloads": [None]},
    }
    bad: list[tuple[str, dict[str, Any], str, Any]] = [
        ("missing-encoding", DEFLATE_REP, "encoding", DELETE),
        ("encoding-uppercase", DEFLATE_REP, "encoding", "DEFLATE"),
        ("missing-path", DEFLATE_REP, "path", DELETE),
        ("path-traversal", DEFLATE_REP, "path", "../x"),
        ("missing-size", DEFLATE_REP, "size", DELETE), ("size-0", DEFLATE_REP, "size", 0),
        ("size-bool", DEFLATE_REP, "size", True), ("size-2-31", DEFLATE_REP, "size", 2**31),
        ("sha256-uppercase", DEFLATE_REP, "sha256", DEFLATED_SHA.upper()),
        ("missing-sha256", DEFLATE_REP, "sha256", DELETE),
        ("missing-wbits", DEFLATE_REP, "wbits", DELETE), ("wbits-8", DEFLATE_REP, "wbits", 8),
        ("wbits-16", DEFLATE_REP, "wbits", 16), ("wbits-float", DEFLATE_REP, "wbits", 12.0),
        ("delta-missing-base-size", DELTA_REP, "base_size", DELETE),
        ("delta-base-size-0", DELTA_REP, "base_size", 0),
        ("delta-missing-base-sha256", DELTA_REP, "base_sha256", DELETE),
        ("delta-base-sha256-63", DELTA_REP, "base_sha256", BASE_SHA[:63]),
        ("delta-base-sha256-null", DELTA_REP, "base_sha256", None),
        # resumable entries (body revision 4)
        ("chunk-4095", DEFLATE_CHUNKED, "chunk", 4095),
        ("chunk-6144", DEFLATE_CHUNKED, "chunk", 6144),  # not a multiple of 4096
        ("chunk-2-24-plus-4096", DEFLATE_CHUNKED, "chunk", 2**24 + 4096),
        ("chunk-bool", DEFLATE_CHUNKED, "chunk", True),
        ("chunk-float", DEFLATE_CHUNKED, "chunk", 65536.0),
        ("chunks-missing", DEFLATE_CHUNKED, "chunks", DELETE),
        ("chunks-null", DEFLATE_CHUNKED, "chunks", None),
        ("chunks-one-too-few", DEFLATE_CHUNKED, "chunks", [45120]),
        ("chunks-one-too-many", DEFLATE_CHUNKED, "chunks", [45000, 119, 1]),
        ("chunks-sum-off", DEFLATE_CHUNKED, "chunks", [45000, 121]),
        ("chunks-entry-0", DEFLATE_CHUNKED, "chunks", [45120, 0]),
        ("chunks-entry-negative", DEFLATE_CHUNKED, "chunks", [45240, -120]),
        ("chunks-entry-bool", DEFLATE_CHUNKED, "chunks", [45119, True]),
        ("chunks-entry-float", DEFLATE_CHUNKED, "chunks", [45000.0, 120]),
        ("delta-chunk-bases-missing", DELTA_CHUNKED, "chunk_bases", DELETE),
        ("delta-chunk-bases-wrong-count", DELTA_CHUNKED, "chunk_bases", [0, -12]),
        ("delta-chunk-bases-first-not-0", DELTA_CHUNKED, "chunk_bases", [1, -12, -200]),
        ("delta-chunk-bases-before-the-base", DELTA_CHUNKED, "chunk_bases", [0, -32769, -200]),
        ("delta-chunk-bases-past-the-base", DELTA_CHUNKED, "chunk_bases", [0, -12, 1]),
        ("delta-chunk-bases-entry-bool", DELTA_CHUNKED, "chunk_bases", [0, False, -200]),
    ]
    for name, rep, field, value in bad:
        v[f"payloads-{name}"] = {**BASE, "payloads": [with_(rep, field, value)]}
    return v


KR_BASE: dict[str, Any] = {"product": "door-lock", "env": "production", "version": 7,
                           "created": 1767225600, "expires": 1798761600}


def keyring_doc(body: dict[str, Any] | bytes, signers: list[PrivateKey],
                extra: list[tuple[int, bytes, bytes]] = (),  # type: ignore[assignment]
                **hdr: Any) -> bytes:
    """A keyring document (docs/format.md §7.1); extra: raw (alg id, key id, sig) records."""
    raw = body_bytes(body)
    d = kr_digest(raw)
    recs = [(ALG_IDS[k.alg], k.key_id, k.sign(d)) for k in signers] + list(extra)
    out = struct.pack("<4sBBH", hdr.get("magic", b"OTAK"), hdr.get("version", 1),
                      hdr.get("count", len(recs)), hdr.get("n", len(raw))) + raw
    for alg_id, kid, sig in recs:
        out += struct.pack("<B8sH", alg_id, kid, len(sig)) + sig
    return out


def keyring_vectors(ed: PrivateKey, rsa: PrivateKey, stranger: PrivateKey
                    ) -> list[tuple[str, bytes, int, str]]:
    """(name, document, threshold, expected) with roots = {ed, rsa}."""
    keys = [{"alg": "ed25519", "public": stranger.raw.hex()}, {"alg": rsa.alg,
                                                                "public": rsa.raw.hex()}]
    base = {**KR_BASE, "keys": keys}
    good = keyring_doc(base, [ed])
    n = len(body_bytes(base))
    v = [
        ("ok-ed25519-root", good, 1, "OK"),
        ("ok-rsa-root", keyring_doc(base, [rsa]), 1, "OK"),
        ("ok-two-roots-threshold-2", keyring_doc(base, [rsa, ed]), 2, "OK"),
        ("ok-unknown-signer-skipped", keyring_doc(base, [stranger, ed]), 1, "OK"),
        ("ok-unknown-algorithm-record-skipped", keyring_doc(base, [ed], [(9, b"x" * 8, b"s")]),
         1, "OK"),
        ("too-large", keyring_doc({**base, "pad": "p" * 4000}, [ed]), 1, "TOO_LARGE"),
        ("empty", b"", 1, "BAD_FORMAT"),
        ("bad-magic", keyring_doc(base, [ed], magic=b"OTAM"), 1, "BAD_FORMAT"),
        ("version-2", keyring_doc(base, [ed], version=2), 1, "UNSUPPORTED_VERSION"),
        ("count-0", keyring_doc(base, [ed], count=0), 1, "BAD_FORMAT"),
        ("count-too-high", keyring_doc(base, [ed], count=2), 1, "BAD_FORMAT"),
        ("truncated", good[:-1], 1, "BAD_FORMAT"),
        ("trailing-byte", good + b"\0", 1, "BAD_FORMAT"),
        ("body-length-too-long", keyring_doc(base, [ed], n=n + 1), 1, "BAD_FORMAT"),
        ("unknown-root", keyring_doc(base, [stranger]), 1, "UNKNOWN_KEY"),
        ("flipped-body-bit", flip(good, 8 + n // 2), 1, "BAD_SIGNATURE"),
        ("flipped-sig-bit", flip(good, len(good) - 10), 1, "BAD_SIGNATURE"),
        ("one-of-threshold-2", good, 2, "BAD_SIGNATURE"),
        ("same-root-twice-threshold-2", keyring_doc(base, [ed, ed]), 2, "BAD_SIGNATURE"),
        ("wrong-product", keyring_doc({**base, "product": "other"}, [ed]), 1, "WRONG_PRODUCT"),
        ("development-env", keyring_doc({**base, "env": "development"}, [ed]), 1, "WRONG_ENV"),
    ]
    bad_bodies: list[tuple[str, Any]] = [
        ("not-json", b"{x"), ("array", b"[1]"), ("version-0", {**base, "version": 0}),
        ("version-bool", {**base, "version": True}), ("no-expires", with_(base, "expires", DELETE)),
        ("keys-empty", {**base, "keys": []}), ("keys-9", {**base, "keys": keys * 4 + keys[:1]}),
        ("key-bad-hex", {**base, "keys": [{"alg": "ed25519", "public": "G" * 64}]}),
        ("key-short", {**base, "keys": [{"alg": "ed25519", "public": "ab" * 31}]}),
        ("key-unknown-alg", {**base, "keys": [{"alg": "dsa", "public": "ab" * 32}]}),
        ("product-uppercase", {**base, "product": "Door"}),
        ("deep-nesting", body_bytes(base)[:-1] + b',"x":' + b"[" * 17 + b"]" * 17 + b"}"),
    ]
    v += [(f"body-{name}", keyring_doc(b, [ed]), 1, "BAD_BODY") for name, b in bad_bodies]
    return v


def main() -> int:
    keydir = OUT / "keys"
    mdir = OUT / "manifests"
    keydir.mkdir(parents=True, exist_ok=True)
    mdir.mkdir(parents=True, exist_ok=True)
    ed, stranger = ed25519_key("ed25519 #1"), ed25519_key("ed25519 #2 (not in the keyring)")
    rsa = rsa_key(keydir / "test-only-rsa3072.pem")
    for name, k in (("test-only-ed25519.pem", ed), ("test-only-ed25519-unknown.pem", stranger)):
        (keydir / name).write_bytes(k.private_pem(None))
    for name, k in (("test-only-ed25519", ed), ("test-only-rsa3072", rsa)):
        (keydir / f"{name}.pub.pem").write_bytes(k.public_pem())
    (OUT / "vector_keys.py").write_text(export_keyring([ed, rsa]))
    for old in mdir.glob("*.bin"):
        old.unlink()
    index: list[dict[str, Any]] = []
    for name, data in valid_vectors(ed, rsa).items():
        key = ed if data[5] == 1 else rsa
        index.append({"file": f"{name}.bin", "expect": "OK", "fields": expected_fields(data, key)})
        (mdir / f"{name}.bin").write_bytes(data)
    for name, (data, reason) in envelope_vectors(ed, rsa, stranger).items():
        index.append({"file": f"{name}.bin", "expect": reason})
        (mdir / f"{name}.bin").write_bytes(data)
    for name, body in representation_vectors().items():
        index.append({"file": f"body-{name}.bin", "expect": "BAD_BODY"})
        (mdir / f"body-{name}.bin").write_bytes(signed(ed, body))
    for name, body in body_vectors().items():
        index.append({"file": f"body-{name}.bin", "expect": "BAD_BODY"})
        (mdir / f"body-{name}.bin").write_bytes(signed(ed, body))
    kdir = OUT / "keyrings"
    kdir.mkdir(exist_ok=True)
    for old in kdir.glob("*.bin"):
        old.unlink()
    (OUT / "vector_roots.py").write_text(export_keyring([], [ed, rsa], 1))
    kr_index = []
    for name, data, threshold, expect in keyring_vectors(ed, rsa, stranger):
        kr_index.append({"file": f"{name}.bin", "threshold": threshold, "expect": expect})
        (kdir / f"{name}.bin").write_bytes(data)
    (OUT / "keyrings.json").write_text(json.dumps(
        {"comment": "otakit keyring document vectors (docs/format.md §7); roots in "
                    "vector_roots.py (TEST-ONLY); product door-lock, env production.",
         "roots": "vector_roots.py", "product": "door-lock", "env": "production",
         "keyring_dir": "keyrings", "vectors": kr_index}, indent=1) + "\n")
    doc = {"comment": "otakit manifest vectors (docs/format.md); keys are TEST-ONLY. "
                      "Regenerate with `make vectors`.",
           "domain": DOMAIN.decode("latin-1"), "keyring": "vector_keys.py",
           "manifest_dir": "manifests", "vectors": index}
    (OUT / "index.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(index)} manifest and {len(kr_index)} keyring vectors to "
          f"{OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
