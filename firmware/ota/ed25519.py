# ota/ed25519.py: Ed25519 signature verification (RFC 8032 §5.1.7), strict and cofactorless.
# MIT license; Copyright (c) 2026 otakit contributors
#
# verify(public_key, message, signature) -> bool for a 32-byte key and a 64-byte signature, any
# buffer types (ota.crypto checks types and lengths). Refuses S >= L, R or A encoded with y >= p or with x = 0
# and the sign bit set, and non-points. The check is the cofactorless [S]B == R + [k]A with
# k = SHA-512(R || A || M) mod L, as in ref10/OpenSSL/BoringSSL; small-order R or A are not
# refused by themselves (the equation must hold exactly, torsion included).
# Speed (every big-int op allocates; the aim is few of them): half-size scalars after Pornin
# (ePrint 2020/454). A truncated extended Euclid on (8L, k) gives c odd, 0 < c ~ 2^127, and
# d = c*k (mod 8L) as small. With P = [S]B - R - [k]A, and A, R of order dividing 8L:
#     [c]P = [c*S mod L]B - [c]R - [d]A,   and [c]P = 0 iff P = 0 (c odd, 0 < c < L).
# c*S mod L is split in 128-bit halves over B and 2^128*B (frozen tables), so four ~128-bit
# scalars share one Straus chain (signed windows, wNAF) in extended coordinates (X:Y:Z:T),
# x = X/Z, y = Y/Z, xy = T/Z. Table entries are cached points (Y+X, Y-X, 2Z, 2dT), odd multiples.
try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

from ota.sha512 import sha512

_P = const(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED)
_L = const(0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED)
_L8 = const(0x80000000000000000000000000000000A6F7CEF517BCE6B2C09318D2E7AE9F68)
_D = const(37095705934669439343138083508754565189542113879843219016388785533085940283555)
_D2 = const(16295367250680780974490674513165176452449235426866156013048779062215315747161)
_SQRTM1 = const(19681161376707505956807079304988542015446066515923890162744021073123829784752)
_M255 = const((1 << 255) - 1)
_M128 = const((1 << 128) - 1)

# Odd multiples 1B, 3B, 5B, 7B of the base point, and of 2^128*B (window 4), cached, Z = 1.
_TB = (
    0x07cf9d3a33d4ba65270b4898643d42c2cf932dc6fb8c0e192fbc93c6f58c3b85,
    0x44fd2f9298f81267a5c18434688f8a09fd399f05d140beb39d103905d740913e,
    2, 0x6f117b689f0c65a85a1b7dcbdd43598c26d9e823ccaac49eabc91205877aaa68,
    0x7a164e1b9a80f8f4c11b50029f016732025a8430e8864b8aaf25b0a84cee9730,
    0x2ab91587555bda628131f31a214bd6bd3bd353fde5c1ba7d56611fe8a4fcd265,
    2, 0x5a2826af12b9b4c6d170e5458cf2db4c589423221c35da6214ae933f0dd0d889,
    0x2945ccf146e206ebdd1beb0c5abfec448d5048c3c75eed02a212bc4408a5bb33,
    0x154a7e73eb1b55f3e33cf11cb864a087d50014d14b2729b77f9182c3a447d6ba,
    2, 0x43aabe696b3bb69ab41b670b1bbda72d270e0807d0bdd1fcbcbbdbf1812a8285,
    0x461bea69283c927e71b2528228542e497470353ab39dc0d26b1a5cd0944ea3bf,
    0x1d6edd5d2e5317e09dea764f92192c3a6ca021533bba23a7ba6f2c9aaa3221b1,
    2, 0x7a9fbb1c6a0f90a7529c41ba5877adf3b3035f47053ea49af1836dc801b8b3a2,
)
_TB128 = (
    0x2b5449e58eb3bbaa2b1e583b0810c5db29b743e8148be884583b04bfacad8ea2,
    0x1304e9e71627d55100c3e53145747299f7ea38548ebda0b85f3a7562eb3dbe47,
    2, 0x4468de2d7c2dd693da0fe1fff979c60a3c1bab3f8b48dd0b789814d26adc9cfe,
    0x6af93724185b48703643d056d50b3ab9b14ce538462c293c4b5a64bf710ecdf6,
    0x577629c4a7f41e36f0495b0bbe01598254036f9f377e76a5e90ecfab8de73e68,
    2, 0x701f25bb0caec18f83e236233c33289fd2e036134b5589733220024509c6a888,
    0x366d44191cfd3cde44a8f1bf1c68d791c9c3ab370a723fb98dee9bd55db1beee,
    0x221104eb3f337bd8d4813152635543bfee81916bdbf90d0efbbad48ffb5720ad,
    2, 0x4167a4e6bc593244ccb82f0e68a7fb972eda26fcb5856c3b9e3c1743f2bc8c14,
    0x1f6a3e54f26906b621354ffeded7879b98fbcc2aacf440a3db90e28949770eb8,
    0x08fc3a4c677d5f343d4fa502ebe94dc42ddfc9f4b2a58480b4af6cd05b9c619b,
    2, 0x4f2fad0116b900d1e2333e23f759829540c085b631165cd660a4c199d30734ea,
)


