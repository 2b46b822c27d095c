"""What a read costs the database: statements pinned for a directory search, a service read and
a referral list, none of them committing (issue 13). That a list shows what a read presents is
in test_federation_rules.py."""

import pytest
from flask import current_app, g
from sqlalchemy import create_engine, event, text

from referral_hub import prepared
from referral_hub.db_types import read_json
from referral_hub.directory import published
from referral_hub.extensions import db

from .caches import listening
from .costs import cost
from .factories import add_location, bearer, client_token, make_client, make_org, make_service
from .referral_fixtures import forwarded_to_a_peer, network, referral_body, send

# Statements and commits of each read, on SQLite and PostgreSQL alike, after a first request
# has warmed the caches. Before issue 13's reads step (2026-12-06) the counts were the same, but
# a list of forwarded referrals cost one more statement for each of them and for each peer:
# 2 such referrals of one peer in the list, 4 statements where it is now 2.
PINNED = {
    "search": {"statements": 3, "commits": 0},  # services, their linked rows, their places
    "search again": {"statements": 0, "commits": 0},  # the page kept (directory/published.py)
    "service read": {"statements": 3, "commits": 0},
    "service read again": {"statements": 0, "commits": 0},
    "referral list": {"statements": 1, "commits": 0},
    "list with forwarded referrals": {"statements": 2, "commits": 0},  # and their steps
}


def _directory(client):
    """Three services in the same category, one of them given at a place; a reader's headers."""
    owner = make_org()
    services = [
        make_service(owner, name=f"Shelter {n}", categories=["detox"], areas=["17"])
        for n in range(3)
    ]
    add_location(services[0], "Main office", "12 Street 123, Phnom Penh")
    client_id, secret = make_client(make_org())
    return services, bearer(client_token(client, client_id, secret, "directory:read"))


def test_a_search_and_a_service_read_cost_what_they_are_pinned_at(app, client):
    services, headers = _directory(client)
    search_url, read_url = "/api/v1/services?category=detox", f"/api/v1/services/{services[0].id}"
    client.get("/api/v1/services?category=legal_aid", headers=headers)  # caches warmed
    listening(app, published.NAME)
    costs = {}
    for name, url in (("search", search_url), ("service read", read_url)):
        for when in ("", " again"):
            answer, costs[name + when] = cost(lambda url=url: client.get(url, headers=headers))
            assert answer.status_code == 200
    assert len(answer.get_json()["locations"]) == 1
    assert costs == {name: PINNED[name] for name in costs}


def test_a_referral_list_costs_what_it_is_pinned_at(app, client):
    net = network(app, client)
    sent = [send(client, net["sender"], referral_body(net["service"].id)) for _ in range(3)]
    ids = [response.get_json()["id"] for response in sent]
    headers = net["sender"].headers
    client.get("/api/v1/referrals", headers=headers)  # caches warmed
    listed, listing = cost(lambda: client.get("/api/v1/referrals", headers=headers))
    forwarded_to_a_peer(ids[:2])
    forwarded, forwarded_listing = cost(lambda: client.get("/api/v1/referrals", headers=headers))
    assert (listed.status_code, forwarded.status_code) == (200, 200)
    assert {"referral list": listing, "list with forwarded referrals": forwarded_listing} == {
        name: PINNED[name] for name in ("referral list", "list with forwarded referrals")
    }


class _Cursor:
    def __init__(self):
        self.sent = []

    def execute(self, sql):
        self.sent.append(sql)


def test_a_prepared_statement_numbers_each_parameter_once_and_keeps_literal_percents():
    cursor, kept = _Cursor(), {}
    statement = "SELECT a FROM t WHERE b = %(x)s AND c LIKE 'x%%' AND d IN (%(y_1)s, %(x)s)"
    name, names = prepared._prepare(cursor, kept, statement)
    assert cursor.sent == [
        "PREPARE hub_0 AS SELECT a FROM t WHERE b = $1 AND c LIKE 'x%' AND d IN ($2, $1)"
    ]
    assert (name, names) == ("hub_0", ["x", "y_1"]) and kept == {statement: (name, names)}


def test_a_service_read_prepares_its_statements_again_on_a_new_connection(client, database_url):
    """On PostgreSQL the read's fixed statements are prepared once per connection; a pooled
    connection killed between two reads is replaced and they are prepared on it again."""
    if not database_url.startswith("postgresql"):
        pytest.skip("prepared statements are PostgreSQL's")
    services, headers = _directory(client)
    url = f"/api/v1/services/{services[0].id}"
    first = client.get(url, headers=headers)
    sent = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    again = client.get(url, headers=headers)
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    admin.dispose()
    g.pop("statements_done", None)  # the tests' app context outlives requests (conftest.py)
    current_app.extensions[published.NAME].forget()  # so that the read reaches the database
    after_kill = client.get(url, headers=headers)
    assert first.status_code == again.status_code == after_kill.status_code == 200
    assert first.get_json() == again.get_json() == after_kill.get_json()
    assert all(sql.startswith("EXECUTE hub_") for sql in sent if "token_revocations" not in sql)


def test_a_referral_list_is_prepared_once_per_connection(app, client, database_url):
    """Its statement is parsed once per connection; PostgreSQL still chooses each time between a
    plan for the values given and a generic one."""
    if not database_url.startswith("postgresql"):
        pytest.skip("prepared statements are PostgreSQL's")
    net = network(app, client)
    for _ in range(2):
        send(client, net["sender"], referral_body(net["service"].id))
    executions = []

    def list_executions(_connection, cursor, sql, *_args):
        if sql.startswith("EXECUTE hub_"):
            statement, generic, custom = _prepared(cursor, sql.split()[1])
            if "FROM referrals" in statement:
                executions.append(generic + custom)

    event.listen(db.engine, "after_cursor_execute", list_executions)
    answers = [client.get("/api/v1/referrals", headers=net["sender"].headers) for _ in range(3)]
    event.remove(db.engine, "after_cursor_execute", list_executions)
    assert [answer.status_code for answer in answers] == [200] * 3
    assert len(answers[-1].get_json()["items"]) == 2
    assert executions[-1] == len(executions) == 3  # one statement, prepared once, run three times


def _prepared(cursor, name):
    """(statement, generic plans, custom plans) of a statement prepared on this connection."""
    with cursor.connection.cursor() as own:
        own.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE name = %s",
            [name],
        )
        return own.fetchone()


def test_json_columns_are_read_as_the_standard_library_reads_them():
    assert read_json('{"needs": ["detox"], "age": 15, "referrer": null}') == {
        "needs": ["detox"],
        "age": 15,
        "referrer": None,
    }
    nan, big = read_json("[NaN, 123456789012345678901234567890]")  # orjson refuses both
    assert nan != nan and big == 123456789012345678901234567890
