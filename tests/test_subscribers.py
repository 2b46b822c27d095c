"""Which subscriptions hear an event: found in the process's copy, not by a query per event; a
change made here, or (PostgreSQL) in another process, is heard at once; a copy a moment stale
never writes a delivery for a subscription deleted or disabled meanwhile (issue 13)."""

import time

import pytest
import sqlalchemy as sa

from referral_hub import create_app
from referral_hub.callbacks import subscribers
from referral_hub.callbacks.models import Delivery, Subscription
from referral_hub.extensions import db

from .caches import listening
from .conftest import hub_config
from .referral_fixtures import network
from .test_callbacks import new_referral, stored, subscribe

TARGET = "http://127.0.0.1:9/callbacks"  # nothing is delivered in these tests


@pytest.fixture
def net(app, client):
    return network(app, client)


def test_events_find_their_subscriptions_without_a_query(app, client, net, statements):
    subscription = subscribe(client, net["receiver"], TARGET)
    new_referral(client, net)
    listening(app)
    new_referral(client, net)
    statements.clear()
    new_referral(client, net)
    assert not [sql for sql in statements if sql.startswith("SELECT") and "subscriptions" in sql]
    assert len(stored(subscription_id=subscription["id"])) == 3


def test_a_subscription_made_here_hears_the_very_next_event(app, client, net):
    new_referral(client, net)
    listening(app)
    new_referral(client, net)  # the copy says: nobody subscribes
    subscription = subscribe(client, net["receiver"], TARGET)
    new_referral(client, net)
    assert len(stored(subscription_id=subscription["id"])) == 1
    client.delete(f"/api/v1/subscriptions/{subscription['id']}", headers=net["receiver"].headers)
    new_referral(client, net)
    assert stored() == []


def test_a_subscription_made_by_another_process_is_heard(
    app, client, net, database_url, live_port, monkeypatch
):
    """PostgreSQL: at once, by NOTIFY. SQLite: within the copy's lifetime."""
    monkeypatch.setattr(app.extensions[subscribers.NAME], "seconds", 1.0)
    new_referral(client, net)
    listening(app)
    new_referral(client, net)  # the copy says: nobody subscribes
    other = create_app(hub_config(database_url, live_port))
    try:
        subscription = subscribe(other.test_client(), net["receiver"], TARGET)
    finally:
        with other.app_context():
            db.engine.dispose()
    heard_in = 1.5 if db.engine.dialect.name == "sqlite" else 0.5
    deadline = time.monotonic() + heard_in
    while not stored(subscription_id=subscription["id"]):
        assert time.monotonic() < deadline, "the other process's subscription was not heard"
        new_referral(client, net)
        time.sleep(0.05)


def test_a_stale_copy_writes_no_delivery_for_a_subscription_disabled_or_deleted_meanwhile(
    app, client, net
):
    subscription = subscribe(client, net["receiver"], TARGET)
    listening(app)
    new_referral(client, net)
    assert len(stored(subscription_id=subscription["id"])) == 1
    this = Subscription.__table__.c.id == subscription["id"]
    db.session.commit()
    with db.engine.begin() as connection:  # as another process would, before its NOTIFY
        connection.execute(sa.update(Subscription).where(this).values(status="disabled"))
    new_referral(client, net)
    assert len(stored(subscription_id=subscription["id"])) == 1
    with db.engine.begin() as connection:
        connection.execute(sa.delete(Subscription).where(this))
    new_referral(client, net)  # no delivery, and no foreign key broken: 201
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0
