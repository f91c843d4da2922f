#!/usr/bin/env bash
# Set everything up (test tools included), then run the whole suite: ruff, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
echo "==> ruff"
.venv/bin/ruff check src tests bench
echo "==> pytest"
.venv/bin/python -m pytest "$@"
