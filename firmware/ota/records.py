# ota/records.py: a download's progress records in the spare slot's last sector (ota.state).
# MIT license; Copyright (c) 2026 otakit contributors
#
# When the image ends before the spare slot's last 4 KB sector (and is at most 128 x 64 KB:
# ota.state), that sector holds the progress records: 128 places of 32 bytes, each programmed
# with 3-argument writeblocks (no erase; NOR flash keeps old AND new) into the sector erased
# (ioctl 6, by ota.state) before the payload's download began.
# - mark i, at place i: "the image's bytes up to (i + 1) x 64 KB, or its end, are in the slot and
#   were read back", written once that block is; the marks count as a run from mark 0;
# - a stop, at the places from 127 down (never below the image's marks): "the first k 4 KB
#   blocks are", written when a download stops between two marks (a lost connection); each at a
#   new place, one below the last, and after a reset one place lower still (the place below the
#   lowest valid stop may hold one a cut tore). Each stop counts on its own.
# The resume point is the furthest any of them gives. A record's 32 bytes are a function of its
# payload's 8-byte tag and its value only (fill: tag, two bytes (i and 255 - i, or k), a magic
# "otakit" or "otstop", twice), and a record counts only when all 32 read back exactly so: one
# torn by a power cut (its second half still erased, or any bits left unprogrammed), another
# payload's, or a mark at another index never does. Each place is written once after the erase,
# except a mark a cut tore, which the resumed download writes again with the same 32 bytes: that
# programs only bits the record clears, so the result is the whole record. Under ESP32 flash
# encryption the same holds: each write is one 32-byte record at a 32-byte aligned offset (whole
# 16/32-byte encryption blocks, never shared with other data), never rewritten with other bytes
# (the same plaintext at the same address encrypts to the same ciphertext), and an erased place
# reads back (decrypted) as no valid record.
# ota.state calls record (State.save_progress); ota.stateops reads the records back for
# State.progress (its _scan, with fill and the magics here), so that this module holds only what
# writes them while a payload streams in. Loaded only while an install runs (ota.release drops it
# with the phase, and ota.state right after a scan); nothing here allocates but, per record made,
# a memoryview slice.
from .errors import FlashError

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_BLOCK = const(4096)
_MARK = const(32)  # bytes per record
MAGIC_MARK = b"otakit"
MAGIC_STOP = b"otstop"
# the download's progress, ota.state's State._p: its fields
_SLOT = const(0)
_TAG = const(1)
_REC = const(2)
_MB = const(3)
_N = const(4)
_STOP = const(5)
_SIZE = const(6)


def fill(rec, tag, a, b, magic):
    # A 32-byte progress record: tag (8 bytes), a, b, magic (6 bytes), twice.
    rec[0:8] = tag
    rec[8] = a
    rec[9] = b
    rec[10:16] = magic
    rec[16:32] = rec[0:16]


def record(p, done):
    # Records that the image's bytes [0, done) are in the slot and read back: at a multiple of
    # 64 KB or the image's end, the marks up to done's; else (a download that stopped between
    # two marks) a stop at the next place. False when no place is left for it.
    tag, rec = p[_TAG], p[_REC]
    if not done & 0xFFFF or done == p[_SIZE]:
        i = (done - 1) >> 16
        while p[_N] <= i:
            n = p[_N]
            fill(rec, tag, n, 255 - n, MAGIC_MARK)
            _program(p, n)
            p[_N] = n + 1
        return True
    i = p[_STOP]
    if i < (p[_SIZE] + 0xFFFF) >> 16:
        return False
    k = done // _BLOCK
    fill(rec, tag, k & 255, k >> 8, MAGIC_STOP)
    _program(p, i)
    p[_STOP] = i - 1
    return True


def _program(p, place):
    try:
        p[_SLOT].part.writeblocks(p[_MB], p[_REC], place * _MARK)
    except OSError as e:
        raise FlashError("WRITE_FAILED", "progress record %d: %s" % (place, e))
