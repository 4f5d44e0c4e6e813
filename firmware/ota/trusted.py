# ota/trusted.py: the check's keyring phase: which release keys manifests are checked against.
# MIT license; Copyright (c) 2026 otakit contributors
#
# The frozen KEYS (or Config.keys) until a keyring document signed by the frozen ROOTS has been
# accepted (ota.keyring.parse), then that keyring's keys, kept by ota.state (kr_k, kr_v). With
# ROOTS, fetches <url>/<product>/keyring at every check (ETag: usually a 304). Loaded by
# ota.check only while it runs.
import sys

from .errors import FetchError, ManifestError


async def trusted_keys(cfg, st, fetch, buf, now, kr_etag):
    # Returns (keys, kr_etag, changed): changed when a newer keyring was accepted just now.
    # fetch(url, etag) -> (status, etag, n) reads the document into buf; now() the time or None.
    try:
        import ota_keys

        keys = cfg.keys if cfg.keys is not None else ota_keys.KEYS
        roots = getattr(ota_keys, "ROOTS", None)
        threshold = getattr(ota_keys, "THRESHOLD", 1)
        env = getattr(ota_keys, "ENV", "production")
    except ImportError:
        if cfg.keys is None:
            raise
        keys, roots = cfg.keys, None
    finally:
        sys.modules.pop("ota_keys", None)
    if not roots:
        return keys, kr_etag, False
    changed = False
    try:
        status, etag, n = await fetch(cfg.keyring_url(), kr_etag)
    except FetchError as e:
        if e.status != 404:
            raise
        status, etag, n = 404, None, 0  # none published: keep what was accepted before
    if status == 200:
        changed = _accept(cfg, st, buf, n, roots, threshold, env, now())
        kr_etag = etag
    roots = None
    version, expires, _ = st.keyring(env)
    if not version:
        return keys, kr_etag, changed
    t = now()
    if t is not None and t > expires:
        raise ManifestError("EXPIRED", "the keyring (version %d) expired at %d"
                            % (version, expires))
    from .keyring import unpack
    n = st.keyring_keys(buf)
    return unpack(memoryview(buf)[:n]), kr_etag, changed


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
