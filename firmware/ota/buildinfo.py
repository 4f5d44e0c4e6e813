# ota/buildinfo.py: what kind of build the running firmware is, and which update URLs it takes.
# MIT license; Copyright (c) 2026 otakit contributors
#
# The firmware's frozen module ota_origin (written by `otakit build`, docs/agent.md) says
# DEVELOPMENT = True for a development build (`otakit build --dev`); a product build takes only
# https update URLs (ETSI EN 303 645 5.5-1). Not resident: an app loads it while it validates its
# configuration (config_refusal), then releases it (ota.release()), so that none of this code
# stays in the heap while an update runs.

_MAX_CA = 4096  # bytes of a CA certificate file


def development():
    # True on a development build: the frozen module ota_origin says DEVELOPMENT = True, or
    # there is none (a development board, the agent installed by mip or otakit deploy; otakit
    # build always freezes one). An ota_origin without the name is a product build.
    import sys
    try:
        import ota_origin
        return getattr(ota_origin, "DEVELOPMENT", False) is True
    except ImportError:
        return True
    finally:
        sys.modules.pop("ota_origin", None)


def url_refusal(url):
    # None when this build may fetch updates from url; else the detail of a BAD_CONFIG refusal:
    # a product build takes only https:// (EN 303 645 5.5-1), http:// only a development build.
    if url[:8] == "https://":
        return None
    if url[:7] == "http://":
        return None if development() else "url is http:// on a product build (https required)"
    return "url is neither https:// nor http://"


def config_refusal(cfg):
    # Check an app's update settings dict cfg ("url", and "ca": the path of a DER CA certificate
    # file, replaced in cfg by its bytes). None when usable; else the BAD_CONFIG detail.
    refused = url_refusal(cfg["url"])
    if refused:
        return "ota_config.json: " + refused
    if "ca" not in cfg:
        return None
    path = cfg["ca"]
    try:
        with open(path, "rb") as f:
            der = f.read(_MAX_CA + 1)
    except OSError:
        return "ota_config.json: no CA certificate file %s" % path
    if not der or len(der) > _MAX_CA:
        return "ota_config.json: CA certificate %s is empty or over %d bytes" % (path, _MAX_CA)
    cfg["ca"] = der
    return None
