"""Referral Hub: a consent-aware referral hub for child-protection NGO networks."""

import os
import secrets
import sqlite3
from pathlib import Path

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from . import compression, crypto, database_outage, errors, logs, prepared, request_handling, web
from . import config as settings
from .db_types import include_in_autogenerate, read_json
from .extensions import db, migrate


def _development_secret(instance_path):
    """A random secret kept in the instance folder, so a local hub needs no setup."""
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    """Make SQLite enforce foreign keys and let readers and a writer work at once."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()


def create_app(config=None):
    app = Flask(__name__, instance_path=os.environ.get("HUB_INSTANCE_PATH"))
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(settings.from_environment(app.instance_path))
    app.config.update(config or {})
    settings.apply_environment_defaults(app.config, config or {})
    if (
        app.config["HUB_ENV"] == "development"
        and app.config["SECRET_KEY"] == settings.DEFAULT_SECRET_KEY
    ):
        app.config["SECRET_KEY"] = _development_secret(app.instance_path)
    settings.check_production_safety(app.config)
    if app.config["TRUSTED_PROXIES"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"])
    crypto.configure(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
        "json_deserializer": read_json,
    }

    compression.configure(app)
    logs.configure(app)
    database_outage.register(app)
    db.init_app(app)
    prepared.register()
    migrations = Path(__file__).resolve().parent.parent / "migrations"
    migrate.init_app(
        app,
        db,
        directory=str(migrations),
        render_as_batch=True,
        compare_type=True,
        include_object=include_in_autogenerate,
    )
    request_handling.register(app)
    errors.register(app)
    web.configure(app)

    from .audit import api as audit_api
    from .audit import service as audit_service
    from .audit import views as audit_views
    from .auth import admin_views, keys, oauth_api, oauth_server, revocation, tokens, views
    from .auth import api as auth_api
    from .callbacks import api as callbacks_api
    from .callbacks import subscribers
    from .callbacks import views as callback_views
    from .callbacks.dispatcher import Dispatcher
    from .directory import api as directory_api
    from .directory import capacity_views, curation_views, hsds_api, published
    from .directory import views as directory_views
    from .federation import api as federation_api
    from .federation import views as peer_views
    from .federation.forwarding import forwarder
    from .health import bp as health_bp
    from .notifications import views as notification_views
    from .notifications.sender import Notifier
    from .referrals import api as referrals_api
    from .referrals import network_views
    from .referrals import views as referral_views
    from .reports import api as reports_api
    from .reports import views as report_views
    from .web import brand

    app.extensions["hub_keys"] = keys.KeyCache()
    app.extensions["hub_deny_list"] = revocation.DenyList()
    app.extensions["hub_verified_tokens"] = tokens.VerifiedTokens()
    app.extensions["hub_oauth_server"] = oauth_server.create_server(app)
    app.extensions["hub_dispatcher"] = Dispatcher(app)
    app.extensions[subscribers.NAME] = subscribers.cache(app)
    app.extensions[published.NAME] = published.cache(app)
    app.extensions["hub_forwarder"] = forwarder(app)
    app.extensions["hub_sequencer"] = audit_service.sequencer(app)
    app.extensions["hub_notifier"] = Notifier(app)
    app.extensions["hub_dispatcher"].also_wake.append(app.extensions["hub_forwarder"].wake)
    app.extensions["hub_dispatcher"].also_wake.append(app.extensions["hub_notifier"].wake)
    notification_views.configure(app)
    for blueprint in (
        health_bp,
        brand.bp,
        oauth_api.bp,
        views.bp,
        auth_api.bp,
        directory_api.bp,
        hsds_api.bp,
        hsds_api.hsds_bp,
        audit_api.bp,
        referrals_api.bp,
        callbacks_api.bp,
        directory_views.bp,
        referral_views.bp,
        reports_api.bp,
        report_views.bp,
        curation_views.bp,
        network_views.bp,
        audit_views.bp,
        admin_views.bp,
        callback_views.bp,
        capacity_views.bp,
        federation_api.bp,
        federation_api.callbacks_bp,
        peer_views.bp,
        notification_views.bp,
    ):
        app.register_blueprint(blueprint)
    if app.config["HUB_ENV"] == "development":
        app.register_blueprint(notification_views.dev_bp)  # the demo's mailbox, /dev/mail
    return app
