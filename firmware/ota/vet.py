# ota/vet.py: the check phase's checks after the signature: the target (ota.manifest's
# check_target) and the policy checks that need device state (ota.check); again() for a 304.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Loaded by ota.check once the manifest's signature and fields hold (or the server answered
# 304 to the cached verdict's ETag), so that this code is not in the heap while the manifest is
# fetched or its signature is checked. The manifest it offers is a copy holding only the
# fields the install, the update loop and the app read: it lives through the install.
from . import release
from .errors import ManifestError


def vet(cfg, st, m, now, kr_version, slot_size):
    # What this device must not install whatever its state (ota.manifest.check_target), then
    # the policy checks that need device state, in the order of docs/format.md §5 (the first
    # failure is reported): the verdict (as ota.check.run returns it, expires that of m), or
    # ManifestError. Only a manifest that passes every check moves the stored revision and
    # support end (State.accept).
    if cfg.chip_id is None:  # the running image's (ota/config.py), read once
        from .config import running_chip_id; cfg.chip_id = running_chip_id()  # noqa: E702
    from .manifest import check_target
    check_target(m, cfg.product, cfg.board, cfg.chip_id, slot_size)
    check_target = None
    release()
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
    if m.sequence < installed and not m.revert:  # a signed revert may go back (§2.6)
        raise ManifestError("ROLLBACK", "sequence %d is older than the installed %d"
                            % (m.sequence, installed))
    m.revert = m.sequence < installed  # at or above it a revert is a release like any other
    if m.sequence in st.bad_sequences():
        raise ManifestError("KNOWN_BAD", "sequence %d failed its trial boot before"
                            % m.sequence)
    if m.security_version < floor:
        raise ManifestError("SECURITY_FLOOR", "security version %d is below the floor %d"
                            % (m.security_version, floor))
    st.accept(cfg.channel, m.revision, m.support_end)  # every check passed; both signed
    if m.sequence == installed:
        return "up_to_date", None, "", None, None, m.expires
    if m.rollout is not None or m.cohort is not None or m.pins is not None:
        from .fleet import held  # a staged rollout, a cohort, pins (docs/format.md §2.3, §2.7)
        why = held(m, cfg.device_id)
        release()
        if why:
            return "held", why[0], why[1], None, None, m.expires
    if m.crypt is not None:  # an encrypted payload (docs/format.md §2.8): this device's key
        from .contentkey import take
        try:
            take(m)  # NO_CONTENT_KEY, or the key into m.crypt for the install
        finally:
            release()
    # The offer: a Manifest with the fields the install reads (ota.agent, ota.download,
    # ota.encoded, ota.revert) and the update loop's (ota.updater: notes, security,
    # disruption), docs/agent.md; not every signed field.
    o = type(m)()
    for k in ("version", "sequence", "security_version", "size", "sha256", "path", "encoding",
              "revert", "payloads", "crypt", "chip_id", "notes", "security", "disruption"):
        setattr(o, k, getattr(m, k))
    return "offered", None, "%s (sequence %d)" % (m.version, m.sequence), o, None, m.expires


def again(verdict, now):
    # The cached verdict, repeated on a 304 (ota.check): unless it expired since (also at the
    # installed sequence: a frozen, stale channel is reported), then EXPIRED.
    exp = verdict[5]
    if exp is not None and now is not None and now > exp and verdict[1] != "EXPIRED":
        e = ManifestError("EXPIRED", "the manifest expired at %d" % exp)
        return "failed", e.reason, e.detail, None, e, exp
    return verdict
