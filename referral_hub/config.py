"""Settings from the environment; the defaults run on embedded SQLite in the instance folder."""

import os
from datetime import timedelta

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_SECRET_KEY = "dev-only-secret-key-change-me"  # refused in production

SCOPES = {
    "directory:read": "Search and read the service directory",
    "directory:write": "Change the directory entries you are allowed to change",
    "referrals:read": "Read referrals your organisation sent or received",
    "referrals:write": "Send referrals and change their status",
    "callbacks:manage": "Manage your organisation's status callbacks",
    "reports:read": "Read network figures you are entitled to",
    "admin": "Manage your organisation's users and API clients (admins only)",
    "federation": "Act as a peer hub (given only to peer hubs' clients, by peering)",
}


# What an organisation's admin may give its clients: all but the peer hubs' scope.
GRANTABLE_SCOPES = [scope for scope in SCOPES if scope != "federation"]


class ConfigError(RuntimeError):
    """The configuration cannot run safely."""


def _env_int(name, default):
    return int(os.environ.get(name, default))


def _env_bool(name, default):
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def _database_url(default):
    """DATABASE_URL, checked before anything connects. `postgres://` (the form Heroku, Render
    and others hand out) and `postgresql://` (whose default driver SQLAlchemy 2.1 changed to
    psycopg 3) both mean PostgreSQL through psycopg2, the driver the hub ships with."""
    url = os.environ.get("DATABASE_URL") or default
    example = "postgresql+psycopg2://user:password@host:5432/name or sqlite:////path/hub.sqlite"
    try:
        scheme = make_url(url).drivername
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a database URL; write it as {example}.") from None
    if scheme in {"postgres", "postgresql"}:
        url = "postgresql+psycopg2" + url.removeprefix(scheme)
    elif scheme not in {"postgresql+psycopg2", "sqlite", "sqlite+pysqlite"}:
        raise ConfigError(f"DATABASE_URL must name PostgreSQL (psycopg2) or SQLite: {example}.")
    try:
        make_url(url).get_dialect().import_dbapi()
    except ImportError:
        raise ConfigError(
            "DATABASE_URL names PostgreSQL but its driver psycopg2 is not installed: "
            "pip install 'referral-hub[postgres]'."
        ) from None
    return url


