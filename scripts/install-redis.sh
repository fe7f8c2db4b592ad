#!/usr/bin/env bash
# Install Debian's redis-server (and redis-cli) for the cluster tests
# (tests/support/redis.rs starts its own on a loopback port; no service is
# used). Idempotent: prints the version when it is already there.
set -euo pipefail

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-redis: redis-server is missing and we are not root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends redis-server redis-tools
fi

redis-server --version
