# ota/fleet.py: the fleet fields of a manifest (docs/format.md §2.3 rollout, §2.4 sbom, §2.7
# cohort and pins) and the decision whether they offer the release to this device.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Loaded only when needed, then released: by ota.fields while it checks a body that has fleet
# fields, and by ota.vet when the manifest has a staged rollout, a cohort or pins. A plain
# update (no fleet fields) never loads it. Its own module, apart from ota.fields, so that the
# manifest checks still compile from source in a 48 KB heap (tests/device/test_manifest.py).


# A device's bucket 0..99 in a staged rollout (docs/format.md section 2.3).
def bucket(salt, device_id):
    import hashlib

    d = hashlib.sha256(salt.encode() + b":" + device_id.encode()).digest()
    return ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) % 100


# A device's member hash in cohorts and pins (docs/format.md section 2.6): 16 hex digits.
def member(device_id):
    import hashlib
    from binascii import hexlify

    d = hashlib.sha256(b"otakit-member\x00" + device_id.encode()).digest()
    return hexlify(d[:8]).decode()


# None when the manifest's cohort, pins and rollout (if any) offer it to this device, else why
# not: (reason code or None, message).
def held(m, device_id):
    if m.cohort is not None or m.pins is not None:
        me = member(device_id)
        if m.cohort is not None and me not in m.cohort[1]:
            return "NOT_IN_COHORT", "%s is for the cohort %s only" % (m.version, m.cohort[0])
        for p in m.pins or ():
            if p["member"] == me and m.sequence > p["sequence"]:
                return "PINNED", "this device is pinned to sequence %d" % p["sequence"]
    r = m.rollout
    if r is None or r["state"] == "active" and bucket(r["salt"], device_id) < r["percent"]:
        return None
    return None, "%s is in a %s rollout to %d%%; not yet for this device" % (
        m.version, r["state"], r["percent"])


# For check: a list of 1..hi member hashes (16 lowercase hex digits each), else BAD_BODY.
def _members(v, hi, field):
    from ota.jsonfields import HEX, bad, only

    if type(v) is not list or not 1 <= len(v) <= hi:
        bad(field)
    for h in v:
        if type(h) is not str or len(h) != 16 or not only(h, HEX):
            bad(field)
    return v


# For ota.fields (loaded, with its checks): the fleet fields of body b onto m, BAD_BODY when
# malformed: rollout (docs/format.md section 2.3), sbom (2.4; checked, not used on the device),
# cohort and pins (2.6).
def check(m, b):
    from ota.errors import ManifestError
    from ota.jsonfields import HEX, bad, get, integer, name, only, path

    if "rollout" in b:
        v = b["rollout"]
        if type(v) is not dict or v.get("state") not in ("active", "paused", "aborted"):
            bad("rollout")
        m.rollout = {"percent": integer(v, "percent", 0, 100), "salt": name(v, "salt"),
                     "state": v["state"]}
    if "sbom" in b:
        v = b["sbom"]
        if type(v) is not dict:
            bad("sbom")
        h = get(v, "sha256")
        if type(h) is not str or len(h) != 64 or not only(h, HEX):
            bad("sbom.sha256")
        p = get(v, "path")
        try:
            path(p)
        except ManifestError:
            bad("sbom.path")  # the detail names the field
        m.sbom = {"path": p, "size": integer(v, "size", 1, 0x7FFFFFFF), "sha256": h}
    if "cohort" in b:  # at most 64 members (docs/format.md section 2.6)
        v = b["cohort"]
        if type(v) is not dict:
            bad("cohort")
        m.cohort = (name(v, "name"), _members(get(v, "members"), 64, "cohort.members"))
    if "pins" in b:  # at most 32 pins
        v = b["pins"]
        if type(v) is not list or not 1 <= len(v) <= 32:
            bad("pins")
        for p in v:
            if type(p) is not dict:
                bad("pins")
            _members([get(p, "member")], 1, "pins.member")
            integer(p, "sequence", 1, 0x7FFFFFFF)
        m.pins = v
