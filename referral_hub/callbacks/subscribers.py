"""Which subscriptions hear an organisation's events, without a query per event.

Each process keeps the live (not disabled) subscriptions in memory (process_cache.py): a
transaction that creates, deletes, pauses, resumes or disables one calls `changed()`.
"""

from flask import current_app
from sqlalchemy import select

from .. import process_cache
from ..extensions import db
from .models import Subscription

NAME = "hub_subscribers"
CHANNEL = "referral_hub_subscriptions"
COPY_SECONDS = 5.0


def cache(app):
    return process_cache.ProcessCache(app, NAME, CHANNEL, COPY_SECONDS, size=1)


def changed():
    """Call in the transaction that changes a subscription's existence, status or events."""
    process_cache.changed(NAME)


def _load():
    """{organization id: [(subscription id, event types)]} of the live subscriptions."""
    rows = db.session.execute(
        select(Subscription.id, Subscription.organization_id, Subscription.event_types).where(
            Subscription.status != "disabled"
        )
    )
    table = {}
    for subscription_id, organization_id, event_types in rows:
        table.setdefault(organization_id, []).append((subscription_id, frozenset(event_types)))
    return table


def of(organization_ids, event_type):
    """Ids of the organisations' live subscriptions that want this event type."""
    table = current_app.extensions[NAME].get(None, _load)
    return [
        subscription_id
        for organization_id in organization_ids
        for subscription_id, event_types in table.get(organization_id, ())
        if event_type in event_types
    ]
