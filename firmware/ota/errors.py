# ota/errors.py: the agent's error and reason-code scheme.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Errors are grouped by who is at fault (as in python-tuf):
#   ManifestError - the server or signer is wrong (bad signature, wrong board, rollback, ...)
#   FetchError    - the network is at fault (HTTP status, timeout, short read)
#   FlashError    - the device is at fault (no slot, write failed, read-back mismatch)
# Every error carries .reason (a short constant listed in docs/format.md, the same spelling on the
# host) and an optional .detail. Code branches on .reason, never on message text.
# A MemoryError in a phase of an update is the device's too: the agent turns it into FlashError
# NO_MEMORY at the phase's boundary (ota.info.fail), so that it never ends the app.


class OTAError(Exception):
    # .status is the HTTP status code when the server answered (FetchError HTTP), else 0
    def __init__(self, reason, detail="", status=0):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self.status = status

    def __str__(self):
        return self.reason + (": " + self.detail if self.detail else "")


class ManifestError(OTAError):
    pass


class FetchError(OTAError):
    pass


class FlashError(OTAError):
    pass


async def alarm(t, ms):
    # The alarm behind ota.http's TIMEOUT: cancels task t after ms milliseconds, unless it is
    # cancelled first. It lives here, in a module that stays loaded, because a cancelled alarm
    # ends only when asyncio next runs it: until then it keeps its module's code in the heap.
    from asyncio import sleep_ms
    await sleep_ms(ms)
    t.cancel()
