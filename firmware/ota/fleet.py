# ota/fleet.py: the fleet fields of a manifest (docs/format.md §2.3 rollout, §2.4 sbom) and
# the staged-rollout decision.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Loaded only when needed, then released: by ota.fields while it checks a body that has fleet
# fields, and by the agent when the manifest is in a staged rollout. A plain update (no rollout,
# no sbom) never loads it. Its own module, apart from ota.fields, so that the manifest checks
# still compile from source in a 48 KB heap (tests/device/test_manifest.py).


# A device's bucket 0..99 in a staged rollout (docs/format.md section 2.3).
def bucket(salt, device_id):
    import hashlib

    d = hashlib.sha256(salt.encode() + b":" + device_id.encode()).digest()
    return ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) % 100


# None when the manifest's rollout (if any) offers it to this device, else why not (a message).
def held(m, device_id):
    r = m.rollout
    if r is None or r["state"] == "active" and bucket(r["salt"], device_id) < r["percent"]:
        return None
    return "%s is in a %s rollout to %d%%; not yet for this device" % (
        m.version, r["state"], r["percent"])


# For ota.fields (loaded, with its checks): the fleet fields of body b onto m, BAD_BODY when
# malformed: rollout (docs/format.md section 2.3) and sbom (2.4; checked, not used on the device).
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
