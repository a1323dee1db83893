#!/usr/bin/env bash
# Installs the Debian packages the test suite's real peers need, if missing:
# Chromium (browser tests through Playwright), SimpleSAMLphp (SAML IdP), the PDFs' fonts.
set -euo pipefail
# What the product itself needs at run time (the PDFs' fonts).
bash "$(dirname "$0")/install-run-deps.sh"
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -d /usr/share/simplesamlphp ] || need+=(simplesamlphp php-cli php-xml php-mbstring)
command -v xmlsec1 >/dev/null 2>&1 || need+=(xmlsec1)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# docker-compose validates deploy/docker-compose.yml (no Docker engine is needed for `config`).
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# Redis: the grade-delivery tests run real Celery workers on it (killed mid-task).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# coturn: the video tests relay WebRTC through a TURN server they start (relay-only ICE).
command -v turnserver >/dev/null 2>&1 || need+=(coturn)
# npm: the browser tests inject axe-core, pinned in package-lock.json.
command -v npm >/dev/null 2>&1 || need+=(npm)
start_redis() {
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "Starting Redis on 127.0.0.1:6379 for the tests"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  fi
}
npm_tools() {
  if [ ! -f node_modules/axe-core/axe.min.js ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --silent
  fi
}
if [ ${#need[@]} -eq 0 ]; then
  start_redis
  npm_tools
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
start_redis
npm_tools
