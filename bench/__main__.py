"""`make bench`: every benchmark, each writing its section of docs/performance.md (`bench.peer`
only with OTAKIT_PEER_DIR set to a checkout of micropython-esp32-ota; it skips otherwise)."""

from __future__ import annotations

import sys

from bench import (agent, app, fleet_load, flash_write, latency, payloads, peer, resumable,
                   verify)


def main() -> int:
    """Run the benchmarks in turn; each prints its table and updates docs/performance.md."""
    for module in (verify, flash_write, agent, app, payloads, resumable, peer, latency,
                   fleet_load):
        print(f"== {module.__name__} ==", flush=True)
        rc = module.main(["--write-docs"])
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
