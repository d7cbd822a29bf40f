"""RetroChat settings, read from the environment (README "Configuration").

Embedded default: SQLite file in the project and the in-process channel layer (one process).
DATABASE_URL switches to PostgreSQL and REDIS_URL to channels-redis (many processes).
"""
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from retrochat import redis_config
from retrochat.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# Off unless set: a technical page would show the URLconf, settings and source to anyone. With
# DEBUG=1 the pages still hide every credential-bearing setting (retrochat/debug.py).
DEBUG = env_bool("DEBUG", False)
DEFAULT_EXCEPTION_REPORTER_FILTER = "retrochat.debug.CredentialsReporterFilter"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

_SECRET_KEY_FILE = BASE_DIR / ".secret_key"


def _local_secret_key() -> str:
    """A key generated once per checkout and kept in an ignored file, so sessions survive restarts."""
    if _SECRET_KEY_FILE.exists():
        return _SECRET_KEY_FILE.read_text().strip()
    key = secrets.token_urlsafe(50)
    _SECRET_KEY_FILE.touch(mode=0o600)
    _SECRET_KEY_FILE.write_text(key)
    return key


# A server that answers only local host names (ALLOWED_HOSTS unset) may use the generated key, so
# that `make run`, `make test` and manage.py work on a fresh clone. A deployment names its hosts,
# and then a key shared by every process must be given: a per-machine file would split sessions.
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if "ALLOWED_HOSTS" in os.environ:
        raise ImproperlyConfigured("SECRET_KEY must be set when ALLOWED_HOSTS is.")
    SECRET_KEY = _local_secret_key()

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])


def _local_origins() -> list[str]:
    """The origins of the server `make run` starts: HOST:PORT, and its loopback names."""
    port = env_str("PORT", "8000")
    host = env_str("HOST", "127.0.0.1")
    hosts = ["127.0.0.1", "localhost", f"[{host}]" if ":" in host else host]
    return list(dict.fromkeys(f"http://{name}:{port}" for name in hosts))


# Whole origins (scheme://host[:port], as browsers send them) from which a session-authenticated
# WebSocket may connect; comparing the host alone would let https://localhost or another port in.
RETROCHAT_ALLOWED_ORIGINS = [
    origin.rstrip("/").lower() for origin in env_list("CORS_ALLOWED_ORIGINS", _local_origins())
]

INSTALLED_APPS = [
    # Not the production server (retrochat/serve.py runs uvicorn by default): listed so that
    # `manage.py runserver` serves WebSockets too during development, as Channels documents.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "users",
    "rooms",
    "realtime",
    "webapp",
]

