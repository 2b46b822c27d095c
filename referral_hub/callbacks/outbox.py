"""Turn referral events into deliveries, in the same transaction as the change."""

import uuid

from flask import current_app, has_app_context
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import text
from sqlalchemy.orm import Session

from .. import clock
from ..extensions import db
from .models import Delivery, Subscription

CHANNEL = "referral_hub_callbacks"  # PostgreSQL NOTIFY channel of commits that enqueued

# Which party hears of which event.
AUDIENCE = {
    "referral.created": ("receiver",),
    "referral.status_changed": ("sender", "receiver"),
    "referral.consent_withdrawn": ("receiver",),
}


def payload(event, referral):
    """The callback body: ids, states, versions and times, never personal data."""
    return {
        "type": event.type,
        "timestamp": event.at.isoformat().replace("+00:00", "Z"),
        "data": {
            "referral_id": referral.id,
            "status": event.to_status,
            "previous_status": event.from_status,
            "version": event.version,
            "service_id": referral.service_id,
        },
    }


def enqueue(event, referral):
    """One delivery per active or paused subscription of each party that hears of the event."""
    parties = AUDIENCE.get(event.type)
    if not parties:
        return 0
    organizations = {
        "sender": referral.sender_organization_id,
        "receiver": referral.receiver_organization_id,
    }
    wanted = sorted({organizations[p] for p in parties})
    subscriptions = db.session.scalars(
        db.select(Subscription).where(
            Subscription.organization_id.in_(wanted), Subscription.status != "disabled"
        )
    ).all()
    body = payload(event, referral)
    count = 0
    for subscription in subscriptions:
        if event.type in subscription.event_types:
            db.session.add(
                Delivery(
                    id=f"msg_{uuid.uuid4().hex}",
                    subscription_id=subscription.id,
                    referral_id=referral.id,
                    event_id=event.id,
                    event_type=event.type,
                    payload=body,
                    next_attempt_at=clock.now(),
                )
            )
            count += 1
    if count:
        announce()
    return count


def announce():
    """Wake the dispatchers once this transaction commits: this process's right after the
    commit, other processes' (`referral-hub worker`) by a NOTIFY that PostgreSQL delivers when,
    and only if, it commits. Sent now, not at the commit: the commit's last steps hold the
    audit chain's lock, and a round trip there would hold up every other change."""
    if db.session.info.get("callbacks_enqueued"):
        return
    db.session.info["callbacks_enqueued"] = True
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"NOTIFY {CHANNEL}"))


@sqlalchemy_event.listens_for(Session, "after_commit")
def _wake_dispatcher(session):
    """Delivery starts right after the commit that enqueued it, not at the next poll."""
    if session.info.pop("callbacks_enqueued", False) and has_app_context():
        dispatcher = current_app.extensions.get("hub_dispatcher")
        if dispatcher is not None:
            dispatcher.wake()


@sqlalchemy_event.listens_for(Session, "after_rollback")
def _forget(session):
    session.info.pop("callbacks_enqueued", None)
