#!/usr/bin/env bash
# Set everything up, then start the logger (simulated devices where no hardware is found).
# With arguments, they go to `rpi-logger` (e.g. `scripts/start.sh modules`); without, a short demo
# session is recorded and its folder printed (the web UI will take this place).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if (( $# )); then exec .venv/bin/rpi-logger "$@"; fi
exec .venv/bin/rpi-logger record --modules "${RPI_LOGGER_DEMO_MODULES:-cameras,notes}" \
    --duration 10 --trials 1 --label demo
