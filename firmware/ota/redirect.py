# ota/redirect.py: where a redirect of ota.http.HTTPClient.get() goes.
# MIT license; Copyright (c) 2026 otakit contributors
#
# Loaded only when a server redirects (ota.response.get), so that no request carries this code
# otherwise. The invariants (at most 3 redirects, never from https to http) are ota.http's.
from ota.errors import FetchError
from ota.httpparse import parse_url


# Where a redirect with Location loc goes from (tls, host, port): (tls, host, port, path).
# Raises FetchError BAD_RESPONSE without a Location, for a bad one, or from https to http.
def redirect(loc, tls, host, port):
    if not loc:
        raise FetchError("BAD_RESPONSE", "redirect without Location")
    if loc.startswith("/") and not loc.startswith("//"):  # same server, new path
        return tls, host, port, parse_url("http://x" + loc, "BAD_RESPONSE")[3]
    t = parse_url(loc, "BAD_RESPONSE")
    if tls and not t[0]:
        raise FetchError("BAD_RESPONSE", "redirect from https to http refused")
    return t
