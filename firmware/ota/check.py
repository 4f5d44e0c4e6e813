# ota/check.py: the agent's check phase: keys -> manifest -> signature -> policy -> verdict.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Agent.check() loads this module for the phase and releases it afterwards, so none of this code
# is in the heap while a payload streams in. The phase itself loads and releases the keyring
# phase (ota.trusted), the manifest checks (ota.manifest, ota.crypto, the algorithm's module:
# each alone in the heap while the signature is checked) and the checks that need device state
# (ota.vet) in turn. It takes its inputs as arguments and returns its result; it writes nothing
# of the agent's.
from . import release
from .errors import ManifestError


async def run(cfg, st, fetch, buf, now, slot_size, kr_etag, etag, verdict):
    # Returns (verdict, etag, kr_etag): verdict is (state, reason, detail, manifest, error,
    # expires): state "offered" (manifest set), "up_to_date", "held" (detail says why) or
    # "failed" (error the ManifestError); expires that of the manifest judged (None: none, or
    # not verified). etag is the manifest's ETag the verdict belongs to (None: not to be
    # cached). The caller passes back the etag and verdict it cached (a verdict with error
    # None): a 304 repeats that verdict after checking its expires against now() again.
    # fetch(url, etag) -> (status, etag, n) reads a document into buf (a 304 only to a request
    # with an etag: Agent's fetch, ota.agentops); now() is the time or None; slot_size bounds
    # the image. Raises OTAError when the network (or the device) is at fault.
    from .trusted import trusted_keys
    try:
        keys, kr_etag, changed, held = await trusted_keys(cfg, st, fetch, buf, now, kr_etag)
    except ManifestError as e:
        return ("failed", e.reason, e.detail, None, e, None), None, kr_etag
    finally:
        trusted_keys = None
        release()
    if changed or not verdict:  # judge the manifest (again: under the new keys)
        etag = verdict = None

    status, new_etag, n = await fetch(
        "%s/%s/%s/%s/manifest" % (cfg.url, cfg.product, cfg.board, cfg.channel), etag)
    # The fetch's release() collected while its HTTP client was still referenced (the fetch's
    # frames hold it until they return): collect it now, so that what the signature check
    # allocates first does not fill the holes around it (RSA needs three 770-byte blocks).
    import gc
    gc.collect()
    if status == 304 and verdict:  # Not Modified: asked with the cached verdict's ETag
        from .vet import again
        return again(verdict, now()), new_etag, kr_etag
    if keys is None:  # the baked keys (no ROOTS): read only now, not held during the fetch
        from .trusted import baked
        keys = baked(cfg)
        baked = None
    m = None
    try:
        m = _verify(memoryview(buf)[:n], keys)
        from .vet import vet  # not in the heap while the signature is checked

        v = vet(cfg, st, m, now(), held, slot_size)
    except ManifestError as e:
        v = ("failed", e.reason, e.detail, None, e, m.expires if m else None)
    return v, new_etag, kr_etag


def _verify(data, keys):
    # ota.manifest.parse's steps: the signature first, then the body. ota.manifest is loaded
    # only before and after the signature check, and ota.crypto (which names the algorithm's
    # module, checking types and lengths) is released before that module is loaded, so only the
    # algorithm's code is in the heap during its arithmetic.
    try:
        from .manifest import signed
        alg, key_id, key, end, digest = signed(data, keys)
        signed = keys = None
        release()
        sig = data[end:]
        from .crypto import module
        f = module(alg, key, digest, sig)
        module = None
        release()
        ok = f is not None and __import__(f, None, None, ("verify",), 0).verify(key, digest, sig)
        if not ok:
            raise ManifestError("BAD_SIGNATURE", "")
        f = key = sig = None
        release()
        from .manifest import body
        return body(data, alg, key_id, end)
    finally:
        body = None
        release()
