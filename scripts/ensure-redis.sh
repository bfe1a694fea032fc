#!/usr/bin/env bash
# Installs the Redis server binary when it is absent; the test suite starts its own
# private redis-server on a free port, so only the binary is needed.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
echo "redis-server not found: installing it from the system's packages" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
else
    echo "cannot install redis-server: no apt-get; install Redis 6+ and re-run" >&2
    exit 1
fi
