# ota/appconfig.py: the app's own user configuration, versioned, migrated only after confirm.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Invariants:
# - the file lives on the filesystem, which an update never touches; it carries "schema": N;
# - a schema migration is written to flash only once the running firmware is confirmed (no trial
#   boot pending); until then the old file stays untouched and the new firmware works on a
#   migrated copy in RAM, so after a rollback the old firmware finds its configuration intact;
# - writes are temp file + rename (ota.settings.write_json); while a migration is written the old
#   file is first copied to PATH.v<old schema>, removed only once the new file is in place.
# - the file is user data: read with a size bound (ota.settings.MAX_FILE); a file that is not a
#   JSON object, or a field whose type differs from its default's (a string longer than
#   MAX_STR), is replaced by the default; .notice then holds "BAD_CONFIG: detail" and one line
#   is printed (docs/format.md §5); load() never raises for the file's content.
# Load it at boot and release it (ota.release()) when done: it need not stay in RAM.
import os

from .settings import MAX_FILE, load_json, notice, write_json

MAX_STR = 256  # characters in a string field


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


class ConfigStore:
    # The app's own configuration file: {"schema": N, ...}.
    #   store = ConfigStore("lock_config.json", schema=2, migrate=fn, defaults={...})
    #   cfg = store.load()    never writes; an older schema is migrated in RAM (fn(old_dict,
    #                         old_schema) -> new dict, called once per step: 1->2, 2->3, ...)
    #   store.commit()        after ota.boot() confirmed the firmware: writes the migrated
    #                         config; returns False (and writes nothing) during a trial boot
    #   store.save(cfg)       the same rule for the app's own changes
    # While a migration is committed the old file is first copied to PATH.v<old schema>, and that
    # copy is removed only after the new file is in place.
    def __init__(self, path, schema, migrate=None, defaults=None, trial_pending=None):
        self.path = path
        self.schema = schema
        self.migrate = migrate
        self.defaults = defaults or {}
        self.pending = None  # the old schema number while a migration is not yet written
        self.notice = None  # "BAD_CONFIG: detail" after load() replaced a bad file or field
        self._trial_pending = trial_pending  # callable; default: ota.trial.pending

    def load(self):
        cfg, bad = load_json(self.path)
        self.notice = None
        self.pending = None
        if type(cfg) is not dict:
            if cfg is not None:
                bad = "%s is not a JSON object" % self.path
            if bad:
                self.notice = notice("BAD_CONFIG", bad)
            cfg = dict(self.defaults)
            cfg["schema"] = self.schema
            return cfg
        old = cfg.get("schema", 1)
        if type(old) is int and 0 < old < self.schema:
            for n in range(old, self.schema):
                cfg = self.migrate(cfg, n) if self.migrate else cfg
                cfg["schema"] = n + 1
            self.pending = old
        for k, v in self.defaults.items():
            if k not in cfg:
                cfg[k] = v
            elif type(cfg[k]) is not type(v) or (type(v) is str and len(cfg[k]) > MAX_STR):
                bad = bad or "%s: bad %s" % (self.path, k)
                cfg[k] = v
        if bad:
            self.notice = notice("BAD_CONFIG", bad)
        return cfg

    def in_trial(self):
        if self._trial_pending is None:
            import ota
            from .trial import pending
            try:
                return pending()
            finally:
                ota.release()
        return self._trial_pending()

    def commit(self):
        # Writes a pending migration; True when the file now has the current schema.
        if self.pending is None:
            return True
        if self.in_trial():
            return False
        cfg = self.load()
        backup = "%s.v%d" % (self.path, self.pending)
        with open(self.path) as f:
            old = f.read(MAX_FILE + 1)  # load() refused a longer file, so none is pending
        with open(backup + ".tmp", "w") as f:
            f.write(old)
        os.rename(backup + ".tmp", backup)
        write_json(self.path, cfg)
        _remove(backup)
        self.pending = None
        return True

    def save(self, cfg):
        if self.in_trial():
            return False
        cfg = dict(cfg)
        cfg["schema"] = self.schema
        write_json(self.path, cfg)
        self.pending = None
        return True
