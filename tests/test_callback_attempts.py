"""The dispatcher's parts with plain values: what a claim leases, what a recorded answer does.

The answers are made here (no network): what matters is what the hub does with each one.
"""

import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from referral_hub_kit import CallbackReceiver

from referral_hub import clock
from referral_hub.callbacks import attempts, sender
from referral_hub.callbacks.models import Delivery, DeliveryAttempt, Subscription
from referral_hub.config import ConfigError
from referral_hub.extensions import db

from .factories import make_org
from .referral_fixtures import client_party
from .test_callbacks import free_port

T = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LEASE = 60


@pytest.fixture
def frozen():
    """The hub's clock pinned at T; move(seconds) sets it to T + seconds."""

    def move(seconds):
        clock.freeze(T + timedelta(seconds=seconds))
        return clock.now()

    move(0)
    yield move
    clock.freeze(None)


@pytest.fixture
def config(app):
    """The callback settings of these tests, restored afterwards."""
    keys = ("CALLBACK_RETRY_SCHEDULE", "CALLBACK_DISABLE_AFTER_DAYS", "CALLBACK_LEASE_SECONDS")
    saved = {key: app.config[key] for key in keys}
    app.config.update(
        CALLBACK_RETRY_SCHEDULE=[0, 100, 200],
        CALLBACK_DISABLE_AFTER_DAYS=5,
        CALLBACK_LEASE_SECONDS=LEASE,
    )
    yield app.config
    app.config.update(saved)


