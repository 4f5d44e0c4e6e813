# ota/trusted.py: the check's keyring phase: which release keys manifests are checked against.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Firmware without ROOTS: the frozen KEYS (or Config.keys); its keyring version is 0. Firmware
# with ROOTS trusts manifests only under a keyring document signed by the frozen ROOTS that it
# accepted (ota.keyring.parse) and that has not expired: it fetches <url>/<product>/keyring at
# every check (ETag: usually a 304), keeps the accepted one in ota.state (kr_k, kr_v), and
# refuses with KEYRING_REQUIRED when the server has none (404) or none was ever accepted; the
# baked KEYS are never used then (docs/format.md §7.4). Loaded by ota.check only while it runs;
# ota.check releases it before it fetches the manifest, and without ROOTS loads it again after
# that fetch for baked(): the baked keys are not in the heap while the manifest is fetched.
import sys

from .errors import FetchError, ManifestError


async def trusted_keys(cfg, st, fetch, buf, now, kr_etag):
    # Returns (keys, kr_etag, changed, version): changed when a newer keyring was accepted just
    # now; version that of the keyring the keys come from (0: the baked keys, no ROOTS, and then
    # keys is None: baked(cfg) gives them). fetch(url, etag) -> (status, etag, n) reads the
    # document into buf (a 304 only to a request with an etag); now() the time or None.
    try:
        import ota_keys

        roots = getattr(ota_keys, "ROOTS", None)
        threshold = getattr(ota_keys, "THRESHOLD", 1)
        env = getattr(ota_keys, "ENV", "production")
    except ImportError:
        if cfg.keys is None:
            raise
        roots = None
    finally:
        sys.modules.pop("ota_keys", None)
    if not roots:
        return None, kr_etag, False, 0
    # with ROOTS, only an accepted keyring's keys are trusted
    changed = False
    held = st.keyring(env)[0]
    try:
        url = "%s/%s/keyring" % (cfg.url, cfg.product)
        status, etag, n = await fetch(url, kr_etag if held else None)
    except FetchError as e:
        if e.status != 404:
            raise
        # a missing keyring document never extends trust (nor keeps the one held alive)
        raise ManifestError("KEYRING_REQUIRED", "the server has no keyring document (404)")
    if status == 200:
        import gc
        gc.collect()  # the fetch's HTTP client, referenced until it returned (as in ota.check)
        changed = _accept(cfg, st, buf, n, roots, threshold, env, now())
        kr_etag = etag
    roots = None
    version, expires, _ = st.keyring(env)
    if not version:
        raise ManifestError("KEYRING_REQUIRED", "this firmware trusts manifests only under a "
                            "keyring; none was accepted")
    t = now()  # the keyring held expires whatever the server answers (a 304 included)
    if t is not None and t > expires:
        raise ManifestError("EXPIRED", "the keyring (version %d) expired at %d"
                            % (version, expires))
    from .keyring import unpack
    n = st.keyring_keys(buf)
    return unpack(memoryview(buf)[:n]), kr_etag, changed, version


def baked(cfg):
    # The release keys of firmware without ROOTS: Config.keys, else the frozen KEYS.
    if cfg.keys is not None:
        return cfg.keys
    import ota_keys

    try:
        return ota_keys.KEYS
    finally:
        sys.modules.pop("ota_keys", None)


def _accept(cfg, st, buf, n, roots, threshold, env, now):
    # Verify the keyring document in buf[:n]; store it when newer than the one held. Returns
    # whether it was stored.
    from .keyring import pack, parse
    version, _, digest = st.keyring(env)
    k = parse(memoryview(buf)[:n], roots, threshold, cfg.product, env, digest)
    if k is None:
        return False  # the keyring this device holds
    if k.version < version or (k.version == version and k.digest != digest):
        raise ManifestError("KEYRING_ROLLBACK", "keyring version %d, this device accepted "
                            "version %d" % (k.version, version))
    if now is not None and now > k.expires:
        raise ManifestError("EXPIRED", "the keyring (version %d) expired at %d"
                            % (k.version, k.expires))
    st.save_keyring(pack(k.keys), k.version, k.expires, k.digest, env)
    return True
