#!/usr/bin/env bash
# Debian packages the tests drive for real: Chromium at /usr/bin/chromium for the browser
# tests (never a downloaded one), nginx for the deployment's proxy config in front of daphne.
# Idempotent: installs with apt (root or sudo) only what is missing. The tests run their own
# nginx on a free loopback port; a system nginx the package may start is not used.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "missing ${missing[*]} and apt-get is not available: install them" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing Debian's ${missing[*]} for the tests"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
test -x /usr/bin/chromium
