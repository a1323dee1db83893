"""gunicorn settings for the web tier (uvicorn workers serving config.asgi).

Every value can be overridden from the environment (GUNICORN_*) so a pod's
size, not the image, decides the worker count.
"""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "uvicorn.workers.UvicornWorker")
workers = int(os.environ.get("GUNICORN_WORKERS", str(multiprocessing.cpu_count() * 2 + 1)))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle workers now and then so a slow leak never takes a pod down.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
# Trust X-Forwarded-* only from the proxy in front (nginx / the load balancer).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# PostgreSQL connections: a pool of 8 per worker process (config/settings.py
# DATABASE_POOL_MAX_SIZE), set here so only the web tier pools: the workers are forked
# from this process and read it when they load the app. Celery's prefork processes
# keep one persistent connection each instead.
if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://", "pgsql://", "postgis://")):
    if not os.environ.get("DATABASE_POOL_MAX_SIZE"):  # unset or empty; "0" turns it off
        os.environ["DATABASE_POOL_MAX_SIZE"] = "8"
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
