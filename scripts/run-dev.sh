#!/usr/bin/env bash
# Serves the product on embedded defaults: SQLite, the filesystem Celery broker,
# local files. Starts a Celery worker with beat beside the web server and stops it
# on exit. Called by `make run`, which has already installed and migrated.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
mkdir -p var/log

$BIN/python manage.py demo_load > var/log/demo-logins.txt
$BIN/celery -A config worker --beat --loglevel=info --concurrency=2 \
  --schedule var/celerybeat-schedule > var/log/celery.log 2>&1 &
CELERY_PID=$!
# The SCORM content origin: the same code on another HOST (scorm/content.py answers
# requests for that host only), so the app's cookies never reach package code.
CONTENT_ORIGIN=${SCORM_CONTENT_ORIGIN:-http://127.0.0.2:8001}
CONTENT_ADDR=${CONTENT_ORIGIN#*://}
$BIN/python manage.py runserver "$CONTENT_ADDR" --noreload > var/log/content.log 2>&1 &
CONTENT_PID=$!
trap 'kill $CELERY_PID $CONTENT_PID 2>/dev/null; wait $CELERY_PID $CONTENT_PID 2>/dev/null' EXIT INT TERM

cat <<BANNER

  Tutoring Hub is starting at  http://$HOST:$PORT/
  Health:                      http://$HOST:$PORT/healthz  and  /readyz
  Admin:                       http://$HOST:$PORT/admin/
  Celery worker + beat log:    var/log/celery.log
  SCORM content origin:        $CONTENT_ORIGIN  (log: var/log/content.log)
BANNER
cat var/log/demo-logins.txt
echo
# ASGI (uvicorn) rather than runserver: the video rooms signal over websockets (Django
# Channels); static files come from WhiteNoise under DEBUG too.
$BIN/uvicorn config.asgi:application --host "$HOST" --port "$PORT" --ws websockets-sansio --log-level warning
