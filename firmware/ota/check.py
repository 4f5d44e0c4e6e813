# ota/check.py: the agent's check phase: keys -> manifest -> signature -> policy -> offer.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Agent.check() loads this module for the phase and releases it afterwards, so none of this code
# is in the heap while a payload streams in. The phase itself loads and releases the keyring
# (ota.keyring), the manifest checks (ota.manifest, ota.crypto) and the HTTP client in turn.
from . import release
from .errors import ManifestError, OTAError
from .slot import Slot


async def run(agent):
    # An Offer, or None (up to date, held back, or refused: the reason is in agent.status()).
    agent._set("checking")
    agent._date = None
    etag = offer = keys = None
    try:
        keys = await _trusted_keys(agent)
        status, etag, n = await fetch(agent, agent.cfg.manifest_url(), agent._etag)
        if status == 304 and agent._verdict:
            # Not Modified: the verdict on the manifest verified before stands.
            offer, state, reason, detail = agent._verdict
            agent._set(state, reason, detail)
        else:
            agent._etag = None
            m = _verify(agent, n, keys)
            keys = None
            offer = _vet(agent, m)
            if offer is None:
                agent._set("up_to_date")
            elif offer is False:
                agent._set("held", None, m.held)
                offer = None
            else:
                agent._set("offered", None, "%s (sequence %d)" % (m.version, m.sequence))
            _remember(agent, etag, offer)
    except ManifestError as e:
        agent._fail(e)
        _remember(agent, etag, None)
    except OTAError as e:
        agent._fail(e)
    return offer


def _remember(agent, etag, offer):
    agent._etag = etag
    s = agent._status
    agent._verdict = (offer, s["state"], s["reason"], s["detail"]) if etag else None


async def fetch(agent, url, etag):
    # A small document (manifest, keyring) into agent.buf: (status, etag, length).
    client = agent._client()
    try:
        r = await client.get_small(url, agent.buf, etag)
        if url.startswith("https://"):  # only a TLS-verified server's Date is believed
            from .httpdate import http_time
            agent._date = http_time(getattr(client, "date", None))
            release("httpdate")
        return r
    finally:
        agent._done_with(client)


async def _trusted_keys(agent):
    from .keyring import trusted_keys
    try:
        return await trusted_keys(agent)
    finally:
        release("keyring", "crypto", "ed25519", "sha512", "strictjson")


def _verify(agent, n, keys):
    # Signature first, then the body, then what needs no device state (ota.manifest).
    from . import manifest
    cfg = agent.cfg
    try:
        m = manifest.parse(memoryview(agent.buf)[:n], keys)
        manifest.check_target(m, cfg.product, cfg.board, cfg.chip_id, Slot(agent.esp32).size)
        return m
    finally:
        keys = None
        release("manifest", "strictjson", "fields", "fleet")


def _vet(agent, m):
    # Policy checks that need device state. Raises ManifestError; None means up to date,
    # False held back by a staged rollout.
    st = agent.state
    now = agent.now()
    if m.expires is not None and now is not None and now > m.expires:
        # also at the installed sequence: a frozen (replayed, stale) channel is reported
        raise ManifestError("EXPIRED", "the manifest expired at %d" % m.expires)
    st.set_blob("eos", m.support_end.encode())  # signed; no write when unchanged
    installed = st.get("seq")
    if m.sequence == installed:
        return None
    if m.sequence < installed:
        raise ManifestError("ROLLBACK", "sequence %d is older than the installed %d"
                            % (m.sequence, installed))
    if m.sequence in st.bad_sequences():
        raise ManifestError("KNOWN_BAD", "sequence %d failed its trial boot before"
                            % m.sequence)
    floor = st.get("floor")
    if m.security_version < floor:
        raise ManifestError("SECURITY_FLOOR", "security version %d is below the floor %d"
                            % (m.security_version, floor))
    if m.rollout is not None:  # a staged rollout (docs/format.md §2.3)
        from .fleet import held
        m.held = held(m, agent.cfg.device_id)
        release("fleet")
        if m.held:
            return False
    from .agent import Offer  # resident: an offer outlives this module
    return Offer(m, m.security)
