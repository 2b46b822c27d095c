"""Fixtures: one hub per test session on SQLite or on TEST_DATABASE_URL, emptied after each test."""

import io
import logging
import os
import socket
import threading
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, event, make_url, text
from werkzeug.serving import make_server

from referral_hub import clock, create_app
from referral_hub.audit.service import suspend_append_only
from referral_hub.extensions import db
from referral_hub.logs import JSONFormatter

from .contract import ContractCheckedClient
from .factories import client_token, make_client, make_org

KEPT_TABLES = {"alembic_version", "signing_keys"}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """TEST_DATABASE_URL when set (PostgreSQL in CI), else a fresh SQLite file."""
    return (
        os.environ.get("TEST_DATABASE_URL")
        or f"sqlite:///{tmp_path_factory.mktemp('db')}/hub.sqlite"
    )


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """A new, empty database on the same server as the test database."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path}/migrations.sqlite"
        return
    name = f"hub_migrations_{os.urandom(6).hex()}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def live_port():
    return _free_port()


def hub_config(database_url, live_port, **overrides):
    """Settings of a test hub; tests that need another hub pass overrides."""
    return {
        "HUB_ENV": "testing",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "HUB_ISSUER": f"http://127.0.0.1:{live_port}",
        "HUB_AUDIENCE": f"http://127.0.0.1:{live_port}/api",
        "PASSWORD_HASH_TIME_COST": 1,
        "PASSWORD_HASH_MEMORY_KIB": 1024,
        "REVOCATION_CACHE_SECONDS": 5,  # production's: test_revocation.py relies on it
        "THROTTLE_DELAY_SECONDS": 0.01,
        **overrides,
    }


@pytest.fixture(scope="session")
def app(database_url, live_port, tmp_path_factory):
    os.environ["HUB_INSTANCE_PATH"] = str(tmp_path_factory.mktemp("instance"))
    hub = create_app(hub_config(database_url, live_port))
    hub.test_client_class = ContractCheckedClient
    with hub.app_context():
        upgrade()
    return hub


@pytest.fixture(autouse=True)
def app_context(app):
    """Each test runs in an app context and leaves the database empty."""
    with app.app_context():
        yield
        db.session.rollback()
        db.session.remove()
        tables = [t for t in reversed(db.metadata.sorted_tables) if t.name not in KEPT_TABLES]
        with db.engine.begin() as connection, suspend_append_only(connection):
            for table in tables:
                connection.execute(table.delete())
        app.extensions["hub_deny_list"].clear()


@pytest.fixture
def statements():
    """SQL statements sent while the fixture is active."""
    sent = []

    def count(*_args):
        sent.append(_args[2])

    event.listen(db.engine, "before_cursor_execute", count)
    yield sent
    event.remove(db.engine, "before_cursor_execute", count)


@pytest.fixture
def moved_clock():
    """Pin the hub's clock (referral_hub.clock) at now; call the result with seconds to move it."""
    start = clock.now()
    clock.freeze(start)
    yield lambda seconds: clock.freeze(start + timedelta(seconds=seconds))
    clock.freeze(None)


@pytest.fixture
def client(app):
    """A test client whose API responses are checked against openapi.yaml."""
    return app.test_client()


@pytest.fixture(scope="session")
def live_server(app, live_port):
    """The hub served over real HTTP on 127.0.0.1, for end-to-end flows."""
    server = make_server("127.0.0.1", live_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{live_port}"
    server.shutdown()


@pytest.fixture
def partner(client):
    """An organisation with a client-credentials client holding every API scope but admin."""
    organization = make_org()
    scopes = " ".join(scope for scope in client.application.config["SCOPES"] if scope != "admin")
    client_id, secret = make_client(organization, scopes.split())
    token = client_token(client, client_id, secret, scopes)
    return {"org": organization, "client_id": client_id, "secret": secret, "token": token}


@pytest.fixture
def log_lines():
    """Every line the hub's, Authlib's and the server's loggers write, at debug level too."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    loggers = [logging.getLogger(name) for name in ("referral_hub", "authlib", "werkzeug")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, for the browser tests (tests/test_browser*.py)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        yield chromium
        chromium.close()
