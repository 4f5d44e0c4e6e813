"""Generate the project's own signature vectors for the device verifier (``ota.crypto.verify``):
``ed25519.json`` and ``rsa_pss_3072.json`` beside this file. Deterministic: run it again and the
files are byte for byte the same (tests/host/test_compliance_vectors.py checks that).

- Ed25519: the RFC 8032 §7.1 test vectors TEST 1, 2 and 3 (published standard data), signatures
  from fixed seeds (Ed25519 signing is deterministic), and invalid variants of each: R or S
  changed, S + L (malleated), the message or the key changed, the key negated, a short
  signature.
- RSA-3072-PSS-SHA256 (salt 32, MGF1-SHA256): EMSA-PSS encoded here with a fixed salt (RFC 8017
  §9.1.1) and signed with tests/vectors/keys/test-only-rsa3072.pem, and invalid variants: a bit
  flipped, the message changed, salt length 20, SHA-1 as the hash, a wrong trailer byte, the top
  bit set, the signature equal to the modulus, zero.

Every vector's expected result is also checked with `cryptography` where it can say (valid
Ed25519 and RSA-PSS salt-32 signatures verify there; the invalid ones do not).

Usage: python tests/vectors/signatures/make_signatures.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

HERE = Path(__file__).resolve().parent
L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19
ED, RSA = "ed25519", "rsa3072-pss-sha256"

# RFC 8032 §7.1 TEST 1, 2, 3: (secret seed, public key, message, signature).
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
     "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
     "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290a"
     "e67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
]


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _msg(i: int, n: int) -> bytes:
    out = b""
    while len(out) < n:
        out += hashlib.sha256(b"otakit vector message %d %d" % (i, len(out))).digest()
    return out[:n]


def _v(vid: str, alg: str, pk: bytes, msg: bytes, sig: bytes, ok: bool, why: str) -> dict:
    return {"id": vid, "alg": alg, "pk": pk.hex(), "msg": msg.hex(), "sig": sig.hex(),
            "result": "valid" if ok else "invalid", "comment": why}


def _ed_variants(vid: str, pk: bytes, msg: bytes, sig: bytes) -> list[dict]:
    s = int.from_bytes(sig[32:], "little")
    out = [_v(vid, ED, pk, msg, sig, True, "valid"),
           _v(vid + "-r", ED, pk, msg, _flip(sig, 3), False, "R changed"),
           _v(vid + "-s", ED, pk, msg, _flip(sig, 256 + 7), False, "S changed"),
           _v(vid + "-malleated", ED, pk, msg, sig[:32] + (s + L).to_bytes(32, "little"), False,
              "S + L: the same signature, malleated (S >= L)"),
           _v(vid + "-msg", ED, pk, msg + b"\0", sig, False, "message changed"),
           _v(vid + "-key", ED, _flip(pk, 0), msg, sig, False, "key changed"),
           _v(vid + "-short", ED, pk, msg, sig[:-1], False, "signature one byte short")]
    out.append(_v(vid + "-negated-key", ED, _flip(pk, 255), msg, sig, False,
                  "the key's sign bit flipped (-A)"))
    return out


def ed25519_vectors() -> list[dict]:
    out = []
    for i, (_, pk, msg, sig) in enumerate(RFC8032, 1):
        out += _ed_variants(f"rfc8032-test{i}", bytes.fromhex(pk), bytes.fromhex(msg),
                            bytes.fromhex(sig))
    for i, n in enumerate((0, 1, 32, 33, 100, 255, 1000)):
        key = ed25519.Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(b"otakit ed25519 vector seed %d" % i).digest())
        pk = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
        msg = _msg(i, n)
        out += _ed_variants(f"seed{i}-len{n}", pk, msg, key.sign(msg))
    return out


def _mgf1(seed: bytes, n: int, h: str) -> bytes:
    out, c = b"", 0
    while len(out) < n:
        out += hashlib.new(h, seed + c.to_bytes(4, "big")).digest()
        c += 1
    return out[:n]


def _pss_em(msg: bytes, salt: bytes, h: str = "sha256", trailer: int = 0xBC,
            top_bit: bool = False) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 §9.1.1) for a 3072-bit modulus (emBits 3071, emLen 384)."""
    em_len, hlen = 384, hashlib.new(h).digest_size
    mhash = hashlib.new(h, msg).digest()
    hh = hashlib.new(h, bytes(8) + mhash + salt).digest()
    db = bytes(em_len - len(salt) - hlen - 2) + b"\x01" + salt
    masked = bytearray(a ^ b for a, b in zip(db, _mgf1(hh, len(db), h), strict=True))
    masked[0] &= 0x7F  # 8 * emLen - emBits = 1 leftmost bit cleared
    if top_bit:
        masked[0] |= 0x80
    return bytes(masked) + hh + bytes([trailer])