MIDDLEWARE = [
    "retrochat.access_log.AccessLogMiddleware",
    # Before anything that can answer (CommonMiddleware, authentication): a preflight OPTIONS is
    # answered here, without credentials, and every answer gets its Access-Control-* headers.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "retrochat.urls"
CSRF_FAILURE_VIEW = "retrochat.api.errors.csrf_failure"
ASGI_APPLICATION = "retrochat.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Cross-origin REST calls ----------------------------------------------------------------
# Pages on these origins (`https://app.example.com`, comma-separated) may call the REST API with
# a bearer key. The realtime endpoint checks WebSocket `Origin` headers against the same list.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/v1/.*$"
CORS_ALLOW_HEADERS = ["authorization", "content-type"]
CORS_ALLOW_METHODS = ["DELETE", "GET", "OPTIONS", "PATCH", "POST"]  # the API has no PUT
# A browser hides response headers from scripts unless listed: a client backing off after a 429 needs this one.
CORS_EXPOSE_HEADERS = ["Retry-After"]
# Credentials are API keys in the Authorization header; cookies (session auth) stay same-site.
CORS_ALLOW_CREDENTIALS = False

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
# HTTP requests run on a fixed pool of long-lived threads (retrochat/http_handler.py), and the
# realtime layer on one long-lived thread (realtime/db.py), so each thread keeps its database
# connections for this many seconds instead of opening one per request; a connection that failed
# is replaced (health checks). 0 = a new connection per request.
RETROCHAT_HTTP_THREADS = env_int("RETROCHAT_HTTP_THREADS", 8)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("RETROCHAT_DB_CONN_MAX_AGE", 300), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers proceed during a write; IMMEDIATE takes the write lock at BEGIN, so
        # concurrent writers wait (up to `timeout` seconds) instead of failing with "locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer and cache ----------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
REDIS_PREFIX = env_str("RETROCHAT_REDIS_PREFIX", "retrochat")
if REDIS_URL:
    # pubsub (the default, chosen by measurement: docs/deploy.md, docs/benchmarks.md) or core.
    _layer = env_str("RETROCHAT_CHANNEL_LAYER", "pubsub")
    if _layer not in ("pubsub", "core"):
        raise ImproperlyConfigured(f"RETROCHAT_CHANNEL_LAYER must be pubsub or core; got {_layer!r}")
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": redis_config.layer_hosts(REDIS_URL), "prefix": REDIS_PREFIX},
        }
        if _layer == "pubsub"
        else {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # One hub channel per process receives everything: the default capacity (100) would
            # drop bursts silently.
            "CONFIG": {"hosts": redis_config.layer_hosts(REDIS_URL), "prefix": REDIS_PREFIX, "capacity": 100_000},
        }
    }
    # Shared by every process, so REST throttling counts a user's writes across all of them.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
        }
    }
else:
    # Each server process's hub reads one channel; a generous capacity keeps bursts from being
    # dropped (the in-memory layer drops silently when a channel is full). Unlike Channels' own
    # in-memory layer, this one never drops the hub from its groups (realtime/layers.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "realtime.layers.EmbeddedChannelLayer", "CONFIG": {"capacity": 100_000}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "users.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# The web app's sign-in (webapp/urls.py): Django's LoginView and LogoutView.
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

STATIC_URL = "/static/"
# The two default finders, and the JavaScript client of clients/js at /static/retrochat.js.
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "webapp.finders.JavaScriptClientFinder",
]
STATIC_ROOT = BASE_DIR / "staticfiles"
# The ASGI app serves static files itself (admin, API docs) so one process needs nothing else;
# behind a proxy that serves `collectstatic` output, set RETROCHAT_SERVE_STATIC=0.
RETROCHAT_SERVE_STATIC = env_bool("RETROCHAT_SERVE_STATIC", True)

# --- REST API -------------------------------------------------------------------------------
_write_throttle = env_str("RETROCHAT_WRITE_THROTTLE", "120/min").strip()
RETROCHAT_WRITE_THROTTLE = None if _write_throttle.lower() == "off" else _write_throttle

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so that a 401 carries `WWW-Authenticate: Bearer`.
        "users.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["retrochat.api.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["retrochat.api.throttling.WriteRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"write": RETROCHAT_WRITE_THROTTLE},
    "DEFAULT_PAGINATION_CLASS": "retrochat.api.pagination.NewestFirstCursorPagination",
    "EXCEPTION_HANDLER": "retrochat.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "retrochat.api.schema.RetroChatAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "RetroChat API",
    "DESCRIPTION": "REST API of the RetroChat realtime server. The WebSocket protocol at "
    "/v1/realtime is described in docs/realtime.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Readiness reports each check as ok/failing: one schema enum for all of them, not one per check.
    "ENUM_NAME_OVERRIDES": {"CheckStateEnum": "retrochat.api.views.CHECK_STATES"},
}

