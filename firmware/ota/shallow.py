# ota/shallow.py: a bound on JSON nesting, checked before json.loads (docs/format.md §2, §7.2).
# MIT license; Copyright (c) 2026 otakit contributors
#
# json.loads's parser stack grows with the nesting of arrays and objects, so a small signed-but-
# hostile or corrupt body could exhaust the heap; ota.manifest and ota.keyring refuse a body
# nested deeper than they accept before parsing it.


# Whether the JSON text in data[s:e] nests arrays/objects at most `limit` deep (strings skipped).
# Allocates nothing.
def shallow(data, s, e, limit):
    depth = 0
    in_str = esc = False
    for i in range(s, e):
        c = data[i]
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:
                esc = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c == 0x5B or c == 0x7B:
            depth += 1
            if depth > limit:
                return False
        elif c == 0x5D or c == 0x7D:
            depth -= 1
    return True
