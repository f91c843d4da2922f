#!/usr/bin/env bash
# Set everything up, then start the logger (simulated devices where no hardware is found).
# Extra arguments go to `rpi-logger`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if (( $# )); then exec .venv/bin/rpi-logger "$@"; fi
exec .venv/bin/rpi-logger
