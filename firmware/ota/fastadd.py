# ota/fastadd.py: the delta patcher's inner loop as native code (viper).
# MIT license; Copyright (c) 2026 otakit contributors
#
# Compiled only where the port has a native emitter (mpy-cross -march=... or frozen); ota.delta
# falls back to a plain loop when this module cannot be imported. No allocation.
import micropython


# out[o:o+n] += base[b:b+n], byte-wise modulo 256 (a ptr8 store keeps the low byte)
@micropython.viper  # pyright: ignore[reportArgumentType] - the stubs type viper as () -> ...
def add(out: ptr8, o: int, base: ptr8, b: int, n: int):
    i = 0
    while i < n:
        out[o + i] = out[o + i] + base[b + i]
        i += 1