def subscribe(client, url="http://127.0.0.1:9/callbacks"):
    """A partner's subscription made through the API, as the API shows it (with its secret)."""
    party = client_party(client, make_org())
    response = client.post("/api/v1/subscriptions", json={"url": url}, headers=party.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def partner_id(client, frozen, config):
    return subscribe(client)["id"]


def due(subscription_id, event_id, referral_id=None, at=T, status="pending"):
    """One delivery in the outbox, due at `at`; returns its id."""
    delivery = Delivery(
        id=f"msg_{uuid.uuid4().hex}",
        subscription_id=subscription_id,
        referral_id=referral_id or str(uuid.uuid4()),
        event_id=event_id,
        event_type="referral.created",
        payload={"type": "referral.created", "data": {"event": event_id}},
        next_attempt_at=at,
        status=status,
    )
    db.session.add(delivery)
    db.session.commit()
    return delivery.id


def ids(claimed):
    return [item.id for item in claimed]


def delivery(delivery_id):
    """The delivery as committed: claims and records commit their own work."""
    db.session.rollback()
    return db.session.get(Delivery, delivery_id)


def subscription(subscription_id):
    db.session.rollback()
    return db.session.get(Subscription, subscription_id)


def answered(item, status_code=None, error=None, headers=None):
    answer = sender.Answer(
        status_code=status_code, error=error, excerpt="ok", headers=headers or {}
    )
    return attempts.Result(item, answer, duration_ms=12)


def record_one(item, status_code=None, **answer):
    return attempts.record([answered(item, status_code, **answer)])


# The lease


def test_a_lease_must_outlast_the_attempt_and_the_time_to_record_it():
    with pytest.raises(ConfigError, match="CALLBACK_LEASE_SECONDS"):
        attempts.check_lease({"CALLBACK_TOTAL_TIMEOUT": 15, "CALLBACK_LEASE_SECONDS": 17})
    attempts.check_lease({"CALLBACK_TOTAL_TIMEOUT": 15, "CALLBACK_LEASE_SECONDS": 18})


def test_an_attempt_is_not_started_when_its_lease_would_not_outlast_it(app, partner_id):
    due(partner_id, 1)
    (item,) = attempts.claim(5)
    total = app.config["CALLBACK_TOTAL_TIMEOUT"]
    short = attempts.Claimed(item.id, item.payload, item.partner, time.monotonic() + total + 1)
    not_started = attempts.attempt(short)
    assert not_started.answer is None
    attempts.record([not_started])
    found = delivery(item.id)
    assert (found.attempts, found.leased_until, found.status) == (0, None, "pending")
    assert ids(attempts.claim(5)) == [item.id]  # given back: due again at once


def test_an_attempt_sends_the_payload_signed_with_the_secrets_in_force(client, frozen, config):
    port = free_port()
    created = subscribe(client, f"http://127.0.0.1:{port}/callbacks")
    sent = due(created["id"], 1)
    (item,) = attempts.claim(5)
    with CallbackReceiver(created["secret"], port=port) as receiver:
        result = attempts.attempt(item)
        assert receiver.rejected == []
        (event,) = receiver.events
    assert result.answer.status_code == 204 and result.item is item
    assert isinstance(result.duration_ms, int) and 0 <= result.duration_ms < 5000
    assert (event["webhook_id"], event["payload"]) == (sent, item.payload)
    headers = {name.lower(): value for name, value in event["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == sender.USER_AGENT
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5


def test_a_fault_of_the_hub_while_attempting_is_an_answer_without_detail(partner_id):
    due(partner_id, 1)
    (item,) = attempts.claim(5)
    unreadable = SimpleNamespace(**{**vars(item.partner), "secret_data": "not sealed"})
    result = attempts.attempt(attempts.Claimed(item.id, item.payload, unreadable, item.lease_ends))
    assert result.answer.status_code is None
    assert result.answer.error.startswith("unexpected error: ")
    assert "sealed" not in result.answer.error


# Claims


def test_a_claim_leases_due_deliveries_in_event_order_up_to_its_limit(partner_id):
    third, first, second = due(partner_id, 3), due(partner_id, 1), due(partner_id, 2)
    due(partner_id, 4, at=T + timedelta(seconds=LEASE + 10))
    claimed = attempts.claim(2)
    assert ids(claimed) == [first, second]
    assert all(delivery(d).leased_until == T + timedelta(seconds=LEASE) for d in (first, second))
    assert delivery(third).leased_until is None
    partner = claimed[0].partner
    assert partner.id == partner_id and partner.url == "http://127.0.0.1:9/callbacks"
    assert partner.failing_since is None and partner.secret_data
    assert claimed[0].payload == {"type": "referral.created", "data": {"event": 1}}
    assert LEASE - 5 < claimed[0].lease_ends - time.monotonic() <= LEASE
    assert ids(attempts.claim(10)) == [third]  # the others are leased
    assert attempts.claim(10) == []


def test_a_lease_holds_until_it_has_run_out(partner_id, frozen):
    leased = due(partner_id, 1)
    attempts.claim(5)
    frozen(LEASE)
    assert attempts.claim(5) == []
    frozen(LEASE + 0.001)
    assert ids(attempts.claim(5)) == [leased]


def test_a_delivery_waits_for_the_earlier_pending_one_of_its_subscription_and_referral(
    client, partner_id
):
    other_partner = subscribe(client)["id"]
    referral = str(uuid.uuid4())
    first = due(partner_id, 1, referral)
    attempts.claim(1)
    second = due(partner_id, 2, referral)
    unrelated = due(partner_id, 3)
    elsewhere = due(other_partner, 4, referral)
    assert ids(attempts.claim(10)) == [unrelated, elsewhere]
    db.session.execute(db.update(Delivery).where(Delivery.id == first).values(status="delivered"))
    db.session.commit()
    assert ids(attempts.claim(10)) == [second]


def test_deliveries_of_a_subscription_that_is_not_active_are_not_claimed(partner_id):
    due(partner_id, 1)
    subscription(partner_id).status = "paused"
    db.session.commit()
    assert attempts.claim(5) == []


# Recording answers


def test_a_success_is_recorded_with_its_attempt(partner_id, frozen):
    delivered, waiting = due(partner_id, 1), due(partner_id, 2)
    item, _ = attempts.claim(5)
    frozen(3)
    assert record_one(item, 204) == set()
    found = delivery(delivered)
    assert (found.status, found.attempts, found.leased_until) == ("delivered", 1, None)
    assert found.delivered_at == T + timedelta(seconds=3)
    (row,) = db.session.scalars(db.select(DeliveryAttempt)).all()
    assert (row.delivery_id, row.at, row.status_code, row.error) == (
        delivered,
        T + timedelta(seconds=3),
        204,
        None,
    )
    assert (row.duration_ms, row.response_excerpt) == (12, "ok")
    assert delivery(waiting).status == "pending"


def test_a_success_clears_failing_since_at_once_and_notes_itself_once_a_minute(partner_id, frozen):
    for event in range(4):
        due(partner_id, event + 1)
    items = attempts.claim(5)
    record_one(items[0], 200)
    assert subscription(partner_id).last_success_at == T
    frozen(59)
    record_one(items[1], 200)
    assert subscription(partner_id).last_success_at == T  # not written by every delivery
    subscription(partner_id).failing_since = T
    db.session.commit()
    record_one(items[2], 200)
    found = subscription(partner_id)
    assert (found.failing_since, found.last_success_at) == (None, T + timedelta(seconds=59))
    frozen(59 + 60.001)
    record_one(items[3], 200)
    assert subscription(partner_id).last_success_at == T + timedelta(seconds=119.001)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_a_failure_is_counted_and_retried_by_the_schedule_with_at_most_a_tenth_of_jitter(
    partner_id, monkeypatch, factor
):
    failing, other = due(partner_id, 1), due(partner_id, 2)
    item, _ = attempts.claim(5)
    monkeypatch.setattr(attempts.random, "uniform", lambda low, high: {0.9: low, 1.1: high}[factor])
    assert record_one(item, 500, headers={"Retry-After": "1000"}) == set()
    found = delivery(failing)
    assert (found.status, found.attempts, found.leased_until) == ("pending", 1, None)
    # the schedule's second step (100 s), jittered; Retry-After counts only with 429 and 503
    assert found.next_attempt_at == T + timedelta(seconds=100 * factor)
    assert delivery(other).next_attempt_at == T  # no other delivery is moved
    assert subscription(partner_id).failing_since == T
    (row,) = db.session.scalars(db.select(DeliveryAttempt)).all()
    assert (row.status_code, row.error) == (500, None)


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"), [(429, "1000", 1000), (503, "1000", 1000), (503, "5", 100)]
)
def test_retry_after_of_a_busy_partner_only_lengthens_the_wait(
    partner_id, monkeypatch, status, retry_after, wait
):
    failing = due(partner_id, 1)
    (item,) = attempts.claim(5)
    monkeypatch.setattr(attempts.random, "uniform", lambda low, high: 1)
    record_one(item, status, headers={"Retry-After": retry_after})
    assert delivery(failing).next_attempt_at == T + timedelta(seconds=wait)


def test_after_the_last_retry_a_delivery_is_parked_as_failed(partner_id, frozen):
    parked = due(partner_id, 1)
    for attempt in range(3):
        frozen(attempt * 300)
        (item,) = attempts.claim(5)
        record_one(item, error="connection failed")
    found = delivery(parked)
    assert (found.status, found.attempts) == ("failed", 3)
    assert subscription(partner_id).status == "active"


def test_410_disables_only_its_subscription_and_parks_its_waiting_deliveries(client, partner_id):
    other_partner = subscribe(client)["id"]
    gone, leased, waiting = due(partner_id, 1), due(partner_id, 2), due(partner_id, 3)
    delivered = due(partner_id, 0, status="delivered")
    elsewhere = due(other_partner, 4)
    items = attempts.claim(2)
    assert ids(items) == [gone, leased]
    # both answered 410 in one batch: the subscription is disabled once
    assert attempts.record([answered(item, 410) for item in items]) == {partner_id}
    found = subscription(partner_id)
    assert (found.status, found.disabled_reason) == ("disabled", "The partner answered 410 Gone.")
    assert [delivery(d).status for d in (gone, leased, waiting)] == ["failed"] * 3
    assert delivery(leased).attempts == 1
    assert delivery(delivered).status == "delivered"
    assert delivery(elsewhere).status == "pending"
    assert subscription(other_partner).status == "active"


def test_a_subscription_failing_for_the_configured_days_is_disabled(partner_id, frozen):
    limit = timedelta(days=5).total_seconds()
    for event, (seconds, disabled) in enumerate(
        ((0, set()), (limit - 1, set()), (limit, {partner_id}))
    ):
        now = frozen(seconds)
        fresh = due(partner_id, event + 1, at=now)
        item = next(item for item in attempts.claim(10) if item.id == fresh)
        assert record_one(item, 500) == disabled
    # failing since T as the last claim read it: exactly the limit, so it is disabled
    found = subscription(partner_id)
    assert (found.status, found.disabled_reason) == (
        "disabled",
        "No successful delivery for too long.",
    )
    assert found.failing_since == T
    assert {d.status for d in db.session.scalars(db.select(Delivery))} == {"failed"}


def test_a_delivery_settled_or_gone_while_its_attempt_ran_is_left_as_it_is(client, partner_id):
    settled = due(partner_id, 1)
    (item,) = attempts.claim(5)
    db.session.execute(db.update(Delivery).where(Delivery.id == settled).values(status="failed"))
    db.session.commit()
    assert record_one(item, 500) == set()
    found = delivery(settled)
    assert (found.status, found.next_attempt_at, found.attempts) == ("failed", T, 1)

    other_partner = subscribe(client)["id"]
    gone = due(other_partner, 2)
    (item,) = attempts.claim(5)
    db.session.delete(subscription(other_partner))
    db.session.commit()
    assert attempts.record([answered(item, 200)]) == set()
    assert attempts.record([answered(item, 500)]) == set()
    assert db.session.get(Delivery, gone) is None
    assert (
        db.session.scalars(
            db.select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == gone)
        ).all()
        == []
    )


def test_a_batch_with_a_success_first_still_disables_a_gone_partner(client, partner_id):
    other_partner = subscribe(client)["id"]
    fine, gone = due(other_partner, 1), due(partner_id, 2)
    items = {item.id: item for item in attempts.claim(10)}
    batch = [answered(items[fine], 200), answered(items[gone], 410)]
    assert attempts.record(batch) == {partner_id}
    assert (subscription(other_partner).status, subscription(partner_id).status) == (
        "active",
        "disabled",
    )