# --- Realtime limits ------------------------------------------------------------
RETROCHAT_MAX_FRAME_BYTES = env_int("RETROCHAT_MAX_FRAME_BYTES", 65536)
RETROCHAT_MAX_SUBSCRIPTIONS = env_int("RETROCHAT_MAX_SUBSCRIPTIONS", 100)
RETROCHAT_RATE_PER_SECOND = env_int("RETROCHAT_RATE_PER_SECOND", 20)
RETROCHAT_RATE_BURST = env_int("RETROCHAT_RATE_BURST", 40)
RETROCHAT_MAX_CONNECTIONS_PER_USER = env_int("RETROCHAT_MAX_CONNECTIONS_PER_USER", 50)
# The server pings every interval and drops a peer that has not answered within the timeout
# (retrochat/serve.py gives both to the WebSocket server, uvicorn or daphne).
RETROCHAT_HEARTBEAT_INTERVAL = env_int("RETROCHAT_HEARTBEAT_INTERVAL", 25)
RETROCHAT_HEARTBEAT_TIMEOUT = env_int("RETROCHAT_HEARTBEAT_TIMEOUT", 20)
# Lifetime of the connection tokens of POST /v1/realtime/token (realtime/tokens.py), in seconds.
RETROCHAT_TOKEN_TTL = env_int("RETROCHAT_TOKEN_TTL", 300)

# Slow consumers (realtime/outbox.py): more than PENDING_BYTES queued with nothing written for a
# second (or four times that at all), or a frame queued for longer than PENDING_SECONDS, closes the
# connection with 4008; a close that cannot be written within the grace aborts the TCP connection.
RETROCHAT_MAX_PENDING_BYTES = env_int("RETROCHAT_MAX_PENDING_BYTES", 1024 * 1024)
RETROCHAT_MAX_PENDING_SECONDS = env_float("RETROCHAT_MAX_PENDING_SECONDS", 30.0)
RETROCHAT_CLOSE_GRACE_SECONDS = env_float("RETROCHAT_CLOSE_GRACE_SECONDS", 5.0)
# Every process re-checks the credentials of all its connections this often (revoked or expired
# keys, inactive users, ended sessions), whatever way they changed.
RETROCHAT_REVALIDATE_SECONDS = env_float("RETROCHAT_REVALIDATE_SECONDS", 30.0)

# --- Event log and recovery -----------------------------------------------------------------
# Per channel, the newest HISTORY_SIZE events no older than HISTORY_TTL seconds are kept.
RETROCHAT_HISTORY_SIZE = env_int("RETROCHAT_HISTORY_SIZE", 1000)
RETROCHAT_HISTORY_TTL = env_int("RETROCHAT_HISTORY_TTL", 86400)
RETROCHAT_RECOVERY_MAX_EVENTS = env_int("RETROCHAT_RECOVERY_MAX_EVENTS", 1000)
# How often each process compares the streams it follows with the log (lost or foreign events
# arrive within about two intervals), and prunes the log.
RETROCHAT_LOG_POLL_SECONDS = env_float("RETROCHAT_LOG_POLL_SECONDS", 0.5)
RETROCHAT_PRUNE_SECONDS = env_float("RETROCHAT_PRUNE_SECONDS", 60.0)
# Benchmarks only (bench/run.py measures REST creates/s with the log on and off): 0 skips the event
# log, so frames carry no offset/epoch and NOTHING IS RECOVERABLE. Never set it on a real server.
RETROCHAT_EVENT_LOG = env_bool("RETROCHAT_EVENT_LOG", True)

# Presence: a connection's registration expires after TTL unless its process refreshes it (every
# TTL/3); every process sweeps expired ones every SWEEP seconds. A dead process's users go offline
# within TTL + SWEEP (50 s by default).
RETROCHAT_PRESENCE_TTL = env_int("RETROCHAT_PRESENCE_TTL", 40)
RETROCHAT_PRESENCE_SWEEP = env_int("RETROCHAT_PRESENCE_SWEEP", 10)

RETROCHAT_METRICS_TOKEN = env_str("RETROCHAT_METRICS_TOKEN")

# --- Logging --------------------------------------------------------------------------------
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json; got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "retrochat.logs.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "retrochat.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Our access log (retrochat.access) replaces Django's per-request warnings for 4xx/5xx.
        "django.request": {"level": "ERROR"},
    },
}
