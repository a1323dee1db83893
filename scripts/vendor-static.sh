#!/usr/bin/env bash
# Copies the browser libraries the product itself serves (pinned in package.json and
# package-lock.json) into static folders: scorm-again, the SCORM runtime the player
# page loads. Run by `make install` (so `make run` and `make test` get it); the copy
# is not committed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is needed to install scorm-again (the SCORM player's runtime): apt-get install npm" >&2
  exit 1
fi
if [ ! -f node_modules/scorm-again/dist/scorm-again.min.js ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --silent
fi
mkdir -p scorm/static/scorm
cp node_modules/scorm-again/dist/scorm-again.min.js scorm/static/scorm/scorm-again.min.js
