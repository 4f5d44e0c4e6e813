"""otakit host toolkit: keys, release signing, release repository, server and simulation."""

__version__ = "0.1.0"