# z^((p-5)/8) = z^(2^252-3): the ref10 addition chain, with runs of squarings done by pow() in C
# (pow(x, e, p) with the dense exponent costs about twice as many big-int products).
def _pow22523(z, p):
    z2 = z * z % p
    z9 = pow(z2, 4, p) * z % p
    z31 = z9 * (z2 * z9 % p) ** 2 % p  # 2^5 - 1
    z10 = pow(z31, 32, p) * z31 % p  # 2^10 - 1
    z20 = pow(z10, 1 << 10, p) * z10 % p
    z50 = pow(pow(z20, 1 << 20, p) * z20 % p, 1 << 10, p) * z10 % p
    z100 = pow(z50, 1 << 50, p) * z50 % p
    z250 = pow(pow(z100, 1 << 100, p) * z100 % p, 1 << 50, p) * z50 % p
    return pow(z250, 4, p) * z % p


# RFC 8032 §5.1.3 point decoding; returns (x, y) or None. Strict: y < p, no "negative zero".
def _decode(s):
    p = _P
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= _M255
    if y >= p:
        return None
    yy = y * y % p
    u = yy - 1
    v = (_D * yy + 1) % p
    v3 = v * v % p * v % p
    uv3 = u * v3 % p
    x = uv3 * _pow22523(uv3 * v3 % p * v % p, p) % p
    vxx = v * x % p * x % p
    if vxx != u % p:
        if vxx != -u % p:
            return None
        x = x * _SQRTM1 % p
    if sign and not x:
        return None
    if x & 1 != sign:
        x = p - x
    return x, y


# (X:Y:Z:T) + q, q a cached point (add-2008-hwcd-3, a = -1; complete, so it also doubles).
def _add(X, Y, Z, T, q, p):
    a = (Y - X) * q[1] % p
    b = (Y + X) * q[0] % p
    c = T * q[3] % p
    d = Z * q[2] % p
    e = b - a
    h = b + a
    f = d - c
    g = d + c
    return e * f % p, g * h % p, f * g % p, e * h % p


# Cached odd multiples P, 3P, 5P, 7P of the affine point (x, y) (window 4), as one flat list.
def _table(x, y):
    p = _P
    t = x * y % p
    tb = [(y + x) % p, (y - x) % p, 2, t * _D2 % p]
    X, Y, Z, T = _add(x, y, 1, t, tb, p)
    q2 = ((Y + X) % p, (Y - X) % p, Z * 2 % p, T * _D2 % p)
    X, Y, Z, T = x, y, 1, t
    for _ in range(3):
        X, Y, Z, T = _add(X, Y, Z, T, q2, p)
        tb.extend(((Y + X) % p, (Y - X) % p, Z * 2 % p, T * _D2 % p))
    return tb


