# ota/httpdate.py: the HTTP Date header as Unix time (a module of its own: loaded only for https).
# MIT license; Copyright (c) 2026 otakit contributors

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# Unix seconds of an HTTP IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), or None.
def http_time(s):
    p = s.split() if type(s) is str else ()
    if len(p) != 6 or p[5] != "GMT" or p[2] not in _MONTHS or len(p[4]) != 8:
        return None
    t = p[4].split(":")
    try:
        d, y = int(p[1]), int(p[3])
        hh, mm, ss = int(t[0]), int(t[1]), int(t[2])
    except (ValueError, IndexError):
        return None
    mo = _MONTHS.index(p[2]) + 1
    if not (1 <= d <= 31 and 1970 <= y <= 2105 and hh < 24 and mm < 60 and ss < 61):
        return None
    y -= mo <= 2  # days from civil (proleptic Gregorian), March-based year
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hh * 3600 + mm * 60 + ss
