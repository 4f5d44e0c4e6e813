# ota/jsonfields.py: typed getters for the fields of a decoded JSON manifest body.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Shared by ota.fields (the body's fields) and ota.fleet (its fleet fields), loaded with them
# while a signed body is checked. Each raises ManifestError BAD_BODY naming the field.
from ota.errors import ManifestError

_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"
_PATH_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~/-"
HEX = "0123456789abcdef"


def bad(field):
    raise ManifestError("BAD_BODY", field)


def get(d, k):
    if k not in d:
        bad("missing " + k)
    return d[k]


def integer(d, k, lo, hi, required=True):
    if not required and k not in d:
        return None
    v = get(d, k)
    if type(v) is not int or not lo <= v <= hi:  # type() is int: a bool is not an int here
        bad(k)
    return v


def only(s, chars):
    for c in s:
        if c not in chars:
            return False
    return True


def name(d, k):
    v = get(d, k)
    if type(v) is not str or not 1 <= len(v) <= 32 or not only(v, _NAME_CHARS):
        bad(k)
    return v


def path(v):
    if type(v) is not str or not 1 <= len(v) <= 255 or not only(v, _PATH_CHARS):
        bad("payload.path")
    for seg in v.split("/"):  # also refuses a leading "/", "//", "." and ".."
        if seg in ("", ".", ".."):
            bad("payload.path")
    return v
