"""Which subscriptions hear an organisation's events, without a query per event.

Each process keeps the live (not disabled) subscriptions in memory. A transaction that
creates, deletes, pauses, resumes or disables one calls `changed()`: this process forgets its
copy once the change commits, and on PostgreSQL a NOTIFY makes every other process forget
theirs. Each process listens from its first use of the copy and, until its LISTEN is in place,
reads the table every time rather than trust a copy nobody would tell it is stale. SQLite has
no NOTIFY: there, other processes' copies last at most COPY_SECONDS (run one process on SQLite,
as `referral-hub demo` does). A copy never lasts longer than that anyway, should a NOTIFY be
lost.
"""

import os
import threading
import time

from sqlalchemy import select, text

from .. import commit_hooks
from ..extensions import db
from ..listening import ChannelListener
from .models import Subscription

CHANNEL = "referral_hub_subscriptions"
COPY_SECONDS = 5.0


def changed():
    """Call in the transaction that changes a subscription's existence, status or events."""
    commit_hooks.mark("subscriptions_changed")
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"NOTIFY {CHANNEL}"))


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


class Subscribers:
    """This process's copy of the live subscriptions (app.extensions["hub_subscribers"])."""

    def __init__(self, app):
        self.app = app
        self._lock = threading.Lock()
        self._copy = None  # (monotonic time it was read, table)
        self._generation = 0  # bumped by each forget: a read that began before is not kept
        self._listener = None
        self._listener_pid = None

    def of(self, organization_ids, event_type):
        """Ids of the organisations' live subscriptions that want this event type."""
        table = self._table()
        return [
            subscription_id
            for organization_id in organization_ids
            for subscription_id, event_types in table.get(organization_id, ())
            if event_type in event_types
        ]

    def forget(self):
        with self._lock:
            self._generation += 1
            self._copy = None

    def _table(self):
        trusted = self._told_of_changes()
        with self._lock:
            copy, generation = self._copy, self._generation
        now = time.monotonic()
        if trusted and copy is not None and now - copy[0] < COPY_SECONDS:
            return copy[1]
        table = _load()
        if trusted:
            with self._lock:
                if self._generation == generation:
                    self._copy = (now, table)
        return table

    def _told_of_changes(self):
        """Whether other processes' changes reach this one: on PostgreSQL, while it listens
        (started here, in the process that serves: a forked worker listens for itself)."""
        if db.engine.dialect.name != "postgresql":
            return True
        with self._lock:
            if self._listener_pid != os.getpid():
                self._listener_pid = os.getpid()
                self._listener = ChannelListener(self.app, CHANNEL, self.forget)
                self._listener.start()
            return self._listener.listening.is_set()

    def stop(self):
        if self._listener is not None:
            self._listener.stop()


# This process forgets its copy once the change commits (others, by NOTIFY).
commit_hooks.after_commit(
    "subscriptions_changed", lambda extensions: extensions["hub_subscribers"].forget()
)
