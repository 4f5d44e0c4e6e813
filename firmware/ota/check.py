# ota/check.py: the agent's check phase: keys -> manifest -> signature -> policy -> verdict.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Agent.check() loads this module for the phase and releases it afterwards, so none of this code
# is in the heap while a payload streams in. The phase itself loads and releases the keyring
# phase (ota.trusted), the manifest checks (ota.manifest, ota.crypto) in turn. It takes its
# inputs as arguments and returns its result; it writes nothing of the agent's.
from . import release
from .errors import ManifestError


async def run(cfg, st, fetch, buf, now, slot_size, kr_etag, etag, verdict):
    # Returns (verdict, etag, kr_etag): verdict is (state, reason, detail, manifest, error,
    # expires): state "offered" (manifest set), "up_to_date", "held" (detail says why) or
    # "failed" (error the ManifestError); expires that of the manifest judged (None: none, or
    # not verified). etag is the manifest's ETag the verdict belongs to (None: not to be
    # cached). The caller passes back the etag and verdict it cached (a verdict with error
    # None): a 304 repeats that verdict after checking its expires against now() again.
    # fetch(url, etag) -> (status, etag, n) reads a document into buf; now() is the
    # time or None; slot_size bounds the image. Raises OTAError when the network (or the device) is at fault.
    from .trusted import get_doc, trusted_keys
    try:
        keys, kr_etag, changed, held = await trusted_keys(cfg, st, fetch, buf, now, kr_etag)
    except ManifestError as e:
        return ("failed", e.reason, e.detail, None, e, None), None, kr_etag
    finally:
        trusted_keys = None
        release()
    if changed or not verdict:  # judge the manifest (again: under the new keys)
        etag = verdict = None
    try:
        status, new_etag, n = await get_doc(fetch, cfg.manifest_url(), etag)
    finally:
        get_doc = None
    if status == 304 and verdict:  # Not Modified: asked with the cached verdict's ETag (get_doc)
        exp = verdict[5]
        t = now()
        if exp is not None and t is not None and t > exp and verdict[1] != "EXPIRED":
            # also at the installed sequence: a frozen (stale) channel is reported
            e = ManifestError("EXPIRED", "the manifest expired at %d" % exp)
            verdict = ("failed", e.reason, e.detail, None, e, exp)
        return verdict, new_etag, kr_etag
    m = None
    try:
        m = _verify(cfg, buf, n, keys, slot_size)
        keys = None
        v = _vet(cfg, st, m, now(), held)
    except ManifestError as e:
        v = ("failed", e.reason, e.detail, None, e)
    state, reason, detail, offered, err = v
    return (state, reason, detail, offered, err, m.expires if m else None), new_etag, kr_etag


def _verify(cfg, buf, n, keys, slot_size):
    # Signature first, then the body, then what needs no device state (ota.manifest).
    from . import manifest
    try:
        m = manifest.parse(memoryview(buf)[:n], keys)
        manifest.check_target(m, cfg.product, cfg.board, cfg.chip_id, slot_size)
        return m
    finally:
        keys = None
        release()


def _vet(cfg, st, m, now, kr_version):
    # Policy checks that need device state, in the order of docs/format.md §5 (the first
    # failure is reported): the verdict, or ManifestError. Only a manifest that passes every
    # check moves the stored revision and support end (State.accept).
    if m.channel != cfg.channel:
        raise ManifestError("WRONG_CHANNEL", "for %s, not %s" % (m.channel, cfg.channel))
    if m.min_keyring > kr_version:  # the keyring version this device holds (docs/format.md §7.4)
        raise ManifestError("KEYRING_REQUIRED", "the manifest needs keyring version %d, "
                            "this device holds %d" % (m.min_keyring, kr_version))
    if m.expires is not None and now is not None and now > m.expires:
        # also at the installed sequence: a frozen (replayed, stale) channel is reported
        raise ManifestError("EXPIRED", "the manifest expired at %d" % m.expires)
    rev = st.revision(cfg.channel)
    if m.revision < rev:
        raise ManifestError("OLD_REVISION", "revision %d, accepted %d" % (m.revision, rev))
    installed, floor = st.enforced()  # NVS raised to the firmware's own release (ota_origin)
    if m.sequence < installed:
        raise ManifestError("ROLLBACK", "sequence %d is older than the installed %d"
                            % (m.sequence, installed))
    if m.sequence in st.bad_sequences():
        raise ManifestError("KNOWN_BAD", "sequence %d failed its trial boot before"
                            % m.sequence)
    if m.security_version < floor:
        raise ManifestError("SECURITY_FLOOR", "security version %d is below the floor %d"
                            % (m.security_version, floor))
    st.accept(cfg.channel, m.revision, m.support_end)  # every check passed; both signed
    if m.sequence == installed:
        return "up_to_date", None, "", None, None
    if m.rollout is not None:  # a staged rollout (docs/format.md §2.3)
        from .fleet import held
        why = held(m, cfg.device_id)
        release()
        if why:
            return "held", None, why, None, None
    return "offered", None, "%s (sequence %d)" % (m.version, m.sequence), m, None

