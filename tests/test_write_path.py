"""What one API change costs the database: statements pinned, one transaction, and no second
audit entry for echoing a change's answer (issue 13)."""

import uuid

import sqlalchemy as sa

from referral_hub import persistence
from referral_hub.extensions import db
from referral_hub.referrals.models import Referral, ReferralEvent

from .caches import listening
from .costs import cost
from .referral_fixtures import move, network, referral_body, send

# Statements and commits of each API call, on SQLite and PostgreSQL alike. Before issue 13
# (2026-12-06): create 12 and 2 commits, status change 11 and 2, read 4 and 1. (Until this
# commit the create's count also held 8 statements of the test's own, reloading its service.)
# One transaction per change: 8, 8, 4. Audit entries only recorded, sealed off the request
# path: 6, 6, 2. Subscriptions found in the process's copy, idempotency by INSERT ... ON
# CONFLICT, the changed referral kept for the answer: 4, 4, 2 (a replay 3). The reference
# people quote (issue 14) takes the sender's next number, one UPDATE: create 5 (a replay 4).
PINNED = {
    "create": {"statements": 5, "commits": 1},
    "replay": {"statements": 4, "commits": 1},
    "status change": {"statements": 4, "commits": 1},
    "read": {"statements": 2, "commits": 1},
}


def test_a_create_a_status_change_and_a_read_cost_what_they_are_pinned_at(app, client):
    net = network(app, client)
    body = referral_body(net["service"].id)  # outside the count: the test's own statements
    send(client, net["sender"], body)
    listening(app)  # the copy of the subscriptions is trusted from now on
    send(client, net["sender"], body)  # caches warmed
    key = str(uuid.uuid4())
    created, create = cost(lambda: send(client, net["sender"], body, key=key))
    replayed, replay = cost(lambda: send(client, net["sender"], body, key=key))
    referral = created.get_json()
    assert replayed.get_json() == referral
    moved, status = cost(lambda: move(client, net["receiver"], referral, "received"))
    url = f"/api/v1/referrals/{referral['id']}"
    read, reading = cost(lambda: client.get(url, headers=net["receiver"].headers))
    assert [r.status_code for r in (created, replayed, moved, read)] == [201, 200, 200, 200]
    costs = {"create": create, "replay": replay, "status change": status, "read": reading}
    assert costs == PINNED


def test_a_row_inserted_at_once_is_in_the_session_as_written(app, client):
    """persistence.insert: one INSERT, the id and defaults the database gave read back, and
    nothing left for a flush to write or a read to load."""
    net = network(app, client)
    referral = send(client, net["sender"], referral_body(net["service"].id)).get_json()
    db.session.expunge_all()
    event = ReferralEvent(
        referral_id=referral["id"], type="referral.noted", version=1, actor="client:test"
    )
    inserted, writing = cost(lambda: persistence.insert(event))
    assert inserted is event and writing == {"statements": 1, "commits": 0}
    assert isinstance(event.id, int) and event.at is not None
    assert not (db.session.new or db.session.dirty)
    found, reading = cost(lambda: db.session.get(ReferralEvent, event.id))
    assert found is event and reading == {"statements": 0, "commits": 0}
    db.session.commit()
    stored = db.session.execute(
        sa.select(ReferralEvent.__table__).where(ReferralEvent.id == event.id)
    ).one()
    assert (stored.type, stored.at, stored.reason) == ("referral.noted", event.at, None)


def test_a_row_whose_unique_values_are_taken_is_not_written(app, client):
    net = network(app, client)
    referral = send(client, net["sender"], referral_body(net["service"].id), key="case-1")
    first = db.session.get(Referral, referral.get_json()["id"])
    columns = sa.inspect(Referral).column_attrs
    taken = Referral(**{c.key: getattr(first, c.key) for c in columns})
    taken.id, taken.reference = str(uuid.uuid4()), None  # the same sender and key
    written, writing = cost(
        lambda: persistence.insert_unless_taken(
            taken, ["sender_organization_id", "idempotency_key"]
        )
    )
    assert written is None and writing == {"statements": 1, "commits": 0}
    assert taken not in db.session
    assert db.session.scalars(sa.select(Referral.id)).all() == [first.id]
