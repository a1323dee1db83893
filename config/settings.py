"""Settings for every environment. Production differs only by environment variables.

See .env.example for the full list. Nothing here is secret; nothing secret has a
default outside DEBUG.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env.str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", False)
DEMO_MODE = env.bool("DEMO_MODE", False)
# Run after the core's demo district is loaded (`manage.py demo_load`): each
# integration adds its own demo pieces without the core importing it.
DEMO_LOADERS = ["lti_tool.demo.simulator_register", "tutoring_core.scheduling.demo.demo_load"]

SECRET_KEY = env.str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set (it may be omitted only with DEBUG=true).")
    SECRET_KEY = "dev-only-insecure-secret-key-" + "x" * 32

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set (a comma-separated list of host names).")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS")

# The public base URL of this deployment (scheme + host), used in URLs we hand to
# other systems (LTI configuration, SAML metadata). Requests are not trusted for it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "tutoring_core.accounts",
    "tutoring_core.classes",
    "tutoring_core.progress",
    "tutoring_core.scheduling",
    "tutoring_core.payments",
    "tutoring_core.messaging",
    "tutoring_core.calendars",
    "tutoring_core.apiauth",
    "lti_tool",
    "lti_tool.advantage",
    "oneroster",
    "scorm",
    "sso",
    "tutoring_core.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "tutoring_core.web.middleware.FramePolicyMiddleware",
]
# Flash messages ride in the session: inside an LMS iframe the session cookie is
# partitioned (lti_tool.middleware) while a separate messages cookie would be dropped
# with third-party cookies blocked, and "Your session is booked." would never show.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.database("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(str(DATABASES["default"]["NAME"])).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets the web server and the Celery worker read while the other writes.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# PostgreSQL: a connection pool per process (psycopg_pool, through Django) of at most
# DATABASE_POOL_MAX_SIZE connections; a request waits up to DATABASE_POOL_TIMEOUT
# seconds for one, then fails. Under ASGI every request runs in a thread of its own,
# so a persistent per-thread connection (CONN_MAX_AGE) is never reused: 100 learners
# committing at once opened 100+ connections and PostgreSQL refused ("too many
# clients"; bench/scorm_commit.py). The web tier turns it on (deploy/gunicorn.conf.py,
# 8 per worker process): web processes x max size, plus one connection per Celery
# worker process, must stay below the server's max_connections. 0 (the default: Celery
# workers, commands, tests): no pool, CONN_MAX_AGE applies. SQLite has no pool.
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", 0, minimum=0)
if DATABASE_POOL_MAX_SIZE:
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_POOL_MAX_SIZE is for PostgreSQL; set it to 0 (or unset) here.")
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections (Django requires 0)
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DATABASE_POOL_MAX_SIZE),
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": env.int("DATABASE_POOL_TIMEOUT", 10, minimum=1),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "tutoring_core.redis_cache.RedisCache",  # Django's, one client per pool
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", "hub"),
        }
    }
else:
    # The database cache is shared by every process (web, worker), which the
    # one-time-use checks (LTI nonces, SAML assertion ids) depend on.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "hub_cache",
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", "hub"),
        }
    }

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["tutoring_core.accounts.backends.TenantAwareModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "web:login"
# Pages an integration adds to a class, shown to its teachers and tutors on the
# core class page as (label, URL name taking class_id); the core imports none of them.
CLASS_STAFF_LINKS = [("Grades and LMS gradebook", "lti_advantage:class_grades")]
# The same for the class's students (their own work in the class).
CLASS_STUDENT_LINKS: list[tuple[str, str]] = []
# Pages the home page links in demo mode (settings.DEMO_MODE) as (label, URL name).
DEMO_HOME_LINKS = [("Try the LMS launch simulator", "lti_tool:simulator")]
# Where "sign in with your district account" sends a person (the SSO app's page).
DISTRICT_SIGN_IN_URL = "/sso/{slug}/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"
STORAGES: dict[str, dict[str, object]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security: fail closed -------------------------------------------------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
# Sessions on the cache (Redis in production, the database cache in development):
# a sign-in writes no session row to the database (issue 13; bench/lti_launch.py).
# Redis must keep them: a maxmemory-policy that evicts (allkeys-*) signs people out.
# Any Django engine path may replace it (django.contrib.sessions.backends.cached_db
# for sessions that survive a cache flush).
SESSION_ENGINE = env.str("SESSION_ENGINE", "django.contrib.sessions.backends.cache")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
if env.bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
X_FRAME_OPTIONS = "DENY"
# FramePolicyMiddleware replaces Django's X-Frame-Options middleware: it sends CSP
# frame-ancestors on every response (and X-Frame-Options DENY where framing is
# never allowed), because the hub must be framable by LMS origins.
SILENCED_SYSTEM_CHECKS = ["security.W002"]
# Origins allowed to frame the hub's pages (LMS hosts), for CSP frame-ancestors.
# The default allows any https origin; sign-in and admin pages are never framed.
FRAME_ANCESTORS = env.list("FRAME_ANCESTORS", ["https:"])

# Secrets at rest: a comma-separated list of Fernet keys, newest first. Decryption
# tries every key; encryption uses the first. Rotate by putting a new key first and
# running `manage.py rotate_encryption_key`, then drop the old key.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS")
if not FIELD_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be set (generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)."
        )
    FIELD_ENCRYPTION_KEYS = [base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest()).decode()]

# --- Outbound HTTP ---------------------------------------------------------------
OUTBOUND_ALLOW_PRIVATE_ADDRESSES = env.bool("OUTBOUND_ALLOW_PRIVATE_ADDRESSES", False)
OUTBOUND_CONNECT_TIMEOUT = env.float("OUTBOUND_CONNECT_TIMEOUT", 5.0)
OUTBOUND_READ_TIMEOUT = env.float("OUTBOUND_READ_TIMEOUT", 20.0)
OUTBOUND_RETRIES = env.int("OUTBOUND_RETRIES", 2, minimum=0)
OUTBOUND_USER_AGENT = env.str("OUTBOUND_USER_AGENT", "TutoringHub/1.0 (+https://tutoring-hub.invalid)")

# --- Celery ----------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
if CELERY_BROKER_URL == "filesystem://":
    # The embedded broker is a folder of message files shared by web and worker.
    for folder in ("queue", "control"):
        (CELERY_BROKER_FOLDER / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", "hub")
CELERY_BEAT_SCHEDULE_FILE = str(VAR_DIR / "celerybeat-schedule")
# Each app adds its periodic tasks here, in its own section below.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "web-heartbeat": {"task": "web.heartbeat", "schedule": 60.0},
    "accounts-clear-sessions": {"task": "accounts.clear_expired_sessions", "schedule": 6 * 3600.0},
}

# --- Logging ---------------------------------------------------------------------
LOG_LEVEL = env.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- App sections ----------------------------------------------------------------
# Each integration app keeps its own settings in its own section below, read
# through config.env helpers, and lists them in .env.example.

# [lti_tool]
# Tool keys: RSA size, and how long a rotated-out key stays in the public JWKS.
LTI_KEY_BITS = env.int("LTI_KEY_BITS", 2048, minimum=2048)
LTI_KEY_OVERLAP_HOURS = env.int("LTI_KEY_OVERLAP_HOURS", 72, minimum=0)
# Platform JWKS: cached this long; an unknown kid triggers a refetch at most once
# per LTI_JWKS_REFETCH_SECONDS (a flood of bogus kids cannot hammer the platform).
LTI_JWKS_CACHE_SECONDS = env.int("LTI_JWKS_CACHE_SECONDS", 3600, minimum=1)
LTI_JWKS_REFETCH_SECONDS = env.int("LTI_JWKS_REFETCH_SECONDS", 60, minimum=0)
# Allowed clock difference for exp/iat, and how long a login's state/nonce lives.
LTI_CLOCK_SKEW_SECONDS = env.int("LTI_CLOCK_SKEW_SECONDS", 60, minimum=0)
LTI_STATE_TTL_SECONDS = env.int("LTI_STATE_TTL_SECONDS", 600, minimum=30)
LTI_TOOL_TITLE = env.str("LTI_TOOL_TITLE", "Tutoring Hub")
# CHIPS: off only to exercise the platform-storage and new-window fallbacks.
LTI_PARTITIONED_COOKIES = env.bool("LTI_PARTITIONED_COOKIES", True)
# Session and CSRF cookies set on LTI pages get SameSite=None; Secure; Partitioned
# (CHIPS) so they survive inside LMS iframes. Must sit outside SessionMiddleware.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware"),
    "lti_tool.middleware.FramedCookieMiddleware",
)
CELERY_BEAT_SCHEDULE["lti-retire-expired-keys"] = {
    "task": "lti_tool.retire_expired_keys",
    "schedule": 3600.0,
}

# [lti_tool.advantage]
# Grade passback (AGS) and class lists (NRPS). Limits apply per platform registration.
LTI_ADVANTAGE_CONNECT_TIMEOUT = env.float("LTI_ADVANTAGE_CONNECT_TIMEOUT", 5.0)
LTI_ADVANTAGE_READ_TIMEOUT = env.float("LTI_ADVANTAGE_READ_TIMEOUT", 20.0)
# Refresh a cached service token this many seconds before the platform's expires_in.
LTI_ADVANTAGE_TOKEN_MARGIN_SECONDS = env.int("LTI_ADVANTAGE_TOKEN_MARGIN_SECONDS", 60, minimum=0)
LTI_AGS_RATE_LIMIT_PER_SECOND = env.int("LTI_AGS_RATE_LIMIT_PER_SECOND", 10, minimum=1)
LTI_AGS_MAX_CONCURRENCY = env.int("LTI_AGS_MAX_CONCURRENCY", 8, minimum=1)
LTI_AGS_BACKOFF_BASE_SECONDS = env.float("LTI_AGS_BACKOFF_BASE_SECONDS", 2.0)
LTI_AGS_BACKOFF_CAP_SECONDS = env.float("LTI_AGS_BACKOFF_CAP_SECONDS", 1800.0)
# Transient failures are retried this many times (about a day with the defaults),
# then the delivery fails and shows on the admin page for a manual retry.
LTI_AGS_MAX_ATTEMPTS = env.int("LTI_AGS_MAX_ATTEMPTS", 60, minimum=1)
# How long a worker holds a claimed delivery; after that another worker may take it.
LTI_AGS_LEASE_SECONDS = env.int("LTI_AGS_LEASE_SECONDS", 120, minimum=1)
# After this many transient failures in a row the platform is paused (circuit open).
LTI_AGS_CIRCUIT_FAILURES = env.int("LTI_AGS_CIRCUIT_FAILURES", 5, minimum=1)
LTI_AGS_CIRCUIT_PAUSE_SECONDS = env.float("LTI_AGS_CIRCUIT_PAUSE_SECONDS", 5.0)
LTI_AGS_CIRCUIT_PAUSE_CAP_SECONDS = env.float("LTI_AGS_CIRCUIT_PAUSE_CAP_SECONDS", 300.0)
LTI_AGS_SWEEP_SECONDS = env.float("LTI_AGS_SWEEP_SECONDS", 60.0)
# Each platform's deliveries are sent by one dispatcher task at a time: it runs for
# this long, then hands over to a fresh task; its lock outlives a dead worker by this.
LTI_AGS_DISPATCH_SLICE_SECONDS = env.float("LTI_AGS_DISPATCH_SLICE_SECONDS", 60.0)
LTI_AGS_DISPATCH_LOCK_SECONDS = env.int("LTI_AGS_DISPATCH_LOCK_SECONDS", 15, minimum=2)
LTI_NRPS_SYNC_HOURS = env.float("LTI_NRPS_SYNC_HOURS", 6.0)
CELERY_BEAT_SCHEDULE["lti-ags-sweep-outbox"] = {
    "task": "lti_advantage.sweep_score_outbox",
    "schedule": LTI_AGS_SWEEP_SECONDS,
}
CELERY_BEAT_SCHEDULE["lti-nrps-sync-all"] = {
    "task": "lti_advantage.schedule_membership_syncs",
    "schedule": LTI_NRPS_SYNC_HOURS * 3600.0,
}

# [oneroster]
# Roster sync (oneroster/). Admin-entered CSV paths must lie under this folder, so a
# tenant admin cannot make the server read any other file.
ONEROSTER_CSV_ROOT = Path(env.str("ONEROSTER_CSV_ROOT", str(VAR_DIR / "roster-drops")))
ONEROSTER_TASK_TIME_LIMIT = env.int("ONEROSTER_TASK_TIME_LIMIT", 3 * 3600, minimum=60)
# A zip uploaded from the browser: its size, its number of entries and their unpacked size.
ONEROSTER_UPLOAD_MAX_BYTES = env.int("ONEROSTER_UPLOAD_MAX_BYTES", 200 * 1024 * 1024, minimum=1024)
ONEROSTER_UPLOAD_MAX_ENTRIES = env.int("ONEROSTER_UPLOAD_MAX_ENTRIES", 50, minimum=1)
ONEROSTER_UPLOAD_MAX_UNPACKED_BYTES = env.int(
    "ONEROSTER_UPLOAD_MAX_UNPACKED_BYTES", 4 * 1024 * 1024 * 1024, minimum=1024
)
ONEROSTER_RETRY_BASE_SECONDS = env.int("ONEROSTER_RETRY_BASE_SECONDS", 60, minimum=1)
ONEROSTER_MAX_RETRIES = env.int("ONEROSTER_MAX_RETRIES", 5, minimum=0)
ONEROSTER_DELTA_HOUR = env.int("ONEROSTER_DELTA_HOUR", 2, minimum=0)
ONEROSTER_FULL_WEEKDAY = env.int("ONEROSTER_FULL_WEEKDAY", 0, minimum=0)  # 0 = Sunday
if ONEROSTER_DELTA_HOUR > 23 or ONEROSTER_FULL_WEEKDAY > 6:
    raise ImproperlyConfigured("ONEROSTER_DELTA_HOUR must be 0-23 and ONEROSTER_FULL_WEEKDAY 0-6.")
from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE["oneroster-nightly-delta"] = {
    "task": "oneroster.scheduled_syncs",
    "schedule": crontab(minute=0, hour=ONEROSTER_DELTA_HOUR),
    "args": ("delta",),
}
CELERY_BEAT_SCHEDULE["oneroster-weekly-full"] = {
    "task": "oneroster.scheduled_syncs",
    "schedule": crontab(minute=30, hour=(ONEROSTER_DELTA_HOUR + 1) % 24, day_of_week=ONEROSTER_FULL_WEEKDAY),
    "args": ("full",),
}

# [sso]
SSO_SP_CERT_DAYS = env.int("SSO_SP_CERT_DAYS", 3 * 365, minimum=30)
SSO_CERT_WARNING_DAYS = env.int("SSO_CERT_WARNING_DAYS", 30, minimum=1)
SSO_METADATA_REFRESH_HOURS = env.int("SSO_METADATA_REFRESH_HOURS", 12, minimum=1)
CELERY_BEAT_SCHEDULE |= {
    "sso-metadata-refresh": {
        "task": "sso.saml_metadata_refresh_all",
        "schedule": SSO_METADATA_REFRESH_HOURS * 3600.0,
    },
    "sso-certificate-expiry": {"task": "sso.certificate_expiry_check", "schedule": 24 * 3600.0},
    "sso-purge-expired": {"task": "sso.purge_expired", "schedule": 3600.0},
}

# [api]
# The JSON API at /api/v1/ (config/api.py; bearer tokens in tutoring_core/apiauth).
# A token's last_used_at is written at most this often (seconds), not on every request.
API_TOKEN_LAST_USED_SECONDS = env.int("API_TOKEN_LAST_USED_SECONDS", 60, minimum=0)
# Idempotency-Key answers are kept this long, then purged by the beat task below.
API_IDEMPOTENCY_TTL_HOURS = env.int("API_IDEMPOTENCY_TTL_HOURS", 24, minimum=1)
# The interactive docs page at /api/v1/docs (the OpenAPI document is always served).
API_DOCS = env.bool("API_DOCS", True)
if API_DOCS:
    # The page's template and scripts come from the django-ninja package itself, served
    # here, not from a CDN (config.api.LocalSwagger). Not as an installed app: "ninja" in
    # INSTALLED_APPS imports ninja and pydantic (~13 MB) into every process at start-up,
    # Celery workers and management commands too; the API's URLconf loads them where the
    # API is served. find_spec locates the package without importing it.
    import importlib.util as _importlib_util

    _ninja_spec = _importlib_util.find_spec("ninja")
    if _ninja_spec is None or not _ninja_spec.submodule_search_locations:
        raise ImproperlyConfigured("API_DOCS needs django-ninja installed (requirements/base.txt).")
    _ninja_dir = Path(next(iter(_ninja_spec.submodule_search_locations)))
    _template_dirs = TEMPLATES[0]["DIRS"]
    assert isinstance(_template_dirs, list)
    _template_dirs.append(_ninja_dir / "templates")  # ninja/swagger.html, ninja/favicons.html
    STATICFILES_DIRS.append(_ninja_dir / "static")  # static/ninja/swagger-ui-bundle.js, ...
CELERY_BEAT_SCHEDULE["apiauth-purge-idempotency"] = {
    "task": "apiauth.purge_idempotency_records",
    "schedule": 3600.0,
}

# [accounts: sign-in]
# A district admin's first password: the link `tenant_create --admin-email` prints
# works once, for this many hours (Django's password-reset tokens; the hub has no
# other reset flow).
SET_PASSWORD_LINK_HOURS = env.int("SET_PASSWORD_LINK_HOURS", 24, minimum=1)
PASSWORD_RESET_TIMEOUT = SET_PASSWORD_LINK_HOURS * 3600
# Password sign-in (/signin/, /admin/login/) throttled by django-axes: after this many
# failures for one username, or from one address, sign-in is refused (429) until the
# failures are SIGNIN_LOCKOUT_MINUTES old. LTI and SSO sign-ins are not counted
# (tutoring_core/accounts/throttle.py).
SIGNIN_FAILURES_PER_ACCOUNT = env.int("SIGNIN_FAILURES_PER_ACCOUNT", 5, minimum=1)
SIGNIN_FAILURES_PER_ADDRESS = env.int("SIGNIN_FAILURES_PER_ADDRESS", 30, minimum=1)
SIGNIN_LOCKOUT_MINUTES = env.int("SIGNIN_LOCKOUT_MINUTES", 15, minimum=1)
INSTALLED_APPS.append("axes")
AUTHENTICATION_BACKENDS.insert(0, "axes.backends.AxesStandaloneBackend")  # first, per axes
MIDDLEWARE.append("axes.middleware.AxesMiddleware")  # last, per axes
import datetime as _dt  # noqa: E402

AXES_HANDLER = "tutoring_core.accounts.throttle.SignInThrottleHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks
AXES_FAILURE_LIMIT = SIGNIN_FAILURES_PER_ACCOUNT  # the handler shifts the address count
AXES_COOLOFF_TIME = _dt.timedelta(minutes=SIGNIN_LOCKOUT_MINUTES)
# Attempts refused during a lockout are audited but not counted, so the time the
# lockout page names is when it really ends.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = False
AXES_DISABLE_ACCESS_LOG = True  # successes are in the audit log (auth.sign_in)
# The same client address as the audit log (accounts.api.client_ip: REMOTE_ADDR,
# which the proxy layer sets from X-Forwarded-For; see deploy/).
AXES_CLIENT_IP_CALLABLE = "tutoring_core.accounts.api.client_ip"
AXES_USERNAME_CALLABLE = "tutoring_core.accounts.throttle.attempted_username"
AXES_LOCKOUT_CALLABLE = "tutoring_core.web.signin.locked_out"
AXES_ENABLE_ADMIN = False  # no tenant to scope by; `manage.py axes_list_attempts` / `axes_reset_username`
AXES_VERBOSE = False

# [messaging]
# Session notices and reminders (issue 12). Email goes through Django's backend: the
# console unless EMAIL_URL (smtp://user:pass@host:587 with STARTTLS, smtps://... for
# implicit TLS, smtp+plain://... for neither, console://, locmem://) or EMAIL_HOST is set.
from urllib.parse import urlsplit as _urlsplit  # noqa: E402

EMAIL_URL = env.str("EMAIL_URL", "")
EMAIL_HOST = env.str("EMAIL_HOST", "")
EMAIL_PORT = env.int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "Tutoring Hub <no-reply@localhost>")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
_email = env.email("EMAIL_URL")  # when set, it wins over the EMAIL_* variables
if _email:
    EMAIL_BACKEND = str(_email["EMAIL_BACKEND"])
if "EMAIL_HOST" in _email:
    EMAIL_HOST = str(_email["EMAIL_HOST"])
    EMAIL_PORT = int(str(_email["EMAIL_PORT"]))
    EMAIL_USE_TLS = bool(_email["EMAIL_USE_TLS"])
    EMAIL_USE_SSL = bool(_email["EMAIL_USE_SSL"])
    EMAIL_HOST_USER = str(_email["EMAIL_HOST_USER"])
    EMAIL_HOST_PASSWORD = str(_email["EMAIL_HOST_PASSWORD"])
MESSAGING_MAX_ATTEMPTS = env.int("MESSAGING_MAX_ATTEMPTS", 8, minimum=1)
MESSAGING_RETRY_BASE_SECONDS = env.int("MESSAGING_RETRY_BASE_SECONDS", 60, minimum=1)
MESSAGING_LEASE_SECONDS = env.int("MESSAGING_LEASE_SECONDS", 600, minimum=60)
CELERY_BEAT_SCHEDULE["messaging-reminders"] = {"task": "messaging.reminders", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["messaging-sweep"] = {"task": "messaging.sweep", "schedule": 300.0}

# [calendars]
# Secret iCal feeds (/calendar/<token>.ics) and CalDAV push of sessions (issue 12).
CALENDARS_UID_DOMAIN = env.str("CALENDARS_UID_DOMAIN", _urlsplit(PUBLIC_BASE_URL).hostname or "tutoring-hub")
CALENDARS_FEED_PAST_DAYS = env.int("CALENDARS_FEED_PAST_DAYS", 90, minimum=0)
CALENDARS_FEED_FUTURE_DAYS = env.int("CALENDARS_FEED_FUTURE_DAYS", 400, minimum=1)
# Plain-http CalDAV servers only for development and tests (a password goes with each push).
CALENDARS_CALDAV_ALLOW_HTTP = env.bool("CALENDARS_CALDAV_ALLOW_HTTP", DEBUG)
CALENDARS_MAX_RETRIES = env.int("CALENDARS_MAX_RETRIES", 8, minimum=0)
CALENDARS_RETRY_BASE_SECONDS = env.int("CALENDARS_RETRY_BASE_SECONDS", 60, minimum=1)
CALENDARS_PUSH_LEASE_SECONDS = env.int("CALENDARS_PUSH_LEASE_SECONDS", 600, minimum=60)
CELERY_BEAT_SCHEDULE["calendars-sweep"] = {"task": "calendars.sweep", "schedule": 300.0}

# [scorm import]
# Package files are stored once per content hash under scorm/<sha256>/ in the
# "scorm" storage: a folder under MEDIA_ROOT by default; S3 (django-storages) when
# SCORM_S3_BUCKET is set, with the usual AWS_* credentials from the environment.
SCORM_S3_BUCKET = env.str("SCORM_S3_BUCKET", "")
if SCORM_S3_BUCKET:
    STORAGES["scorm"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": SCORM_S3_BUCKET,
            "region_name": env.str("SCORM_S3_REGION", "") or None,
            "endpoint_url": env.str("SCORM_S3_ENDPOINT_URL", "") or None,
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
        },
    }
else:
    STORAGES["scorm"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
# Limits of one package (MB): the zip, everything in it unpacked (zips inside
# included), entries, compression ratio, and the manifest.
SCORM_MAX_PACKAGE_MB = env.int("SCORM_MAX_PACKAGE_MB", 1024, minimum=1)
SCORM_MAX_UNPACKED_MB = env.int("SCORM_MAX_UNPACKED_MB", 2048, minimum=1)
SCORM_MAX_ENTRIES = env.int("SCORM_MAX_ENTRIES", 20000, minimum=1)
SCORM_MAX_RATIO = env.int("SCORM_MAX_RATIO", 100, minimum=2)
SCORM_MAX_MANIFEST_MB = env.int("SCORM_MAX_MANIFEST_MB", 4, minimum=1)

# [scorm]
# Package files and the player run on their own origin, on another HOST than the app
# (cookies are per host, not per port): the app's cookies never reach package code,
# and package code cannot read the app's pages. `make run` serves it as a second
# server (scripts/run-dev.sh); in production point a second host name at the same
# image (nginx/ingress), e.g. https://content.example.org. Empty: playback is off.
SCORM_CONTENT_ORIGIN = env.str("SCORM_CONTENT_ORIGIN", "http://127.0.0.2:8001" if DEBUG else "").rstrip("/")
if SCORM_CONTENT_ORIGIN:
    _content = _urlsplit(SCORM_CONTENT_ORIGIN)
    if _content.scheme not in ("http", "https") or not _content.hostname or _content.path:
        raise ImproperlyConfigured(
            "SCORM_CONTENT_ORIGIN must be a scheme and host, e.g. https://content.example.org"
        )
    if _content.hostname == _urlsplit(PUBLIC_BASE_URL).hostname:
        raise ImproperlyConfigured(
            "SCORM_CONTENT_ORIGIN must be on another host than PUBLIC_BASE_URL (a port apart shares cookies)."
        )
# How long a signed link to a package's files (and the player page) works; the player
# page is opened afresh at each launch, and the commit token lasts a long sitting.
SCORM_CONTENT_URL_TTL = env.int("SCORM_CONTENT_URL_TTL", 4 * 3600, minimum=60)
SCORM_COMMIT_TOKEN_TTL = env.int("SCORM_COMMIT_TOKEN_TTL", 12 * 3600, minimum=60)
# Seconds between the runtime's automatic commits while a SCO sets values (batched).
SCORM_AUTOCOMMIT_SECONDS = env.int("SCORM_AUTOCOMMIT_SECONDS", 10, minimum=1)
MIDDLEWARE.insert(1, "scorm.content.ContentOriginMiddleware")  # before sessions: the content host has none
CLASS_STAFF_LINKS.append(("SCORM attempts", "scorm:class_attempts"))
CLASS_STUDENT_LINKS.append(("My SCORM courses and attempts", "scorm:class_attempts"))

# [video]
# Live tutoring rooms (issue 15): WebRTC signaling over websockets through Django Channels.
INSTALLED_APPS.insert(INSTALLED_APPS.index("tutoring_core.web"), "tutoring_core.video")
INSTALLED_APPS.append("channels")
if REDIS_URL:
    # Three defaults under channels-redis each lost video signaling (bench/video.py --redis):
    # redis-py 8's socket_timeout of 5 s, while each consumer waits 5 s per BZPOPMIN (an idle
    # consumer's read timed out and it died), so read longer than it waits; redis-py 8's asyncio
    # pool of 100 connections, which raises rather than waits when all are busy (a burst of
    # signals across 50 rooms ran it out); and a capacity of 100 messages per channel, where all
    # the consumers of one process share one channel, beyond which group_send drops messages
    # without a word (offers and ICE candidates lost with 50 busy rooms). Messages still expire
    # after 60 s.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "max_connections": 2000}],
                "capacity": 5000,
            },
        }
    }
else:  # the embedded default: one process, in memory
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# ICE servers handed to browsers. TURN credentials follow coturn's use-auth-secret scheme and
# last VIDEO_TURN_TTL seconds; TURN_URLS e.g. "turn:turn.example.org:3478,turns:turn.example.org:443?transport=tcp".
STUN_URLS = env.list("STUN_URLS", [])
TURN_URLS = env.list("TURN_URLS", [])
TURN_SECRET = env.str("TURN_SECRET", "")
if TURN_URLS and not TURN_SECRET:
    raise ImproperlyConfigured("TURN_URLS is set but TURN_SECRET is not (coturn's static-auth-secret).")
VIDEO_TURN_TTL = env.int("VIDEO_TURN_TTL", 3600, minimum=60)
VIDEO_JOIN_TOKEN_TTL = env.int("VIDEO_JOIN_TOKEN_TTL", 120, minimum=10)  # seconds
# A room opens this many minutes before the start and closes this many after the end.
VIDEO_OPEN_BEFORE_MIN = env.int("VIDEO_OPEN_BEFORE_MIN", 15, minimum=0)
VIDEO_CLOSE_AFTER_MIN = env.int("VIDEO_CLOSE_AFTER_MIN", 30, minimum=0)
# Attendance: joined later than this after the start is late; left earlier than this before the end is left early.
VIDEO_LATE_AFTER_MIN = env.int("VIDEO_LATE_AFTER_MIN", 5, minimum=0)
VIDEO_LEFT_EARLY_MIN = env.int("VIDEO_LEFT_EARLY_MIN", 5, minimum=0)
# Rooms nobody ended: this many minutes after a session's scheduled end with no outcome recorded,
# the sweep works its attendance out (no-shows included); at most VIDEO_ATTENDANCE_SWEEP_BATCH
# sessions a run, every VIDEO_ATTENDANCE_SWEEP_EVERY seconds.
VIDEO_ATTENDANCE_GRACE_MIN = env.int("VIDEO_ATTENDANCE_GRACE_MIN", 15, minimum=0)
VIDEO_ATTENDANCE_SWEEP_BATCH = env.int("VIDEO_ATTENDANCE_SWEEP_BATCH", 200, minimum=1)
VIDEO_ATTENDANCE_SWEEP_EVERY = env.int("VIDEO_ATTENDANCE_SWEEP_EVERY", 300, minimum=10)
CELERY_BEAT_SCHEDULE["video-attendance-sweep"] = {
    "task": "video.attendance_sweep",
    "schedule": float(VIDEO_ATTENDANCE_SWEEP_EVERY),
}

# [payments]
# Issue 16. PAYMENTS_PROVIDER is the default for tenants without payment settings:
# "none" (grant-funded, the embedded default), "invoice" or "stripe".
PAYMENTS_PROVIDER = env.str("PAYMENTS_PROVIDER", "none")
if PAYMENTS_PROVIDER not in ("none", "invoice", "stripe"):
    raise ImproperlyConfigured(
        f"PAYMENTS_PROVIDER must be none, invoice or stripe, not {PAYMENTS_PROVIDER!r}."
    )
STRIPE_API_KEY = env.str("STRIPE_API_KEY", "")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", "")
# Tests point this at localstripe on loopback; empty means Stripe's own address.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", "")
# Stripe.js, which the payment pages load (card fields live in Stripe's frames, never the hub's);
# tests point it at localstripe's mock (<base>/js.stripe.com/v3/).
STRIPE_JS_URL = env.str("STRIPE_JS_URL", "https://js.stripe.com/v3/")
# The nightly comparison of the ledger with Stripe (reports differences, changes nothing).
CELERY_BEAT_SCHEDULE["payments-reconcile"] = {
    "task": "payments.reconcile",
    "schedule": crontab(hour=3, minute=40),
}
if PAYMENTS_PROVIDER == "stripe" and not (STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET):
    raise ImproperlyConfigured(
        "PAYMENTS_PROVIDER is stripe but STRIPE_API_KEY or STRIPE_WEBHOOK_SECRET is not set."
    )
