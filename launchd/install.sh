#!/usr/bin/env bash
# Install kokorod as a login service (launchd on macOS, systemd --user on Linux).
set -euo pipefail
exec python3 -m kokorod service install "$@"
