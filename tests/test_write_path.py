"""What one API change costs the database: statements pinned, one transaction, and no second
audit entry for echoing a change's answer (issue 13)."""

from sqlalchemy import event

from referral_hub.extensions import db

from .referral_fixtures import move, network, referral_body, send


def _counting():
    """SQL statements and transactions sent while the block runs."""
    seen = {"statements": 0, "commits": 0}

    def statement(_connection, _cursor, sql, *_args):
        # The deny-list is read again every REVOCATION_CACHE_SECONDS, whatever the request.
        if "token_revocations" not in sql:
            seen["statements"] += 1

    def commit(*_args):
        seen["commits"] += 1

    return seen, statement, commit


def _cost(action):
    seen, statement, commit = _counting()
    engine = db.engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        result = action()
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
    return result, seen


# Statements and commits of each API call, on SQLite and PostgreSQL alike. Before issue 13's
# first step (2026-12-06): create 20 and 2 commits, status change 11 and 2, read 4 and 1.
PINNED = {
    "create": {"statements": 16, "commits": 1},
    "status change": {"statements": 8, "commits": 1},
    "read": {"statements": 4, "commits": 1},
}


def test_a_create_a_status_change_and_a_read_cost_what_they_are_pinned_at(app, client):
    net = network(app, client)
    send(client, net["sender"], referral_body(net["service"].id))  # caches warmed
    created, create = _cost(lambda: send(client, net["sender"], referral_body(net["service"].id)))
    referral = created.get_json()
    moved, status = _cost(lambda: move(client, net["receiver"], referral, "received"))
    url = f"/api/v1/referrals/{referral['id']}"
    read, reading = _cost(lambda: client.get(url, headers=net["receiver"].headers))
    assert (created.status_code, moved.status_code, read.status_code) == (201, 200, 200)
    assert {"create": create, "status change": status, "read": reading} == PINNED
