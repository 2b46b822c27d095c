"""Turn referral events into deliveries, in the same transaction as the change."""

from sqlalchemy import String, insert, literal, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from .. import clock, commit_hooks
from ..extensions import db
from . import subscribers
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
            "reference": referral.reference,
            "status": event.to_status,
            "previous_status": event.from_status,
            "version": event.version,
            "service_id": referral.service_id,
        },
    }


class new_message_id(FunctionElement):
    """A fresh delivery id made by the database, `msg_` and 32 random hex digits (the form
    uuid4().hex has), for deliveries inserted by INSERT ... SELECT."""

    type = String()
    inherit_cache = True


@compiles(new_message_id, "postgresql")
def _new_message_id_postgresql(_element, _compiler, **_kwargs):
    return "'msg_' || replace(gen_random_uuid()::text, '-', '')"


@compiles(new_message_id, "sqlite")
def _new_message_id_sqlite(_element, _compiler, **_kwargs):
    return "'msg_' || lower(hex(randomblob(16)))"


def enqueue(event, referral):
    """One delivery per active or paused subscription of each party that hears of the event.

    Which subscriptions want it comes from this process's copy (subscribers.py), not from a
    query; the deliveries are written by one INSERT ... SELECT that takes only those still
    there and not disabled, so a copy a moment stale never writes a delivery for a subscription
    just deleted or disabled. When nobody subscribes, nothing is sent to the database."""
    parties = AUDIENCE.get(event.type)
    if not parties:
        return 0
    organizations = {
        "sender": referral.sender_organization_id,
        "receiver": referral.receiver_organization_id,
    }
    wanted = sorted({organizations[p] for p in parties})
    subscription_ids = subscribers.of(wanted, event.type)
    if not subscription_ids:
        return 0
    columns = Delivery.__table__.c
    fixed = {
        columns.referral_id: referral.id,
        columns.event_id: event.id,
        columns.event_type: event.type,
        columns.payload: payload(event, referral),
        columns.status: "pending",
        columns.attempts: 0,
        columns.next_attempt_at: clock.now(),
    }
    rows = select(
        new_message_id(),
        Subscription.id,
        *(literal(value, column.type) for column, value in fixed.items()),
    ).where(Subscription.id.in_(subscription_ids), Subscription.status != "disabled")
    target = [columns.id, columns.subscription_id, *fixed]
    count = db.session.execute(insert(Delivery).from_select(target, rows)).rowcount
    if count:
        announce()
    return count


def announce():
    """Wake the dispatchers once this transaction commits: this process's right after the
    commit, other processes' (`referral-hub worker`) by a NOTIFY that PostgreSQL delivers when,
    and only if, it commits; once per transaction, however many deliveries it enqueues."""
    if commit_hooks.mark("callbacks_enqueued"):
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"NOTIFY {CHANNEL}"))


# Delivery starts right after the commit that enqueued it, not at the next poll.
commit_hooks.after_commit(
    "callbacks_enqueued", lambda extensions: extensions["hub_dispatcher"].wake()
)
