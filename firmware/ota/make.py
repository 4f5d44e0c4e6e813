# ota/make.py: the bodies of the Config's and the Agent's constructors.
# MIT license; Copyright (c) 2026 otakit contributors
#
# ota.config.Config() and ota.agent.Agent() call these (their arguments and attributes are
# described there and in docs/agent.md), so that code which runs once per object is not kept
# loaded with the classes (ota.RESIDENT). The Agent's constructor releases this module again.
try:
    from micropython import const  # pyright: ignore[reportAssignmentType] - CPython fallback below
except ImportError:  # CPython
    def const(x):
        return x

_BLOCK = const(4096)


def config(c, url, product, board, chip_id=None, channel="stable", keys=None, device_id=None,
           ca=None, timeout_ms=15000, health_timeout_ms=30000, max_wbits=12, support_end=None,
           telemetry=True, report_url=None, deadline_s=30, min_rate=4096, model=None):
    c.url = url.rstrip("/")
    c.product = product
    c.model = model
    c.board = board
    c.chip_id = chip_id  # None: running_chip_id() at the first check (ota.check)
    c.channel = channel
    c.keys = keys
    c.device_id = device_id
    c.telemetry = telemetry
    c.report_url = report_url
    c.ca = ca
    c.timeout_ms = timeout_ms
    c.health_timeout_ms = health_timeout_ms
    c.max_wbits = max_wbits
    c.support_end = support_end
    c.deadline_s = deadline_s
    c.min_rate = min_rate


def agent(a, config, esp32=None, http=None, state=None):
    if esp32 is None:
        import esp32
    a.cfg = config
    a.esp32 = esp32
    if state is None:
        from .state import State
        state = State(esp32)
    a.state = state
    a.http = http  # None: a client is made for each phase and released after it
    a.buf = bytearray(_BLOCK)  # the agent's one 4 KB buffer (ota.agent)
    a.on_progress = None  # callable(done_bytes, total_bytes)
    a._etag = None
    a._verdict = None  # ota.check's verdict on the manifest behind _etag (its expires too)
    a._kr_etag = None  # ETag of the keyring document accepted (or found unchanged)
    a._date = None  # Date (Unix s) of the last response from a TLS-verified server
    a._status = {"state": "idle", "reason": None, "detail": "", "progress": 0}
    a._events = []  # telemetry: (event, sequence, reason, ms, version), see ota.report
    if config.device_id is None:  # now, while the heap is fresh: it lives as long as we do
        from .ident import device_id
        device_id(config)
