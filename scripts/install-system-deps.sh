#!/usr/bin/env bash
# Debian packages the fleet tests need: nginx (static publishing and the load test), chromium and
# its driver (the dashboard's browser test), SoftHSM2 (PKCS#11 signing), PostgreSQL (the
# telemetry store on a real server). Idempotent: does nothing
# when they are all present. Needs root (as in CI); elsewhere it says what to install and exits 0,
# and the tests that need a missing program skip with the reason.
set -euo pipefail
PACKAGES=(nginx chromium chromium-driver softhsm2 postgresql)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "install-system-deps: missing ${missing[*]}; install them (Debian: apt-get install" \
         "${missing[*]}) or the tests that need them skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
