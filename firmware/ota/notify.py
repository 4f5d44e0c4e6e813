# ota/notify.py: what the user is told about updates, in plain words.
# MIT license; Copyright (c) 2026 otakit contributors
#
# A Notice is handed to the app's callback (Updater(on_notice=...)); the app shows it however
# the product can: an LED pattern, a beep, a push message through its phone app. notice.text is
# one or two plain English sentences; the other attributes carry the facts for the app's own
# wording. Kinds:
#   AVAILABLE       an update was found (version, notes, severity and risk if it fixes security)
#   POSTPONED       the update waits: the user postponed it, or outside the maintenance window,
#                   or automatic installing is off (then the user installs it by hand)
#   DOWNLOADED      the update is downloaded, checked and ready
#   DISRUPTION      the device restarts in `seconds_ahead` s and is down for about `downtime` s
#   APPLIED         the new firmware started and passed its checks
#   FAILED          an update could not be installed (reason, detail)
#   ROLLED_BACK     the new firmware failed its checks; the previous one runs again (reason)
#   END_OF_SUPPORT  the support period ended on support_end: no more security updates
AVAILABLE = "available"
POSTPONED = "postponed"
DOWNLOADED = "downloaded"
DISRUPTION = "disruption"
APPLIED = "applied"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
END_OF_SUPPORT = "end_of_support"

_SEVERITY = {
    "low": "a minor security problem",
    "medium": "a security problem",
    "high": "a serious security problem",
    "critical": "a critical security problem; please let it install as soon as you can",
}


class Notice:
    # Attributes: kind, text, and whichever apply: version, sequence, notes, severity, risk,
    # reboot, downtime, seconds_ahead, until, reason, detail, support_end.
    def __init__(self, kind, **info):
        self.kind = kind
        for k in ("version", "sequence", "notes", "severity", "risk", "reboot", "downtime",
                  "seconds_ahead", "until", "reason", "detail", "support_end"):
            setattr(self, k, info.get(k))
        self.text = _text(kind, info)

    def __repr__(self):
        return "Notice(%s: %s)" % (self.kind, self.text)


def _text(kind, i):
    v = i.get("version") or "?"
    if kind == AVAILABLE:
        if i.get("severity"):
            t = "A security update (%s) is available. It fixes %s: %s." % (
                v, _SEVERITY.get(i["severity"], "a security problem"), i.get("risk") or "")
        else:
            t = "An update (%s) is available." % v
        if i.get("notes"):
            t += " What is new: %s" % i["notes"]
        return t
    if kind == POSTPONED:
        return "The update to %s waits: %s." % (v, i.get("detail") or "postponed")
    if kind == DOWNLOADED:
        return "The update to %s is downloaded and checked." % v
    if kind == DISRUPTION:
        return ("The device restarts in %d seconds to finish the update to %s and will not "
                "respond for about %d seconds." % (i.get("seconds_ahead") or 0, v,
                                                   i.get("downtime") or 0))
    if kind == APPLIED:
        return "The update to %s is installed and working." % v
    if kind == FAILED:
        return "The update to %s could not be installed (%s); the device keeps working and " \
               "tries again later." % (v, i.get("reason") or "?")
    if kind == ROLLED_BACK:
        return "The new firmware did not start correctly (%s), so the previous version runs " \
               "again. The device keeps working." % (i.get("reason") or "?")
    if kind == END_OF_SUPPORT:
        return "Security updates for this device ended on %s. It keeps working, but it no " \
               "longer gets fixes for new security problems." % i.get("support_end")
    return kind
