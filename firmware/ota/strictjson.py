# ota/strictjson.py: strict JSON for signed bodies (docs/format.md §2.5).
# MIT license; Copyright (c) 2026 otakit contributors
#
# ota.manifest and ota.keyring parse a signed body with loads() here. MicroPython's json.loads
# accepts more than JSON and its stack grows with the nesting, so first ota.jsonscan refuses
# what is not strict JSON and counts the object keys; it is then released (ota.release), so
# only this small module is in the heap while json.loads parses the body straight from the
# caller's buffer (no copy on MicroPython). A repeated key is found after parsing: the dicts hold fewer keys
# than were written (escaped spellings compared decoded, as the host does).
from ota import release


# The value of the JSON text data[s:e] (a memoryview); ValueError(detail) when it is not strict
# JSON, is nested deeper than `limit`, or an object repeats a key. Releases the phase modules
# (ota.release) that are not running: callers import what they need before calling it.
def loads(data, s, e, limit):
    from ota.jsonscan import check

    n = check(data, s, e, limit)
    check = None
    release()
    if isinstance(n, str):
        raise ValueError(n)
    import json

    try:
        v = json.loads(data[s:e])
    except TypeError:  # CPython's json takes no memoryview: there, a copy
        v = json.loads(bytes(data[s:e]))
    # n keys were written; fewer in the dicts means a repeated key
    its = [None] * (limit + 2)
    its[0] = iter((v,))
    d = 0
    while d >= 0:
        for x in its[d]:
            if type(x) is dict:
                n -= len(x)
                x = x.values()
            elif type(x) is not list:
                continue
            d += 1
            its[d] = iter(x)
            break
        else:
            its[d] = None
            d -= 1
    if n:
        raise ValueError("duplicate key")
    return v
