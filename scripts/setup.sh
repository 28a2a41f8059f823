#!/usr/bin/env bash
# Sets up edgepara on Debian/Ubuntu/Raspberry Pi OS: system packages, a virtual environment in .venv,
# and the package itself. Usage: scripts/setup.sh [runtime|train|test]   (default: runtime)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-runtime}"

apt_packages=(python3-venv python3-dev libportaudio2 libsndfile1 alsa-utils)
venv_flags=()
# 32-bit Raspberry Pi OS: PyPI has no armv7l wheels of numpy<2, scipy or cffi, and webrtcvad compiles from
# source; Debian's builds are used instead (checked under emulation: scripts/check-arm.sh armhf).
if [ "$(uname -m)" = armv7l ]; then
  apt_packages+=(python3-numpy python3-scipy python3-cffi build-essential)
  venv_flags=(--system-site-packages)
fi
case "$profile" in
  # build-essential: resemblyzer depends on the original webrtcvad, which compiles from source
  train|test) apt_packages+=(build-essential espeak-ng pulseaudio pulseaudio-utils libasound2-plugins) ;;
esac
# mosquitto: the MQTT sink's tests start their own broker from /usr/sbin/mosquitto on a free port;
# systemd: systemd-analyze verifies the service unit in deploy/
if [ "$profile" = test ]; then apt_packages+=(mosquitto systemd); fi
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian starts the broker it just installed as a service; the tests need only the binary, so do not leave a
  # network service behind that nobody asked for (one that was installed before is left alone).
  if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null \
      && systemctl is-enabled --quiet mosquitto 2>/dev/null; then
    $sudo_cmd systemctl disable --now mosquitto >/dev/null 2>&1 || true
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv "${venv_flags[@]}" .venv
.venv/bin/pip install -q --upgrade pip
case "$profile" in
  runtime) .venv/bin/pip install -q -e . ;;
  train|test)
    # A CPU build of torch first (resemblyzer pulls torch; unpinned, pip would fetch a multi-GB CUDA build).
    .venv/bin/pip install -q 'setuptools<81' torch==2.13.0
    .venv/bin/pip install -q -e ".[train,test]" ;;
  *) echo "usage: scripts/setup.sh [runtime|train|test]" >&2; exit 2 ;;
esac
# A real Home Assistant for tests/test_ha_discovery.py, in its own environment (.ha-venv): its 2025.4 release needs
# Python 3.13, which this machine may not have; then that test says so and skips. The frontend package keeps it out
# of recovery mode; paho-mqtt at the version its MQTT integration pins.
if [ "$profile" = test ] && [ ! -x .ha-venv/bin/hass ]; then
  py313=""
  for candidate in python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
    # a pyenv shim answers `command -v` even where that version is not selected: ask the interpreter itself
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then py313="$candidate"; break; fi
  done
  if [ -n "$py313" ]; then
    rm -rf .ha-venv && "$py313" -m venv .ha-venv
    .ha-venv/bin/pip install -q homeassistant==2025.4.4 paho-mqtt==2.1.0 home-assistant-frontend==20250411.0
  else
    echo "setup: no python3.13, so no Home Assistant for its discovery test (that test will be skipped)" >&2
  fi
fi
