#!/usr/bin/env bash
# ensure-tool.sh COMMAND [PACKAGE]: installs PACKAGE (default: COMMAND) from the system's
# packages when COMMAND is absent. `make test` needs redis-server (the suite starts its own
# private server on a free port) and chromium (pages are tested in a real browser);
# `make bench` needs wrk (the HTTP load generator).
set -euo pipefail
command_name="$1"
package="${2:-$1}"
if command -v "$command_name" >/dev/null 2>&1; then
    exit 0
fi
echo "$command_name not found: installing $package from the system's packages" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$package" >/dev/null
else
    echo "cannot install $package: no apt-get; install it and re-run" >&2
    exit 1
fi
