"""When the database does not answer, every door answers 503 with Retry-After, logs one line a
minute, and no log line ever carries an SQL statement's values."""

import io
import json
import logging
import socket
import time

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from referral_hub import create_app
from referral_hub.callbacks import subscribers
from referral_hub.directory import published
from referral_hub.extensions import db

from .conftest import hub_config
from .contract import ContractCheckedClient
from .factories import bearer, client_token, make_client, make_org
from .pages import signed_in

SEARCH_WORD = "kanthasecretword"  # what a caseworker typed; it must never reach a log


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def hub(database_url, live_port, **overrides):
    created = create_app(hub_config(database_url, live_port, **overrides))
    created.test_client_class = ContractCheckedClient
    return created


@pytest.fixture(params=["postgresql", "sqlite"])
def unreachable(request, live_port, tmp_path):
    """A hub whose database is a closed port, or an SQLite file in a folder that is not there.
    Ask for it before `log_lines`: making a hub resets the loggers' handlers."""
    if request.param == "postgresql":
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port()}/hub"
    else:
        url = f"sqlite:///{tmp_path}/no-such-folder/hub.sqlite"
    return hub(url, live_port, CALLBACK_POLL_SECONDS=0.02)


def assert_unavailable(response):
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith(":database-unavailable")


def knock_on_every_door(http, token):
    """The API, the token endpoint and the open HSDS API."""
    assert_unavailable(http.get("/api/v1/services", headers=bearer(token)))
    assert_unavailable(
        http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "directory:read"},
            auth=("some-client", "some-secret"),
        )
    )
    assert_unavailable(http.get(f"/hsds/services?search={SEARCH_WORD}"))


def assert_page_unavailable(response):
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert int(response.headers["Retry-After"]) > 0


def test_an_unreachable_database_answers_503_everywhere(app, unreachable, partner):
    http = unreachable.test_client()
    knock_on_every_door(http, partner["token"])
    assert_unavailable(http.get("/.well-known/jwks.json"))
    browser, _user = signed_in(app)  # the same secret key: the session is valid there too
    http.set_cookie("hub_session", browser.get_cookie("hub_session").value)
    assert_page_unavailable(http.get("/find", headers={"Accept": "text/html"}))
    http.set_cookie("hub_lang", "km")
    khmer = http.get("/find", headers={"Accept": "text/html"})
    assert_page_unavailable(khmer)
    assert "cannot reach its database" not in khmer.get_data(as_text=True)
    assert "ប្រព័ន្ធមិនអាចប្រើបានមួយភ្លែត" in khmer.get_data(as_text=True)
    ready = http.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json() == {"status": "unavailable", "database": "unreachable"}


def test_an_outage_logs_one_line_a_minute_and_no_traceback(unreachable, log_lines):
    http = unreachable.test_client()
    for _ in range(100):
        assert_unavailable(http.get("/.well-known/jwks.json"))
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    outage = [line for line in lines if "database unavailable" in line["message"]]
    assert len(outage) == 1, lines
    assert "Traceback" not in log_lines.getvalue()


def test_the_dispatcher_in_an_outage_logs_once_a_minute_per_message(unreachable):
    """The callback dispatcher tries again at every poll; the hub's own log handler lets one
    line a minute through for each of its messages, without a traceback."""
    (handler,) = logging.getLogger("referral_hub").handlers
    handler.setStream(written := io.StringIO())
    dispatcher = unreachable.extensions["hub_dispatcher"]
    dispatcher.start()
    time.sleep(1)  # some fifty polls
    dispatcher.stop()
    messages = [json.loads(line)["message"] for line in written.getvalue().splitlines()]
    assert "dispatcher pass failed; its leases will expire" in messages
    assert len(messages) == len(set(messages)), messages
    assert "Traceback" not in written.getvalue()


@pytest.fixture
def broken_schema(empty_database_url, live_port):
    """A hub whose database lost a column it searches: a genuine SQL error, not an outage."""
    drifted = hub(empty_database_url, live_port)
    with drifted.app_context():
        upgrade()
        with db.engine.begin() as connection:
            connection.execute(
                sa.text("ALTER TABLE services RENAME COLUMN search_text TO search_words")
            )
    yield drifted
    with drifted.app_context():
        db.engine.dispose()


