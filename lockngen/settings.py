"""LockN Gen settings: every environment variable is read here, once, with laptop defaults."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Off unless asked for: a debug page shows settings to anyone who can make a request fail.
# ``./scripts/run.sh`` turns it on for its loopback laptop demo.
DEBUG = env_bool("DJANGO_DEBUG", False)
DEV_SECRET_KEY = "dev-only-insecure-lockngen-key-change-me"
# Placeholders that must never sign a real session (the second is .env.example's).
PLACEHOLDER_SECRET_KEYS = frozenset({DEV_SECRET_KEY, "change-me-to-a-long-random-string"})
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or DEV_SECRET_KEY
if not DEBUG and SECRET_KEY in PLACEHOLDER_SECRET_KEYS:
    # Anyone knowing the key forges sessions: refuse to start rather than serve with it.
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set (or is the example placeholder) and DJANGO_DEBUG is off: "
        "set DJANGO_SECRET_KEY to a long random value, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))' "
        "(DJANGO_DEBUG=true is for a laptop on loopback only)"
    )
# Behind a TLS proxy: https://gen.example.com (comma-separated).
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "lockngen.apps.ProjectConfig",
    "generations",
    "progress",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "lockngen.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "lockngen.urls"
ASGI_APPLICATION = "lockngen.asgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The monitor and daphne write the same file: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def install_prefix(secret_key: str, database: Mapping[str, Any], redis_url: str) -> str:
    """A Redis namespace of this install's own: pub/sub channels ignore the db index, so
    two installs on one Redis (production on db 0, staging on db 1) would hear each other.
    Derived from what makes an install: its secret, its database and its Redis db."""
    identity = "|".join(
        [secret_key, str(database.get("NAME")), str(database.get("HOST")), redis_url]
    )
    return "lockngen-" + hashlib.sha256(identity.encode()).hexdigest()[:12]


# Namespaces our Redis keys and channel-layer names; every web process and monitor of one
# install must agree on it (they share the environment it is derived from).
REDIS_PREFIX = os.environ.get("LOCKNGEN_REDIS_PREFIX") or install_prefix(
    SECRET_KEY, DATABASES["default"], REDIS_URL
)

# Embedded mode (no Redis reachable; ``run_stack`` decides): one process holds everything,
# with an in-process channel layer and an in-process stand-in for Redis (fakeredis).
EMBEDDED = env_bool("LOCKNGEN_EMBEDDED", False)

CHANNEL_LAYERS = {
    "default": {
        # The pub/sub layer fans a group message out once per process instead of once per
        # channel, and never drops silently (relay-performance.md).
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_PREFIX}:layer"},
    }
}
if EMBEDDED:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Several backends: new generations go to the one with the shortest queue (see backends.py).
COMFYUI_URLS = [
    u.strip().rstrip("/") for u in os.environ.get("COMFYUI_URLS", "").split(",") if u.strip()
]
COMFYUI_URL = (
    os.environ.get("COMFYUI_URL") or (COMFYUI_URLS[0] if COMFYUI_URLS else "http://127.0.0.1:8188")
).rstrip("/")
COMFYUI_URLS = COMFYUI_URLS or [COMFYUI_URL]
# Every prompt carries the monitor's clientId: ComfyUI routes a prompt's events to it alone,
# and a socket with the same clientId takes them over. Empty: a random one made once per
# install and kept in the database (read it through generations.install.comfyui_client_id).
COMFYUI_CLIENT_ID = os.environ.get("COMFYUI_CLIENT_ID", "").strip()
# Asks newer ComfyUI servers (started with --preview-method none, their default) for sampler
# previews per prompt; older ones ignore it. Empty: leave it to the server.
COMFYUI_PREVIEW_METHOD = os.environ.get("COMFYUI_PREVIEW_METHOD", "auto")
COMFYUI_HTTP_TIMEOUT = env_float("COMFYUI_HTTP_TIMEOUT", 10.0)

# Off only for a single-user install: then everything is open and generations have no owner.
REQUIRE_AUTH = env_bool("LOCKNGEN_REQUIRE_AUTH", True)
# Bearer token for GET /metrics (web) and each monitor's --metrics-port; empty: the web
# side takes staff logins only, and nobody reads a monitor's port.
METRICS_TOKEN = os.environ.get("LOCKNGEN_METRICS_TOKEN", "").strip()
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# The checkpoint a text-to-image request uses when it names none.
COMFYUI_CHECKPOINT = os.environ.get("COMFYUI_CHECKPOINT") or "sim-v1.safetensors"

LOCKNGEN = {
    # Generations each user may create per window (429 with Retry-After beyond it).
    "RATE_LIMIT_COUNT": env_int("LOCKNGEN_RATE_LIMIT_COUNT", 30),
    "RATE_LIMIT_WINDOW": env_int("LOCKNGEN_RATE_LIMIT_WINDOW", 60),
    # Previews are throttled per generation (latest wins) to at most this many per second.
    "PREVIEW_MAX_PER_SECOND": env_float("LOCKNGEN_PREVIEW_MAX_PER_SECOND", 4.0),
    "PREVIEW_TTL_SECONDS": env_int("LOCKNGEN_PREVIEW_TTL_SECONDS", 3600),
    "STATE_TTL_SECONDS": env_int("LOCKNGEN_STATE_TTL_SECONDS", 7 * 24 * 3600),
    # Messages kept per generation for resume (a 150-step sampler publishes about 160).
    "LOG_LENGTH": env_int("LOCKNGEN_LOG_LENGTH", 500),
    # Progress rows are written at most this often per generation; state changes at once.
    "PROGRESS_WRITE_INTERVAL": env_float("LOCKNGEN_PROGRESS_WRITE_INTERVAL", 1.0),
    "RECONNECT_MAX_DELAY": env_float("LOCKNGEN_RECONNECT_MAX_DELAY", 30.0),
    # A running generation with no word from ComfyUI for this long is checked against
    # /history and, if still unfinished there, ends failed with a timeout (and is cancelled).
    "STALE_SECONDS": env_float("LOCKNGEN_STALE_SECONDS", 900.0),
    # ...and after this long without a frame it reconnects to ComfyUI first, to resync.
    "RESYNC_SECONDS": env_float("LOCKNGEN_RESYNC_SECONDS", 60.0),
    # A generation running longer than this is cancelled on ComfyUI and ends failed (0: never).
    "MAX_RUN_SECONDS": env_float("LOCKNGEN_MAX_RUN_SECONDS", 1800.0),
    # Client frames larger than this get an error frame (daphne closes at 1 MiB anyway).
    "MAX_CLIENT_FRAME": env_int("LOCKNGEN_MAX_CLIENT_FRAME", 4096),
    # Open progress sockets per user (all web processes together), and per client address
    # for anonymous sockets (LOCKNGEN_REQUIRE_AUTH=false); the one over gets close 4429.
    "MAX_SOCKETS_PER_USER": env_int("LOCKNGEN_MAX_SOCKETS_PER_USER", 50),
    "MAX_SOCKETS_PER_IP": env_int("LOCKNGEN_MAX_SOCKETS_PER_IP", 200),
    # Each process refreshes its sockets' entries this often; an entry three beats old is a
    # socket of a crashed process and no longer counts.
    "SOCKET_HEARTBEAT_SECONDS": env_float("LOCKNGEN_SOCKET_HEARTBEAT_SECONDS", 10.0),
    # Relayed messages framed once per group and written straight to each socket under
    # daphne (progress/wire.py); off: every message takes Channels' ordinary send.
    "WS_FAST_PATH": env_bool("LOCKNGEN_WS_FAST_PATH", True),
    # Bytes daphne may queue for a socket that does not read before it is closed (4503).
    "WS_MAX_BACKLOG": env_int("LOCKNGEN_WS_MAX_BACKLOG", 1 << 20),
    # SO_SNDBUF of each progress socket under daphne (0: the kernel's own autotuning, which
    # lets one socket that does not read hold up to net.ipv4.tcp_wmem's maximum).
    "WS_SNDBUF": env_int("LOCKNGEN_WS_SNDBUF", 0),
    # Safety net behind the "access changed" broadcast (e.g. a bulk UPDATE sends no signal).
    "ACCESS_RECHECK_SECONDS": env_float("LOCKNGEN_ACCESS_RECHECK_SECONDS", 60.0),
    # Queued or running generations per user (429 beyond it).
    "MAX_ACTIVE_PER_USER": env_int("LOCKNGEN_MAX_ACTIVE_PER_USER", 10),
    # Failed logins per username and per address within the window lock them out.
    "LOGIN_MAX_FAILURES": env_int("LOCKNGEN_LOGIN_MAX_FAILURES", 10),
    "LOGIN_WINDOW_SECONDS": env_int("LOCKNGEN_LOGIN_WINDOW_SECONDS", 900),
    "LOGIN_LOCKOUT_SECONDS": env_int("LOCKNGEN_LOGIN_LOCKOUT_SECONDS", 900),
    # Caps on every workflow, raw graphs included (generations/workflow_policy.py).
    "MAX_PIXELS": env_int("LOCKNGEN_MAX_PIXELS", 4096 * 4096),
    "MAX_BATCH": env_int("LOCKNGEN_MAX_BATCH", 16),
    "MAX_STEPS": env_int("LOCKNGEN_MAX_STEPS", 150),
    # Node classes a workflow may use (comma-separated); empty = every class ComfyUI has.
    "ALLOWED_NODE_CLASSES": frozenset(env_list("LOCKNGEN_ALLOWED_NODE_CLASSES")),
    # Webhooks: endpoints on private, loopback or link-local addresses are refused unless
    # this is on (at creation and at every delivery, against DNS rebinding).
    "WEBHOOK_ALLOW_PRIVATE": env_bool("LOCKNGEN_WEBHOOK_ALLOW_PRIVATE", False),
    # Each attempt, connecting and answering together.
    "WEBHOOK_TIMEOUT_SECONDS": env_float("LOCKNGEN_WEBHOOK_TIMEOUT_SECONDS", 10.0),
    # Waits before each retry (with jitter); the last repeats until RETRY_FOR has passed.
    "WEBHOOK_RETRY_DELAYS": tuple(
        float(d) for d in env_list("LOCKNGEN_WEBHOOK_RETRY_DELAYS", "5,30,120,600,3600")
    ),
    "WEBHOOK_RETRY_FOR_SECONDS": env_float("LOCKNGEN_WEBHOOK_RETRY_FOR_SECONDS", 24 * 3600.0),
    # How long a sender's claim on a delivery lasts: far longer than one attempt, so a
    # claim only expires when its sender died (another one then sends it again).
    "WEBHOOK_LEASE_SECONDS": env_float("LOCKNGEN_WEBHOOK_LEASE_SECONDS", 60.0),
    # Server-Sent Events: a comment line this often keeps proxies from closing a quiet stream.
    "SSE_KEEPALIVE_SECONDS": env_float("LOCKNGEN_SSE_KEEPALIVE_SECONDS", 15.0),
}
# The largest API body (413 above it); the proxy in front allows a little more, so that
# this answer, not the proxy's, is what clients see.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# The lockout check comes first: while locked, not even the right password is tried.
AUTHENTICATION_BACKENDS = [
    "generations.login_throttle.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
# WhiteNoise serves static files with DEBUG off too, collected (Docker) or not (a laptop).
WHITENOISE_USE_FINDERS = True
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT") or BASE_DIR / "media")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOCKNGEN_LOG_LEVEL", "INFO")},
}