# Signed window-4 NAF of k >= 0 (digits 0, +-1, +-3, +-5, +-7) into a fresh bytearray, lowest
# first, digit d stored as d & 255; sets bit in flags[i] for every nonzero digit i.
# Returns (digits, index of the top digit).
def _wnaf(k, flags, bit):
    out = bytearray(258)
    i = 0
    top = 0
    while k:
        if k & 1:
            v = k & 15
            if v > 8:
                v -= 16
            k -= v
            out[i] = v & 255
            flags[i] |= bit
            top = i
            k >>= 4
            i += 4
        else:
            k >>= 1
            i += 1
    return out, top


# c odd > 0 and d with d = c*k (mod 8L), both near sqrt(8L) ~ 2^127.5 (truncated Euclid).
def _halfsize(k):
    a, b = _L8, k
    ta, tb = 0, 1
    while b >> 128:
        q = a // b
        a, b = b, a - q * b
        ta, tb = tb, ta - q * tb
    if tb & 1:
        c, d = tb, b
    else:
        # consecutive t are coprime, so ta is odd, and so is the next one
        q = a // b
        r = a - q * b
        tr = ta - q * tb
        if max(abs(ta), a) < max(abs(tr), r):
            c, d = ta, a
        else:
            c, d = tr, r
    if c < 0:
        return -c, -d
    return c, d


# True iff the sum of [ks[j]] (point of table tabs[j]) is the neutral element. Inlined: the
# doubling (dbl-2008-hwcd, signs folded) and _add; both skip T = E*H when nothing reads it next.
def _is_zero(ks, tabs):
    p = _P
    flags = bytearray(258)
    digs = []
    top = 0
    for j in range(4):
        dg, tp = _wnaf(ks[j], flags, 1 << j)
        digs.append(dg)
        top = max(top, tp)
    X, Y, Z, T = 0, 1, 1, 0
    for i in range(top, -1, -1):
        fl = flags[i]
        a = X * X % p
        b = Y * Y % p
        h = a + b
        g = a - b
        e = X + Y
        e = h - e * e % p
        f = g + (Z * Z % p << 1)
        X = e * f % p
        Y = g * h % p
        Z = f * g % p
        if not fl:
            continue
        T = e * h % p
        for j in range(4):
            if not fl >> j & 1:
                continue
            v = digs[j][i]
            tb = tabs[j]
            if v < 128:
                o = v >> 1 << 2
                a = (Y - X) * tb[o + 1] % p
                b = (Y + X) * tb[o] % p
                c = T * tb[o + 3] % p
            else:
                o = 256 - v >> 1 << 2
                a = (Y - X) * tb[o] % p
                b = (Y + X) * tb[o + 1] % p
                c = -T * tb[o + 3] % p
            d = tb[o + 2]
            d = Z << 1 if d == 2 else Z * d % p
            e = b - a
            h = b + a
            f = d - c
            g = d + c
            X = e * f % p
            Y = g * h % p
            Z = f * g % p
            if fl >> j + 1:
                T = e * h % p
    return X % p == 0 and (Y - Z) % p == 0


def verify(public_key, message, signature):
    public_key = bytes(public_key)  # any buffer type (64 + 32 bytes: a copy is cheap)
    signature = bytes(signature)
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    r = _decode(signature[:32])
    a = _decode(public_key)
    if r is None or a is None:
        return False
    k = int.from_bytes(sha512(signature[:32] + public_key + bytes(message)), "little") % _L
    c, d = _halfsize(k)
    t = c * s % _L
    # [t]B - [c]R - [d]A == 0, with c > 0; the sign of d picks A or -A
    tabs = (_TB, _TB128, _table(-r[0], r[1]), _table(a[0] if d < 0 else -a[0], a[1]))
    return _is_zero((t & _M128, t >> 128, c, abs(d)), tabs)
