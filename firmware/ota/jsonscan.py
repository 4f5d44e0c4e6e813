# ota/jsonscan.py: the byte scan of strict JSON (docs/format.md §2.5), for ota.strictjson.
# MIT license; Copyright (c) 2026 otakit contributors
#
# check(data, s, e, limit) makes one pass over the bytes data[s:e] and refuses what is not JSON
# as the host's otakit.strictjson defines it (MicroPython's json.loads accepts more: missing or
# extra commas, `{1:2}`, trailing bytes, invalid UTF-8, lone surrogates) and nesting deeper than
# `limit`. It returns the number of object keys it saw, which ota.strictjson compares with the
# parsed dicts to find a repeated key. No recursion; it allocates nothing. ota.strictjson drops
# this module before json.loads runs, so it is in the heap only while it scans.

# The number of keys in data[s:e] when it is strict JSON, else a detail string.
def check(data, s, e, limit):
    objs = 0  # bit d: level d is an object
    d = keys = 0
    want = 0  # 0 a value, 1 a value or `]`, 2 a key, 3 a key or `}`, 4 `,`/close/end
    i = s
    while True:
        while i < e and data[i] in b" \t\n\r":
            i += 1
        if i >= e:
            break
        c = data[i]
        i += 1
        if want == 4:
            if d == 0:
                return "data after the value"
            if c == 0x2C:
                want = 2 if objs >> d & 1 else 0
            elif c == (0x7D if objs >> d & 1 else 0x5D):
                d -= 1
            else:
                return "expected , or a closing bracket"
        elif (c == 0x5D and want == 1) or (c == 0x7D and want == 3):
            d -= 1
            want = 4
        elif want >= 2:
            if c != 0x22:
                return "key not a string"
            i = _string(data, i, e)
            while 0 <= i < e and data[i] in b" \t\n\r":
                i += 1
            if i < 0 or i >= e or data[i] != 0x3A:
                return "bad key"
            i += 1
            keys += 1
            want = 0
        else:
            want = 4
            if c == 0x22:
                i = _string(data, i, e)
            elif c == 0x7B or c == 0x5B:
                d += 1
                if d > limit:
                    return "nested deeper than %d" % limit
                if c == 0x7B:
                    objs |= 1 << d
                    want = 3
                else:
                    objs &= ~(1 << d)
                    want = 1
            elif c == 0x2D or 0x30 <= c <= 0x39:
                i = _number(data, i - 1, e)
            else:
                w = b"true" if c == 0x74 else b"false" if c == 0x66 else b"null" if c == 0x6E else b""
                k = 1
                while 0 < k < len(w):
                    k = k + 1 if i < e and data[i] == w[k] else -1
                    i += 1
                if k != len(w):
                    i = -1
            if i < 0:
                return "not JSON"
    if want != 4 or d:
        return "truncated"
    return keys


# -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][-+]?[0-9]+)? at data[i]: the offset after it, or -1.
def _number(data, i, e):
    if data[i] == 0x2D:
        i += 1
    if i < e and data[i] == 0x30:
        i += 1
    else:
        i = _digits(data, i, e)
    if 0 <= i < e and data[i] == 0x2E:
        i = _digits(data, i + 1, e)
    if 0 <= i < e and data[i] | 0x20 == 0x65:
        i += 1
        if i < e and data[i] in b"+-":
            i += 1
        i = _digits(data, i, e)
    return i


def _digits(data, i, e):
    j = i
    while j < e and 0x30 <= data[j] <= 0x39:
        j += 1
    return j if j > i else -1


# The string whose opening `"` is before data[i]: the offset after its closing `"`, or -1 when
# it is unterminated, holds a control character, a bad escape, an escaped surrogate (paired or
# not) or invalid UTF-8 (overlong, an encoded surrogate, above U+10FFFF, truncated).
def _string(data, i, e):
    while i < e:
        c = data[i]
        if c == 0x22:
            return i + 1
        if c < 0x20:
            return -1
        if c == 0x5C:
            if i + 1 >= e or data[i + 1] not in b'"\\/bfnrtu':
                return -1
            if data[i + 1] == 0x75:
                if i + 6 > e or (data[i + 2] | 0x20 == 0x64 and data[i + 3] in b"89abcdefABCDEF"):
                    return -1
                for k in range(i + 2, i + 6):
                    if data[k] not in b"0123456789abcdefABCDEF":
                        return -1
                i += 4
            i += 2
        elif c < 0x80:
            i += 1
        else:
            # continuation bytes, and the second byte's range: no overlong form, no surrogate,
            # nothing above U+10FFFF
            if c < 0xC2 or c > 0xF4:
                return -1
            n = 1 if c < 0xE0 else 2 if c < 0xF0 else 3
            lo = 0xA0 if c == 0xE0 else 0x90 if c == 0xF0 else 0x80
            hi = 0x9F if c == 0xED else 0x8F if c == 0xF4 else 0xBF
            if i + n >= e or not lo <= data[i + 1] <= hi:
                return -1
            for k in range(i + 2, i + n + 1):
                if data[k] & 0xC0 != 0x80:
                    return -1
            i += n + 1
    return -1
