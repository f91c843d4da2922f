#!/usr/bin/env bash
# Set everything up, then start the logger: the master with every enabled module and the web UI
# (simulated devices where no hardware is found, shown as such); it prints the URL to open.
#   scripts/start.sh                    the logger on http://127.0.0.1:8080/
#   scripts/start.sh --host 0.0.0.0     reachable from a phone (prints a URL with the token)
#   scripts/start.sh --demo             a short headless demo recording; prints its folder
#   scripts/start.sh verify SESSION     any other `rpi-logger` command
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ "${1:-}" == "--demo" ]]; then
    exec .venv/bin/rpi-logger record --modules "${RPI_LOGGER_DEMO_MODULES:-cameras,eyetracker,audio,notes}" \
        --duration 10 --trials 1 --label demo
fi
if [[ $# -eq 0 || "${1:-}" == -* ]]; then exec .venv/bin/rpi-logger serve "$@"; fi
exec .venv/bin/rpi-logger "$@"