def test_an_sql_error_is_a_500_whose_log_has_no_values(broken_schema, log_lines):
    response = broken_schema.test_client().get(f"/hsds/services?search={SEARCH_WORD}")
    assert response.status_code == 500  # a wrong statement is not an outage
    logged = log_lines.getvalue()
    assert "unhandled error on GET /hsds/services" in logged
    assert "search_text" in logged  # the statement stays, to find the bug by
    assert SEARCH_WORD not in logged


@pytest.fixture(params=[True, False], ids=["pre-ping", "no-pre-ping"])
def stoppable(request, empty_database_url, live_port):
    """A hub on a PostgreSQL database of its own, and a way to stop and restart that database
    while the hub runs; with and without the pool's check of a connection before use."""
    if not empty_database_url.startswith("postgresql"):
        pytest.skip("stopping the database mid-run needs PostgreSQL")
    name = sa.engine.make_url(empty_database_url).database
    admin = sa.create_engine(
        sa.engine.make_url(empty_database_url).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
    )

    def allow_connections(allowed):
        with admin.connect() as connection:
            connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {allowed}'))
            if not allowed:
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name"
                    ),
                    {"name": name},
                )

    hub_on_it = hub(
        empty_database_url, live_port, SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": request.param}
    )
    with hub_on_it.app_context():
        upgrade()
    yield hub_on_it, allow_connections
    for cache in (subscribers.NAME, published.NAME):  # their threads would outlive the test
        hub_on_it.extensions[cache].stop()
    with hub_on_it.app_context():
        db.engine.dispose()
    allow_connections(True)
    admin.dispose()


def test_a_database_stopped_mid_run_answers_503_then_recovers(stoppable, log_lines):
    stopped_hub, allow_connections = stoppable
    http = stopped_hub.test_client()
    with stopped_hub.app_context():
        organization = make_org()
        client_id, secret = make_client(organization, ["directory:read"])
        db.session.commit()
        token = client_token(http, client_id, secret, "directory:read")
    assert http.get("/api/v1/services", headers=bearer(token)).status_code == 200
    allow_connections(False)
    knock_on_every_door(http, token)
    assert http.get("/.well-known/jwks.json").status_code == 200  # the keys it had read
    assert http.get("/readyz").status_code == 503
    allow_connections(True)
    assert http.get("/api/v1/services", headers=bearer(token)).status_code == 200
    assert "Traceback" not in log_lines.getvalue()


def test_a_pooled_connection_killed_between_requests_is_replaced_unseen(stoppable, log_lines):
    """No ping before each use: the request whose first statement meets a dead connection runs
    again on a new one (issue 13). A write is replayed too: nothing of it had been sent."""
    stopped_hub, allow_connections = stoppable
    http = stopped_hub.test_client()
    with stopped_hub.app_context():
        organization = make_org()
        client_id, secret = make_client(organization, ["directory:read", "callbacks:manage"])
        db.session.commit()
        token = client_token(http, client_id, secret, "directory:read callbacks:manage")
    assert http.get("/api/v1/services", headers=bearer(token)).status_code == 200
    allow_connections(False)
    allow_connections(True)  # every connection the hub's pool holds is dead now
    # a read that reaches the database (a search's answer is kept by the process now)
    assert http.get("/api/v1/subscriptions", headers=bearer(token)).status_code == 200
    allow_connections(False)
    allow_connections(True)
    created = http.post(
        "/api/v1/subscriptions",
        json={"url": "http://127.0.0.1:9/cb"},
        headers=bearer(token),
    )
    assert created.status_code == 201, created.get_json()
    listed = http.get("/api/v1/subscriptions", headers=bearer(token)).get_json()["items"]
    assert len(listed) == 1  # created once
    assert "database unavailable" not in log_lines.getvalue()


def test_a_logged_sql_error_keeps_its_statement_and_loses_its_values(database_url, log_lines):
    """Even from an engine that shows parameters, and from PostgreSQL, whose messages quote
    the statement as psycopg2 sent it, values filled in."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            connection.execute(
                sa.text("SELECT CAST(:word AS integer) FROM no_such_table"), {"word": SEARCH_WORD}
            )
    except sa.exc.DBAPIError:
        logging.getLogger("referral_hub.test").exception("a query failed")
    finally:
        engine.dispose()
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    (line,) = [line for line in lines if line["logger"] == "referral_hub.test"]
    assert "FROM no_such_table" in line["exception"]
    assert SEARCH_WORD not in line["exception"]
