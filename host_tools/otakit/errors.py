"""The host toolkit's error family.

Every failure a user can cause is an `OtakitError` with a one-line message; the CLI catches it once,
prints ``otakit: <message>`` to stderr and exits 1. Library code never prints and carries on.
"""

from __future__ import annotations


class OtakitError(Exception):
    """Base of every error the CLI reports as one line.

    Attributes:
        reason: a short stable code (the same spelling as the device's reason codes where one
            applies, see docs/format.md), for tests and scripts to branch on.
    """

    def __init__(self, message: str, reason: str = "ERROR") -> None:
        super().__init__(message)
        self.reason = reason


class KeyFileError(OtakitError):
    """A key file is missing, unreadable, of the wrong kind, or needs a passphrase."""


class ImageError(OtakitError):
    """An app image a device would not boot (bad magic, wrong chip, firmware.bin, too big)."""


class ManifestError(OtakitError):
    """A manifest envelope or body is malformed, unsigned, or signed by an unknown key."""


class RepoError(OtakitError):
    """The release repository is missing, inconsistent, or a write would move trust backwards."""


class BoardError(OtakitError):
    """An unknown board, or a board definition that cannot be read."""


class ToolError(OtakitError):
    """An external tool (esptool, mpremote, the MicroPython unix port) failed."""