def rsa_vectors() -> list[dict]:
    pem = (HERE.parent / "keys" / "test-only-rsa3072.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    nums = key.private_numbers()
    n, d = nums.public_numbers.n, nums.d
    pk = n.to_bytes(384, "big")

    def sign(em: bytes) -> bytes:
        return pow(int.from_bytes(em, "big"), d, n).to_bytes(384, "big")

    out = []
    for i, size in enumerate((0, 1, 32, 100, 1000)):
        msg, salt = _msg(100 + i, size), hashlib.sha256(b"otakit pss salt %d" % i).digest()
        sig = sign(_pss_em(msg, salt))
        vid = f"pss{i}-len{size}"
        out += [_v(vid, RSA, pk, msg, sig, True, "valid (salt 32)"),
                _v(vid + "-bit", RSA, pk, msg, _flip(sig, 8 * 200 + 3), False, "a bit flipped"),
                _v(vid + "-msg", RSA, pk, msg + b"\0", sig, False, "message changed")]
    msg = _msg(200, 64)
    salt = hashlib.sha256(b"otakit pss salt other").digest()
    out += [
        _v("pss-salt20", RSA, pk, msg, sign(_pss_em(msg, salt[:20])), False,
           "salt length 20, not 32"),
        _v("pss-sha1", RSA, pk, msg, sign(_pss_em(msg, salt[:20], "sha1")), False,
           "SHA-1 as the hash"),
        _v("pss-trailer", RSA, pk, msg, sign(_pss_em(msg, salt, trailer=0xBB)), False,
           "trailer byte 0xbb, not 0xbc"),
        _v("pss-top-bit", RSA, pk, msg, sign(_pss_em(msg, salt, top_bit=True)), False,
           "the leftmost bit of the encoded message set"),
        _v("pss-modulus", RSA, pk, msg, pk, False, "the signature equals the modulus"),
        _v("pss-zero", RSA, pk, msg, bytes(384), False, "a signature of zeros"),
        _v("pss-short", RSA, pk, msg, sign(_pss_em(msg, salt))[1:], False,
           "signature one byte short"),
    ]
    return out


def _crosscheck(v: dict) -> bool | None:
    """What `cryptography` says about a vector (None where it cannot judge it alike)."""
    pk, msg, sig = (bytes.fromhex(v[k]) for k in ("pk", "msg", "sig"))
    try:
        if v["alg"] == ED:
            if len(pk) != 32:
                return None
            ed25519.Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
        else:
            pub = rsa.RSAPublicNumbers(65537, int.from_bytes(pk, "big")).public_key()
            pub.verify(sig, msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                       hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def documents() -> dict[str, str]:
    """File name -> JSON text of every vector file."""
    out = {}
    for name, vectors in (("ed25519.json", ed25519_vectors()),
                          ("rsa_pss_3072.json", rsa_vectors())):
        for v in vectors:
            got = _crosscheck(v)
            assert got is None or got == (v["result"] == "valid"), v["id"]
        doc = {"generator": "tests/vectors/signatures/make_signatures.py",
               "algorithm": vectors[0]["alg"], "vectors": vectors}
        out[name] = json.dumps(doc, indent=1) + "\n"
    return out


if __name__ == "__main__":
    for fname, text in documents().items():
        (HERE / fname).write_text(text)
        print(f"wrote {HERE / fname}")