def from_environment(instance_path):
    """Read every setting the hub knows from the environment, with safe defaults."""
    env = os.environ.get("HUB_ENV", "production")
    sqlite_path = os.path.join(instance_path, "referral_hub.sqlite")
    issuer = os.environ.get("HUB_ISSUER", "http://127.0.0.1:5000").rstrip("/")
    return {
        "HUB_ENV": env,
        "SCOPES": SCOPES,
        "SECRET_KEY": os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": _database_url(f"sqlite:///{sqlite_path}"),
        "HUB_ISSUER": issuer,
        "HUB_AUDIENCE": os.environ.get("HUB_AUDIENCE", f"{issuer}/api"),
        "ACCESS_TOKEN_LIFETIME": _env_int("ACCESS_TOKEN_LIFETIME", 600),
        "REFRESH_TOKEN_LIFETIME": _env_int("REFRESH_TOKEN_LIFETIME", 14 * 24 * 3600),
        "AUTHORIZATION_CODE_LIFETIME": _env_int("AUTHORIZATION_CODE_LIFETIME", 600),
        "REVOCATION_CACHE_SECONDS": _env_int("REVOCATION_CACHE_SECONDS", 5),
        "THROTTLE_MAX_FAILURES": _env_int("THROTTLE_MAX_FAILURES", 5),
        "THROTTLE_SLOW_AFTER": _env_int("THROTTLE_SLOW_AFTER", 3),
        "THROTTLE_DELAY_SECONDS": float(os.environ.get("THROTTLE_DELAY_SECONDS", "0.5")),
        "THROTTLE_WINDOW_SECONDS": _env_int("THROTTLE_WINDOW_SECONDS", 900),
        "THROTTLE_ADDRESS_MAX_FAILURES": _env_int("THROTTLE_ADDRESS_MAX_FAILURES", 20),
        "THROTTLE_ACCOUNT_MAX_FAILURES": _env_int("THROTTLE_ACCOUNT_MAX_FAILURES", 50),
        # Proxies in front of the hub whose X-Forwarded-For is believed; 0 believes none.
        "TRUSTED_PROXIES": _env_int("TRUSTED_PROXIES", 0),
        "PASSWORD_HASH_TIME_COST": _env_int("PASSWORD_HASH_TIME_COST", 3),
        "PASSWORD_HASH_MEMORY_KIB": _env_int("PASSWORD_HASH_MEMORY_KIB", 65536),
        "MAX_CONTENT_LENGTH": _env_int("MAX_CONTENT_LENGTH", 1024 * 1024),
        "SCHEDULER_ENABLED": _env_bool("SCHEDULER_ENABLED", False),
        "VERIFICATION_MAX_AGE_DAYS": _env_int("VERIFICATION_MAX_AGE_DAYS", 180),
        "HSDS_PUBLIC": _env_bool("HSDS_PUBLIC", True),
        "DATA_ENCRYPTION_KEYS": os.environ.get("DATA_ENCRYPTION_KEYS", ""),
        "DATA_ENCRYPTION_KEY_ID": os.environ.get("DATA_ENCRYPTION_KEY_ID"),
        "REFERRAL_DEADLINES": {
            "emergency": timedelta(hours=_env_int("DEADLINE_EMERGENCY_HOURS", 4)),
            "high": timedelta(hours=_env_int("DEADLINE_HIGH_HOURS", 24)),
            "normal": _env_int("DEADLINE_NORMAL_BUSINESS_DAYS", 3),
        },
        "REFERRAL_EXPIRY_DAYS": _env_int("REFERRAL_EXPIRY_DAYS", 30),
        "CALLBACK_RETRY_SCHEDULE": [
            float(s)
            for s in os.environ.get(
                "CALLBACK_RETRY_SCHEDULE", "0,5,300,1800,7200,18000,36000,36000"
            ).split(",")
        ],
        "CALLBACK_CONNECT_TIMEOUT": float(os.environ.get("CALLBACK_CONNECT_TIMEOUT", "5")),
        "CALLBACK_TOTAL_TIMEOUT": float(os.environ.get("CALLBACK_TOTAL_TIMEOUT", "15")),
        "CALLBACK_DISABLE_AFTER_DAYS": _env_int("CALLBACK_DISABLE_AFTER_DAYS", 5),
        "CALLBACK_LEASE_SECONDS": _env_int("CALLBACK_LEASE_SECONDS", 60),
        "CALLBACK_POLL_SECONDS": float(os.environ.get("CALLBACK_POLL_SECONDS", "1")),
        "CALLBACK_DISPATCHER_THREADS": _env_int("CALLBACK_DISPATCHER_THREADS", 4),
        # Notifications to people: e-mail by SMTP_URL (smtp:// with STARTTLS, or smtps://),
        # Telegram by a bot's token; without SMTP_URL, development writes .eml files.
        "SMTP_URL": os.environ.get("SMTP_URL", ""),
        "SMTP_CA_FILE": os.environ.get("SMTP_CA_FILE", ""),  # to trust a private CA
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Referral Hub <noreply@referral-hub.invalid>"),
        "TELEGRAM_BOT_TOKEN": os.environ.get("TELEGRAM_BOT_TOKEN", ""),
        "TELEGRAM_API_URL": os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org"),
        "NOTIFY_SEND_TIMEOUT": float(os.environ.get("NOTIFY_SEND_TIMEOUT", "20")),
        "NOTIFY_LEASE_SECONDS": _env_int("NOTIFY_LEASE_SECONDS", 60),
        "NOTIFY_RETRY_SCHEDULE": [
            float(s)
            for s in os.environ.get("NOTIFY_RETRY_SCHEDULE", "0,60,300,1800,7200,21600").split(",")
        ],
        "NOTIFY_PAUSE_AFTER_FAILURES": _env_int("NOTIFY_PAUSE_AFTER_FAILURES", 3),
        "NOTIFY_SENDER_THREADS": _env_int("NOTIFY_SENDER_THREADS", 4),
        "PEER_SYNC_MINUTES": _env_int("PEER_SYNC_MINUTES", 15),
        # The longest an audit entry waits for the worker's sequencer to chain it.
        "AUDIT_SEAL_DELAY_SECONDS": float(os.environ.get("AUDIT_SEAL_DELAY_SECONDS", "2")),
        # How services of this hub are labelled beside peer hubs' services.
        "HUB_NAME": os.environ.get("HUB_NAME", "This network"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "hub_session",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=8),
        # No ping before each use (a round trip per request): connections are recycled, and a
        # request whose first statement finds its connection dead runs again on a new one.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": _env_int("POOL_RECYCLE_SECONDS", 1800)},
        "JSON_SORT_KEYS": False,
    }


def apply_environment_defaults(config, overrides):
    """Settings whose default follows HUB_ENV, unless the caller or the environment set them."""
    production = config["HUB_ENV"] == "production"
    for key in ("HSTS", "SESSION_COOKIE_SECURE"):
        if key not in overrides:
            config[key] = _env_bool(key, production)
    # Plain http and loopback/private callback targets: development and tests only.
    for key in ("CALLBACK_ALLOW_HTTP", "CALLBACK_ALLOW_PRIVATE_TARGETS"):
        if key not in overrides:
            config[key] = _env_bool(key, not production)


def check_production_safety(config):
    """Refuse to run in production with a secret anyone could know."""
    if config["HUB_ENV"] != "production":
        return
    secret = config.get("SECRET_KEY") or ""
    if secret == DEFAULT_SECRET_KEY or len(secret) < 32:
        raise ConfigError(
            "SECRET_KEY must be set to a random value of at least 32 characters in production "
            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))'), "
            "or set HUB_ENV=development for a local hub."
        )
    if not config.get("DATA_ENCRYPTION_KEYS"):
        raise ConfigError(
            "DATA_ENCRYPTION_KEYS must name at least one AES-256 key in production, as "
            "'key-id:base64-of-32-random-bytes' (python -c 'import base64, os; "
            'print("k1:" + base64.b64encode(os.urandom(32)).decode())\').'
        )
