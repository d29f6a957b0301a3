"""Base settings, driven by environment variables (every one is listed in README.md).

Defaults are for a developer's laptop: `make run` sets DATABASE_URL to its embedded
PostgreSQL and leaves CELERY_BROKER_URL empty, which selects the filesystem broker.
"""

from pathlib import Path

import dj_database_url
from kombu import Exchange, Queue

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me-in-production")
# Off unless asked for: a process started without the variable never shows debug pages (tracebacks,
# settings) to the world. `make run` asks for it (scripts/run.py); the test settings set it off.
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",
    "quotas",
    "contracts",
    "notifications",
    "usage",
    "bench",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.api.middleware.ApiProblemMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.StaffMfaRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "accounts.context_processors.organizations",
            ],
        },
    },
]

# --- Database: PostgreSQL only -------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # A reused connection is tested (SELECT 1, one round trip, ~0.1 ms of CPU) at the start
        # of each request, so one the server dropped (restart, failover, idle timeout) is
        # replaced instead of failing that request with a 500; one that served a request
        # without an error within the last second only has its socket looked at
        # (portal.db.postgresql).
        conn_health_checks=env_bool("DATABASE_CONN_HEALTH_CHECKS", True),
        # Behind PgBouncer in transaction mode a server-side cursor (QuerySet.iterator())
        # would outlive its transaction's connection: turn them off there.
        disable_server_side_cursors=env_bool("DATABASE_DISABLE_SERVER_SIDE_CURSORS", False),
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise RuntimeError("DATABASE_URL must point at PostgreSQL: it is the only supported engine.")
DATABASES["default"]["ENGINE"] = "portal.db.postgresql"  # Django's, with a cheaper health check
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: Redis when configured; fails open so an outage never takes logins down ---------
REDIS_URL = env_str("REDIS_URL", "")
CACHE_KEY_PREFIX = env_str("CACHE_KEY_PREFIX", "portal")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "portal.cache.FailOpenRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }

SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = 60 * 60 * 12

# --- Identity --------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env_str("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_RATE_LIMITS = {
    # allauth's own defaults, stated here so they are visible and reviewable.
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "confirm_email": "1/3m/key",
}
# Proxies of ours in front of the web processes (load balancer, CDN): the client's address is
# the N-th entry from the right of X-Forwarded-For (accounts.client_ip); 0: REMOTE_ADDR.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT < 0:
    raise RuntimeError("TRUSTED_PROXY_COUNT is a number of proxies: 0 or more.")
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "GPU Capacity Portal")

# --- Internationalisation: everything is stored in UTC ------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files: built from npm packages into assets/build, served by WhiteNoise -------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static", BASE_DIR / "assets" / "build"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"

# --- E-mail ---------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "GPU Capacity Portal <portal@provider.example>")

# --- Security headers (production.py tightens the transport settings) -----------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_COOKIE_HTTPONLY = False
SESSION_COOKIE_HTTPONLY = True
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'"
)

# --- Celery: Redis when CELERY_BROKER_URL is set, else a broker that needs no server -------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
if not CELERY_BROKER_URL:
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # The transport polls its folder; kombu's default of 1 s caps a worker at ~2 tasks/s.
        "polling_interval": 0.1,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Must exceed every task's time limit, or Redis redelivers a task still running.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    }
    if CELERY_BROKER_URL.startswith("redis://"):
        # kombu's Redis transport, keeping one client per channel (portal/broker.py). Only for
        # redis://: kombu enables TLS for rediss:// by the transport's name.
        CELERY_BROKER_TRANSPORT = "portal.broker:Transport"
# Tasks report through the database, not results; a backend is only for diagnostics.
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = False
# Celery's Django fixup closes the database connections before and after every task unless this
# is set; then it closes them every this many tasks, and portal/celery.py keeps them between
# tasks as Django keeps them between requests (DATABASE_CONN_MAX_AGE, health checks; 0 closes
# them after every task, as behind a transaction pooler).
CELERY_DB_REUSE_MAX = 1000

