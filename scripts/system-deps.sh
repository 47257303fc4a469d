#!/usr/bin/env bash
# Installs the Debian packages eventapp needs, when run as root; otherwise says what is missing.
#   scripts/system-deps.sh run    — what `make run` needs (Japanese fonts, PDF libraries, npm for static/vendor)
#   scripts/system-deps.sh test   — plus what `make test` needs (PostgreSQL, Chromium, poppler, zbar)
set -euo pipefail
mode=${1:-run}

run_pkgs=(fonts-ipaexfont-gothic fonts-ipaexfont-mincho fonts-ipamj-mincho libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
          poppler-utils)  # pdfunite joins the halves of big rosters
test_pkgs=(postgresql chromium libzbar0)
pkgs=("${run_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm (for static/vendor) may come with a Node.js from elsewhere; Debian's npm would conflict with it.
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  echo "Installing Debian packages with sudo: ${missing[*]}"
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Missing Debian packages: ${missing[*]}"
  echo "Install them once as root:  sudo apt-get install ${missing[*]}"
  if [ "$mode" = test ]; then exit 1; fi
  echo "(continuing: the app runs, but PDFs may lack Japanese fonts)"
fi
