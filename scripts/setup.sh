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