# Queues (docs/deploy.md, "Celery queues"): bulk work never delays the request lifecycle. After a
# large usage ingest the alert evaluations number in the hundreds, and a slow customer endpoint
# holds a webhook delivery for seconds; on one queue either would keep a tenant's checks waiting.
# `celery`, Celery's own default name, takes housekeeping and anything left unrouted; keeping that
# name means messages queued by a release before the split are still consumed.
# tests/portal/test_celery_routing.py pins every task's queue.
_tasks_by_queue = {
    "workflow": [
        "quotas.run_checks_task",
        "quotas.waitlist_offer_task",
        "quotas.reservations_due_task",
        "quotas.requests_expiry_task",
        "quotas.requests_due_task",
        "quotas.waitlist_scan_task",
        "quotas.requests_sweep_task",
        "portal.ping_task",
    ],
    "alerts": [
        "contracts.contract_spend_alerts_task",
        "contracts.spend_alerts_scan_task",
        "contracts.quota_alerts_task",
        "contracts.quota_alerts_scan_task",
        "contracts.usage_ingest_alerts_task",
        "contracts.statement_issue_task",
        "contracts.statements_close_task",
    ],
    "delivery": [
        "notifications.send_email_task",
        "notifications.email_sweep_task",
        "notifications.send_digest_task",
        "notifications.daily_digest_task",
        "webhooks.deliver_task",
        "webhooks.deliveries_due_scan_task",
    ],
    "celery": ["accounts.idempotency_records_purge_task"],
}
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Declared with an exchange and routing key of their own name: a kombu Queue without them would
# be bound with the default routing key, and every queue would receive every default-routed task.
# A worker started without -Q consumes all of them.
CELERY_TASK_QUEUES = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in _tasks_by_queue
)
CELERY_TASK_ROUTES = {
    task: {"queue": queue} for queue, tasks in _tasks_by_queue.items() for task in tasks
}

# --- REST API --------------------------------------------------------------------------------
# API keys first: an unauthenticated call gets 401 with a Bearer challenge, not 403.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "portal.api.filters.StableOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.PortalPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "portal.api.throttling.ApiKeyRateThrottle",
        "portal.api.throttling.UserRateThrottle",
        "portal.api.throttling.AnonymousRateThrottle",
    ],
    "EXCEPTION_HANDLER": "portal.api.problems.exception_handler",
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": True,
}
# Throttle rates ("<n>/<second|minute|hour|day>"), counted in the default cache.
API_THROTTLE_ENABLED = env_bool("API_THROTTLE_ENABLED", True)
API_THROTTLE_RATES = {
    "api_key": env_str("API_THROTTLE_KEY_RATE", "1200/minute"),
    "user": env_str("API_THROTTLE_USER_RATE", "600/minute"),
    "anonymous": env_str("API_THROTTLE_ANON_RATE", "60/minute"),
}
# Idempotency-Key records: kept (and honoured) this long; an in-progress record older than
# IDEMPOTENCY_STALE_SECONDS belongs to a request that died and may be claimed again.
IDEMPOTENCY_TTL_HOURS = env_int("IDEMPOTENCY_TTL_HOURS", 24)
IDEMPOTENCY_STALE_SECONDS = env_int("IDEMPOTENCY_STALE_SECONDS", 300)
SPECTACULAR_SETTINGS = {
    "TITLE": "GPU Capacity Portal API",
    "DESCRIPTION": (
        "Reserved GPU capacity, quotas and approvals, scripted. Authenticate with "
        "`Authorization: Bearer <api key>`. Errors are RFC 9457 problem details "
        "(`application/problem+json`). See docs/api.md for a walkthrough."
    ),
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema.postprocess_schema",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "accounts.models.Role",
        "NotificationDeliveryEnum": "notifications.models.Delivery",
        "OrganizationStatusEnum": "accounts.models.Organization.Status",
        "InvitationStatusEnum": "accounts.api.INVITATION_STATUSES",
        "ApiKeyStateEnum": "accounts.api.API_KEY_STATES",
        "RequestStateEnum": "quotas.workflow.RequestState",
        "ReservationStateEnum": "quotas.workflow.ReservationState",
        "RequestKindEnum": "quotas.models.CapacityRequest.Kind",
        "OfferKindEnum": "quotas.models.CapacityRequest.OfferKind",
        "CheckOutcomeEnum": "quotas.models.RequestCheck.Outcome",
        "WebhookDeliveryStatusEnum": "webhooks.models.WebhookDelivery.Status",
        "ContractStatusEnum": "contracts.models.Contract.Status",
    },
}

