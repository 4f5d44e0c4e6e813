# ota/check.py: the agent's check phase: keys -> manifest -> signature -> policy -> verdict.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Agent.check() loads this module for the phase and releases it afterwards, so none of this code
# is in the heap while a payload streams in. The phase itself loads and releases the keyring
# phase (ota.trusted), the manifest checks (ota.manifest, ota.crypto) and the checks that need
# device state (ota.vet) in turn. It takes its inputs as arguments and returns its result; it
# writes nothing of the agent's.
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
        exp = verdict[5]
        t = now()
        if exp is not None and t is not None and t > exp and verdict[1] != "EXPIRED":
            # also at the installed sequence: a frozen (stale) channel is reported
            e = ManifestError("EXPIRED", "the manifest expired at %d" % exp)
            verdict = ("failed", e.reason, e.detail, None, e, exp)
        return verdict, new_etag, kr_etag
    m = None
    from . import manifest  # only now: its code is not in the heap while the manifest is fetched
    try:
        m = _verify(cfg, buf, n, keys, slot_size, manifest)
        keys = manifest = None
        from .vet import vet  # not in the heap while the signature is checked

        v = vet(cfg, st, m, now(), held)
    except ManifestError as e:
        v = ("failed", e.reason, e.detail, None, e)
    state, reason, detail, offered, err = v
    return (state, reason, detail, offered, err, m.expires if m else None), new_etag, kr_etag


def _verify(cfg, buf, n, keys, slot_size, manifest):
    # Signature first, then the body, then what needs no device state (manifest: ota.manifest).
    try:
        m = manifest.parse(memoryview(buf)[:n], keys)
        if cfg.chip_id is None:  # the running image's (ota/config.py), read once
            from .config import running_chip_id; cfg.chip_id = running_chip_id()  # noqa: E702
        manifest.check_target(m, cfg.product, cfg.board, cfg.chip_id, slot_size)
        return m
    finally:
        keys = None
        release()
