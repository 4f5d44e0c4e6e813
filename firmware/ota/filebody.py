# ota/filebody.py: a bundle's payload as the install phase reads a payload from the network.
# MIT license; Copyright (c) 2026 otakit contributors
#
# ota.bundle hands the agent a FileClient in place of its HTTP client for one install: get()
# answers for the one blob the bundle holds (its path in the manifest) with a FileBody, which
# reads the payload bytes from the open bundle file straight into the caller's buffer, as
# ota.body reads a response: from `start` (a resumed download's Range: status 206), never past
# the payload's end. A file that ends early, or a read that fails (a card pulled out), is
# SHORT_READ, the progress in flash kept as for a lost connection. Asked for another blob, it
# raises: the install fell back to the raw payload the bundle does not hold, either because this
# device cannot use the bundle's representation (BAD_BUNDLE) or because that representation's
# bytes were refused (HASH_MISMATCH, the representation having been read). Reads from a file
# do not block; ota.download's writer yields to the app between blocks. Allocates a
# memoryview per read, nothing per byte.
from .errors import FetchError, FlashError, ManifestError


def _failed(e):
    return FetchError("SHORT_READ", "reading the bundle: %s" % e)


class FileClient:
    def __init__(self, f, at, size, path, encoding):
        self.f = f
        self.at = at  # the payload's offset in the file
        self.size = size
        self.path = path
        self.encoding = encoding
        self.served = False
        self.date = None

    async def get(self, url, max_body, etag=None, start=0):
        if not url.endswith("/" + self.path):
            if self.served:
                raise FlashError("HASH_MISMATCH", "the bundle's %s payload was refused and it "
                                 "holds no other" % self.encoding)
            raise ManifestError("BAD_BUNDLE", "this device cannot use the bundle's %s payload; "
                                "bundle the raw one" % self.encoding)
        if not 0 <= start < self.size:
            start = 0
        if self.size - start > max_body:
            raise FetchError("BAD_RESPONSE", "body too large: %d" % (self.size - start))
        self.served = True
        try:
            self.f.seek(self.at + start)
        except OSError as e:
            raise _failed(e)
        return FileBody(self.f, start, self.size)


class FileBody:
    # status, length, range_start, total, etag, date: as ota.body.Body's
    def __init__(self, f, start, size):
        self.f = f
        self.status = 206 if start else 200
        self.range_start = start
        self.length = size - start
        self.total = size
        self.etag = None
        self.date = None
        self._left = self.length

    async def readinto(self, buf):
        n = len(buf)
        if n > self._left:
            n = self._left
        if n <= 0:
            return 0
        try:
            k = self.f.readinto(buf if n == len(buf) else memoryview(buf)[:n])
        except OSError as e:
            raise _failed(e)
        if not k:
            raise FetchError("SHORT_READ", "%d payload bytes missing in the bundle" % self._left)
        self._left -= k
        return k

    async def close(self):
        self._left = 0