# --- Domain settings -------------------------------------------------------------------------
INVITATION_TTL_HOURS = env_int("INVITATION_TTL_HOURS", 72)
STAFF_MFA_REQUIRED = True

# Request workflow (quotas): global thresholds and timings. Organizations' own approval rules
# live in ApprovalPolicy rows; these bound every organization.
QUOTAS_SECOND_APPROVAL_GPUS = env_int("QUOTAS_SECOND_APPROVAL_GPUS", 256)
QUOTAS_SECOND_APPROVAL_VALUE = env_str("QUOTAS_SECOND_APPROVAL_VALUE", "1000000")  # Decimal
QUOTAS_MIN_LEAD_MINUTES = env_int("QUOTAS_MIN_LEAD_MINUTES", 60)
QUOTAS_MAX_DURATION_DAYS = env_int("QUOTAS_MAX_DURATION_DAYS", 1096)
QUOTAS_POLICY_MAX_GPUS = env_int("QUOTAS_POLICY_MAX_GPUS", 2048)
QUOTAS_POLICY_MAX_DURATION_DAYS = env_int("QUOTAS_POLICY_MAX_DURATION_DAYS", 366)
QUOTAS_POLICY_MIN_LEAD_HOURS = env_int("QUOTAS_POLICY_MIN_LEAD_HOURS", 24)
QUOTAS_OFFER_HOLD_HOURS = env_int("QUOTAS_OFFER_HOLD_HOURS", 48)
QUOTAS_DECISION_SLA_HOURS = env_int("QUOTAS_DECISION_SLA_HOURS", 48)
QUOTAS_REMINDER_LEAD_HOURS = env_int("QUOTAS_REMINDER_LEAD_HOURS", 12)
QUOTAS_STUCK_AFTER_MINUTES = env_int("QUOTAS_STUCK_AFTER_MINUTES", 10)
# Notifications: the e-mail sweeper re-dispatches immediate e-mails still unsent this long.
NOTIFICATIONS_EMAIL_RETRY_AFTER_MINUTES = env_int("NOTIFICATIONS_EMAIL_RETRY_AFTER_MINUTES", 10)
# Contracts: largest document accepted, and when a forecast under-use alert fires (projected
# unused commitment at term end, in % of it, judged once the term is this many days old).
CONTRACT_DOCUMENT_MAX_BYTES = env_int("CONTRACT_DOCUMENT_MAX_BYTES", 20 * 1024 * 1024)
CONTRACT_UNDERUSE_ALERT_PERCENT = env_int("CONTRACT_UNDERUSE_ALERT_PERCENT", 10)
CONTRACT_UNDERUSE_ALERT_AFTER_DAYS = env_int("CONTRACT_UNDERUSE_ALERT_AFTER_DAYS", 30)
# Webhooks: where they may go (https only in production; hosts or networks exempt from the
# public-address guard), how long a call may take, how retries back off, when a failing
# endpoint is disabled (this many failures in a row, the first at least this many hours ago).
WEBHOOK_REQUIRE_HTTPS = env_bool("WEBHOOK_REQUIRE_HTTPS", False)
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS")
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 5)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 10)
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 60)
WEBHOOK_DISABLE_AFTER_FAILURES = env_int("WEBHOOK_DISABLE_AFTER_FAILURES", 20)
WEBHOOK_DISABLE_AFTER_HOURS = env_int("WEBHOOK_DISABLE_AFTER_HOURS", 24)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
MFA_ADAPTER = "accounts.adapters.MFAAdapter"

# Demo data, in order; each is a callable that is idempotent and deterministic.
DEMO_SEEDERS = [
    "accounts.demo.seed",
    "quotas.demo.seed_catalog",
    "contracts.demo.seed",
    "quotas.demo_requests.seed",
    "usage.demo.seed",
    "contracts.demo.seed_statements",  # after the usage it bills
]
