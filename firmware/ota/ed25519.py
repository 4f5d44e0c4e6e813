# ota/ed25519.py: Ed25519 signature verification (RFC 8032 §5.1.7), strict and cofactorless.
# MIT license; Copyright (c) 2026 otakit contributors
#
# verify(public_key, message, signature) -> bool, for a 32-byte key and a 64-byte signature
# (ota.crypto checks types and lengths). Refuses S >= L, encodings of R or A with y >= p or with
# x = 0 and the sign bit set, and encodings of non-points. The check is the cofactorless
#     [S]B == R + [k]A,   k = SHA-512(R || A || M) mod L
# as in ref10, OpenSSL and BoringSSL; R and A may carry a small-order component, which then makes
# the check fail unless it cancels exactly (so small-order R or A are not refused by themselves).
#
# Speed (MicroPython big-int ops allocate, so the aim is few of them): half-size scalars, after
# Pornin (ePrint 2020/454). A truncated extended Euclid on (8L, k) gives c odd, 0 < c < 2^128-ish,
# and d = c*k (mod 8L) of the same size. With P = [S]B - R - [k]A, and A, R of order | 8L:
#     [c]P = [c*S mod L]B - [c]R - [d]A,   and [c]P = 0 iff P = 0 (c odd, 0 < c < L).
# [c*S mod L]B is split into 128-bit halves over B and 2^128*B (frozen tables), so the four
# scalars share one ~128-step Straus chain with signed sliding windows (wNAF), in extended
# twisted-Edwards coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, xy = T/Z.
# Table entries are "cached" points (Y+X, Y-X, 2Z, 2dT), four ints each, odd multiples 1P, 3P, ...
try:
    from micropython import const
except ImportError:

    def const(x):
        return x


from ota.sha512 import sha512

_P = const(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED)
_L = const(0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED)
_L8 = const(0x80000000000000000000000000000000A6F7CEF517BCE6B2C09318D2E7AE9F68)
_D = const(37095705934669439343138083508754565189542113879843219016388785533085940283555)
_D2 = const(16295367250680780974490674513165176452449235426866156013048779062215315747161)
_SQRTM1 = const(19681161376707505956807079304988542015446066515923890162744021073123829784752)
_E58 = const(0x0FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFD)  # (p - 5) / 8
_M255 = const((1 << 255) - 1)
_M128 = const((1 << 128) - 1)

# Odd multiples 1B, 3B, ..., 15B of the base point, and of 2^128*B (window 5), cached, Z = 1.
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
    0x34b9ed338add7f59ceb233c9c686f5b5a6509e6f51bc46c59b2e678aa6a8632f,
    0x49c05a51fadc9c8f96cbc608e75eb04498a081b6f520419bf36e217e039d8064,
    2, 0x73c172021b008b06aaf6fc2993d4cf16e2ff83e8a719d22f06b4e8bf9045af1b,
    0x4275aae2546d8faf113e847117703406e5d9fecf02302e272fbf00848a802ade,
    0x18ab598029d5c77fa3a075556a8deb953ed6b36977088381315f5b0249864348,
    2, 0x3dc65522b53df94844311199b51a8622031eb4a13282e4a4d82b2cc5fd6089e9,
    0x234fd7eec346f241537a0e12fb07ba07bf84b39ab5bcdedbbf70c222a2007f6d,
    0x0267882d176024a79d12b232aaad5968aefcebc99b776f6b506f013b327fbf93,
    2, 0x497ba6fdaa097863a2ef37f891a7e5332437e6b1df8dd4715360a119732ea378,
    0x61e22917f12de72b2dbdbdfac1f2d4d08648c28d189c246d24cecc0313cfeaa0,
    0x43b5cd4218d05ebf7508300807b25192d3829ba42a9910d6040bcd86468ccf0b,
    2, 0x511d61210ae4d842032e5a7d93d64270eb38af4e373fdeee5d9a762f9bd0b516,
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
    0x3bc6a10aa583b07367da92c7870bd336c972aa11b971fa7947c27ef70e37c8cb,
    0x3fd86de2aebd0a002a520c99411d105e2d66ab42806e07a3afcbc5db45dc2c78,
    2, 0x5326ccb69408342c5bce16df21a65a0ccc30c4661fa8c69502343d82f773aecb,
    0x4d4ec054daefe339b0d4e4ecc1c7b08df65a5d746ed81d6ec227f192a0d2da41,
    0x336d296b4cdca8fd5b146093d21d62c4bb1ad727e13e83da9f521df92dcc5416,
    2, 0x15e397726486fcb8e4f2bc4f8317bc29176f722358d0fb2cc4d6fc516536cb46,
    0x22751f67f4f51f2ac46ad91bfc4e0fabad1f81931add3b95914d3e4ea7c67900,
    0x306cf6d5c4b1bf102a75a7b63321404ce5e24f183103a2ce964ab749181b45c7,
    2, 0x71bd6e5254388c2fd802d0d1cf524dee6602d9eb416be258ac3366fa22060ed4,
    0x63585a3c041f3ddcb340d20b7f4803d45f65a79925947f83847832923fa62600,
    0x0ff6d3f433920dba6841d34023ee4103d8bbb343ae9689d80a788e93d9457638,
    2, 0x311875e37124b98d84cd1f0e6306af3f1adc7a18cd4173f04f234ee871911c90,
)


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
    x = uv3 * pow(uv3 * v3 % p * v % p, _E58, p) % p
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


