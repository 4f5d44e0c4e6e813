# ota/settings.py: the user's update settings and the app's own configuration, on the vfs.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Invariants:
# - both live in JSON files on the filesystem, which an update never touches, so they survive
#   reboots, updates and rollbacks; NVS keeps only security state (ota/state.py);
# - every write is a temporary file then os.rename() over the old one (atomic on littlefs): a
#   power cut leaves the old file or the new one, never a mix;
# - every file carries its schema number ("v" for settings, "schema" for the app's config);
#   readers are tolerant: unknown keys are kept and ignored, so an older firmware after a
#   rollback still reads a file a newer one wrote;
# - the app's own configuration has its own store with schema migrations (ota/appconfig.py);
# - the files are the user's data, never trusted: each is read with a size bound (MAX_FILE) and
#   validated field by field; a bad file or field is replaced by its default, never raised, and
#   the reader keeps a notice ("BAD_SETTINGS: detail", docs/format.md §5) and prints it once.
import json
import os

try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

MAX_FILE = const(4096)  # bytes; a longer settings or config file is refused as a whole
_MAX_POSTPONED = const(8)  # postponement records kept (set_postponed keeps 4)

SETTINGS_FILE = "ota_settings.json"
SCHEMA = 1
# Defaults of a fresh device (EN 303 645 5.3-4/5.3-6, CRA Annex I(2)(c)): automatic checking,
# installing and notices are on.
DEFAULTS = {"auto_check": True, "auto_install": True, "notify": True,
            "window": None, "tz_min": 0}
_BOOLS = ("auto_check", "auto_install", "notify")


def load_json(path, limit=MAX_FILE):
    # (decoded, None); (None, None) when the file is missing; (None, detail) when it is larger
    # than limit bytes or not JSON. Never reads more than limit + 1 bytes.
    try:
        size = os.stat(path)[6]
    except OSError:
        return None, None
    if size > limit:
        return None, "%s is %d bytes (at most %d)" % (path, size, limit)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
        return json.loads(data.decode()), None
    except Exception:  # noqa: BLE001 - user data: any decode failure is "not JSON"
        return None, "%s is not valid JSON" % path


def read_json(path, limit=MAX_FILE):
    # The decoded file, or None when it is missing, too large or unreadable.
    return load_json(path, limit)[0]


def notice(code, detail):
    # One log line for a user file replaced by defaults; returns "CODE: detail".
    n = code + ": " + detail
    print("ota: %s; using defaults" % n)
    return n


def write_json(path, obj):
    # Atomic replace: temp file, then rename over the old one.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    try:
        os.rename(tmp, path)
    except OSError:  # a filesystem whose rename does not replace (FAT)
        os.remove(path)
        os.rename(tmp, path)


def parse_hhmm(text):
    # "HH:MM" -> minutes after midnight; ValueError otherwise.
    if type(text) is not str or len(text) != 5 or text[2] != ":":
        raise ValueError("time must be HH:MM")
    h, m = int(text[:2]), int(text[3:])
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError("time must be HH:MM")
    return h * 60 + m


def _valid(key, v):
    if key in _BOOLS:
        return type(v) is bool
    if key == "tz_min":
        return type(v) is int and -840 <= v <= 840
    if key == "window":
        return v is None or (type(v) in (list, tuple) and len(v) == 2 and
                             all(type(x) is int and 0 <= x < 1440 for x in v) and
                             v[0] != v[1])
    return False


def _postponed_ok(p):
    # {"<sequence>": [first, until]} with at most _MAX_POSTPONED records of numbers.
    if type(p) is not dict or len(p) > _MAX_POSTPONED:
        return False
    for k, v in p.items():
        if not (type(k) is str and 0 < len(k) <= 10 and all("0" <= c <= "9" for c in k)):
            return False
        if not (type(v) is list and len(v) == 2 and
                all(type(x) in (int, float) and 0 <= x < 1e11 for x in v)):
            return False
    return True


class Settings:
    # The user's update settings. Read them as attributes (auto_check, auto_install, notify,
    # window: None or (start_min, end_min) in local time, tz_min: local time minus UTC in
    # minutes); change them with set(), set_window() and the postpone records (policy.py).
    # Every change is validated (ValueError on a bad value) and written at once.
    # .notice is None, or "BAD_SETTINGS: detail" when the file (or a field of it) was bad and
    # replaced by defaults as it was read (the file itself is rewritten at the next change).
    def __init__(self, path=SETTINGS_FILE):
        self.path = path
        self.notice = None
        data, bad = load_json(path)
        if data is not None and type(data) is not dict:
            bad = "%s is not a JSON object" % path
        self.data = data if type(data) is dict else {}
        for k, v in DEFAULTS.items():
            if k not in self.data:
                self.data[k] = v
            elif not _valid(k, self.data[k]):
                bad = bad or "%s: bad %s" % (path, k)
                self.data[k] = v
        if "postponed" in self.data and not _postponed_ok(self.data["postponed"]):
            bad = bad or "%s: bad postponed" % path
            self.data["postponed"] = {}
        self.data.setdefault("postponed", {})
        if bad:
            self.notice = notice("BAD_SETTINGS", bad)

    def __getattr__(self, name):
        if name in DEFAULTS:
            v = self.data[name]
            return tuple(v) if name == "window" and v else v
        raise AttributeError(name)

    def set(self, **kw):
        # e.g. set(auto_install=False). Unknown names or bad values raise ValueError, and
        # nothing is written.
        for k, v in kw.items():
            if k not in DEFAULTS or not _valid(k, v):
                raise ValueError("bad setting %s=%r" % (k, v))
        for k, v in kw.items():
            self.data[k] = list(v) if k == "window" and v else v
        self.save()

    def set_window(self, start, end, tz_min=None):
        # A maintenance window in local time, "HH:MM" to "HH:MM" (may cross midnight);
        # set_window(None, None) removes it (any time is fine).
        w = None if start is None else [parse_hhmm(start), parse_hhmm(end)]
        if tz_min is None:
            self.set(window=w)
        else:
            self.set(window=w, tz_min=tz_min)

    # --- postponements: {sequence: [first offered, postponed until]} (epoch seconds) ---
    def postponed(self, seq):
        p = self.data["postponed"].get(str(seq))
        return (p[0], p[1]) if p else None

    def set_postponed(self, seq, first, until):
        # Keeps only the newest few records: older releases are never offered again.
        p = self.data["postponed"]
        p[str(seq)] = [first, until]
        for k in sorted(p, key=int)[:-4]:
            del p[k]
        self.save()

    def save(self):
        d = dict(self.data)
        d["v"] = max(SCHEMA, d.get("v", 0) if type(d.get("v")) is int else 0)
        write_json(self.path, d)

    def as_dict(self):
        d = {k: getattr(self, k) for k in DEFAULTS}
        d["postponed"] = dict(self.data["postponed"])
        return d
