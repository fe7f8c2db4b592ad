#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the browser tests
# (tests/support/browser.rs drives it over the DevTools protocol).
# Idempotent: does nothing but print the version when it is already there.
# Only Debian's package is used; no browser download from anywhere else.
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-chromium: $CHROMIUM is missing and we are not root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends chromium
fi

if [ ! -x "$CHROMIUM" ]; then
    echo "install-chromium: $CHROMIUM still missing after apt-get install" >&2
    exit 1
fi

# Debian's wrapper script may print a harmless shell warning on stderr
# (its /dev/shm size check); show stderr only if the command fails.
"$CHROMIUM" --version 2>/dev/null || "$CHROMIUM" --version
