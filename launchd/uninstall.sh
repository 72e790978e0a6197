#!/usr/bin/env bash
# Remove the kokorod login service.
set -euo pipefail
exec python3 -m kokorod service uninstall "$@"
