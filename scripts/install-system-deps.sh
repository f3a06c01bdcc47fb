#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the project needs, only those that are missing.
#   portaudio19-dev          headers to build pyaudio (microphone capture)
#   pulseaudio(-utils),
#   libasound2-plugins       the virtual microphone the tests capture from (no sound card in CI)
#   espeak-ng                generate the demo recordings and the bootstrap keyword data
#   flite, festival,
#   festvox-*                more synthetic voices for keyword training (kwtrain/synth.py)
set -euo pipefail
packages=(portaudio19-dev pulseaudio pulseaudio-utils libasound2-plugins espeak-ng
          flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
