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
# - the app's own configuration has its own store with schema migrations (ota/appconfig.py).
import json
import os

SETTINGS_FILE = "ota_settings.json"
SCHEMA = 1
# Defaults of a fresh device (EN 303 645 5.3-4/5.3-6, CRA Annex I(2)(c)): automatic checking,
# installing and notices are on.
DEFAULTS = {"auto_check": True, "auto_install": True, "notify": True,
            "window": None, "tz_min": 0}
_BOOLS = ("auto_check", "auto_install", "notify")


def read_json(path):
    # The decoded file, or None when it is missing or unreadable.
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


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


class Settings:
    # The user's update settings. Read them as attributes (auto_check, auto_install, notify,
    # window: None or (start_min, end_min) in local time, tz_min: local time minus UTC in
    # minutes); change them with set(), set_window() and the postpone records (policy.py).
    # Every change is validated (ValueError on a bad value) and written at once.
    def __init__(self, path=SETTINGS_FILE):
        self.path = path
        data = read_json(path)
        self.data = data if type(data) is dict else {}
        for k, v in DEFAULTS.items():
            if k not in self.data or not _valid(k, self.data[k]):
                self.data[k] = v
        if type(self.data.get("postponed")) is not dict:
            self.data["postponed"] = {}

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
