#!/usr/bin/env bash
# Installs the Debian packages the product itself uses at run time, if missing:
# the Unicode fonts embedded in PDF invoices and statements (tutoring_core/payments/documents.py):
# DejaVu for Latin and most alphabets, Droid Sans Fallback for Chinese, Japanese and Korean.
# `make run` and `make test` (through install-system-test-deps.sh) both call it.
set -euo pipefail
need=()
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf ] || need+=(fonts-droid-fallback)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "Installing system packages the product uses: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