def _dbl(X, Y, Z, p):
    a = X * X % p
    b = Y * Y % p
    h = a + b
    g = a - b
    s = X + Y
    e = h - s * s % p
    f = g + (Z * Z % p << 1)
    return e * f % p, g * h % p, f * g % p, e * h % p


# (X:Y:Z:T) + tb[o:o+4] (cached), or minus it when neg.
def _add(X, Y, Z, T, tb, o, neg, p):
    if neg:
        a = (Y - X) * tb[o] % p
        b = (Y + X) * tb[o + 1] % p
    else:
        a = (Y - X) * tb[o + 1] % p
        b = (Y + X) * tb[o] % p
    c = T * tb[o + 3] % p
    if neg:
        c = -c
    d = Z * tb[o + 2] % p
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return e * f % p, g * h % p, f * g % p, e * h % p


# Cached odd multiples P, 3P, 5P, 7P of the affine point (x, y) (window 4), as one flat list.
def _table(x, y):
    p = _P
    t = x * y % p
    tb = [(y + x) % p, (y - x) % p, 2, t * _D2 % p]
    X, Y, Z, T = _dbl(x, y, 1, p)
    tb2 = ((Y + X) % p, (Y - X) % p, Z * 2 % p, T * _D2 % p)
    X, Y, Z, T = x, y, 1, t
    for _ in range(3):
        X, Y, Z, T = _add(X, Y, Z, T, tb2, 0, 0, p)
        tb.extend(((Y + X) % p, (Y - X) % p, Z * 2 % p, T * _D2 % p))
    return tb


# Signed window-w NAF of k >= 0 into a fresh bytearray (digit d stored as d & 255, lowest first);
# sets bit in flags[i] for every nonzero digit i. Returns (digits, index of the top digit).
def _wnaf(k, w, flags, bit):
    out = bytearray(258)
    full = 1 << w
    i = 0
    top = 0
    while k:
        if k & 1:
            v = k & (full - 1)
            if v > full >> 1:
                v -= full
            k -= v
            out[i] = v & 255
            flags[i] |= bit
            top = i
            k >>= w
            i += w
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


# True iff the sum of [ks[j]] (point of table tabs[j]) is the neutral element.
def _is_zero(ks, ws, tabs):
    p = _P
    flags = bytearray(258)
    digs = []
    top = 0
    for j in range(4):
        dg, tp = _wnaf(ks[j], ws[j], flags, 1 << j)
        digs.append(dg)
        if tp > top:
            top = tp
    X, Y, Z, T = 0, 1, 1, 0
    for i in range(top, -1, -1):
        X, Y, Z, T = _dbl(X, Y, Z, p)
        fl = flags[i]
        if fl:
            for j in range(4):
                if fl >> j & 1:
                    v = digs[j][i]
                    if v < 128:
                        X, Y, Z, T = _add(X, Y, Z, T, tabs[j], (v >> 1) * 4, 0, p)
                    else:
                        X, Y, Z, T = _add(X, Y, Z, T, tabs[j], (256 - v >> 1) * 4, 1, p)
    return X % p == 0 and (Y - Z) % p == 0


def verify(public_key, message, signature):
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
    xa = a[0]
    if d < 0:
        d = -d
    else:
        xa = -xa
    tabs = (_TB, _TB128, _table(-r[0], r[1]), _table(xa, a[1]))
    return _is_zero((t & _M128, t >> 128, c, d), (5, 5, 4, 4), tabs)
