#!/usr/bin/env bash
# Prepare a fresh Debian / Raspberry Pi OS machine for RPi Logger:
# system packages (apt-get, only those missing), a virtual environment in .venv, and the package.
# Usage: scripts/setup.sh [--dev]      (--dev adds the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# ffmpeg: the `ffmpeg` encoder option and the ffprobe checks in the tests.
# libportaudio2 and libsndfile1: sounddevice and soundfile load them (the Audio module).
packages=(ffmpeg libportaudio2 libsndfile1)
# chromium: the browser tests drive Debian's Chromium through Playwright (never its download).
(( dev )) && packages+=(chromium)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
command -v python3 >/dev/null 2>&1 || packages+=(python3 python3-venv)
venv_flags=()
if grep -qs "Raspberry Pi" /proc/device-tree/model; then
    # picamera2 is shipped by Raspberry Pi OS; the venv sees it through system site-packages.
    packages+=(python3-picamera2)
    venv_flags+=(--system-site-packages)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
    echo "==> installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "==> creating .venv"
    python3 -m venv "${venv_flags[@]}" .venv
fi
target="."
(( dev )) && target=".[dev]"
echo "==> installing rpi-logger into .venv"
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$target"
