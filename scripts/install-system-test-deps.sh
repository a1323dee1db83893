#!/usr/bin/env bash
# Installs the Debian packages the test suite's real peers need, if missing:
# Chromium (browser tests through Playwright) and SimpleSAMLphp (SAML IdP).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -d /usr/share/simplesamlphp ] || need+=(simplesamlphp php-cli php-xml php-mbstring)
command -v xmlsec1 >/dev/null 2>&1 || need+=(xmlsec1)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# docker-compose validates deploy/docker-compose.yml (no Docker engine is needed for `config`).
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "Installing system packages for the tests: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
