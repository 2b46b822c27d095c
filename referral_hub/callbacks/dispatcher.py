"""Deliver the outbox: signed, at least once, in order per referral, with retries.

Deliveries are claimed with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL, so several
dispatchers never claim the same one), then sent outside any transaction, each attempt within
the total timeout and started only while its lease outlasts it. A dispatcher killed
mid-delivery leaves its lease to expire and the delivery is tried again: at least once, and
the receiver recognises the repeat by its webhook-id.
"""

import functools
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import bindparam, exists, insert, or_, select, update
from sqlalchemy.orm import Session

from .. import clock
from ..config import ConfigError
from ..db_types import UTCDateTime
from ..extensions import db
from . import secrets_store, sender
from .models import Delivery, DeliveryAttempt, Subscription
from .signing import signature_header

log = logging.getLogger(__name__)
CLAIM_SIZE = 20
RECORD_SECONDS = 2  # of a lease, kept after an attempt's deadline to record the attempt
SUCCESS_NOTED_EVERY = timedelta(minutes=1)  # last_success_at's resolution
# The hot path works on the tables (Core): the ORM's bookkeeping cost more than the SQL.
DELIVERIES, ATTEMPTS = Delivery.__table__, DeliveryAttempt.__table__
SUBSCRIPTIONS = Subscription.__table__
PARTNER_COLUMNS = (
    "url",
    "secret_data",
    "previous_secret_data",
    "previous_secret_until",
    "oauth_token_url",
    "oauth_client_id",
    "oauth_client_secret_data",
    "oauth_scope",
)


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with all that its attempt needs, read in the claim's transaction."""

    id: str
    payload: dict
    partner: SimpleNamespace  # the subscription's fields
    lease_ends: float  # time.monotonic()


def check_lease(config):
    """The lease must outlast an attempt, or another dispatcher would send it again."""
    needed = config["CALLBACK_TOTAL_TIMEOUT"] + RECORD_SECONDS
    if config["CALLBACK_LEASE_SECONDS"] <= needed:
        raise ConfigError(
            f"CALLBACK_LEASE_SECONDS must exceed CALLBACK_TOTAL_TIMEOUT + {RECORD_SECONDS} s "
            f"({needed:g} s): a delivery's lease must outlast its attempt."
        )


@functools.cache
def claim_query():
    """Due deliveries in event order, with their subscriptions' fields, locked (SKIP LOCKED);
    a delivery waits while an earlier one of its subscription and referral is pending.
    Parameters: moment, limit. Built once: building it cost more than running it."""
    moment = bindparam("moment", type_=UTCDateTime())
    earlier = DELIVERIES.alias("earlier")
    blocked_by_earlier = exists(
        select(earlier.c.id).where(
            earlier.c.subscription_id == DELIVERIES.c.subscription_id,
            earlier.c.referral_id == DELIVERIES.c.referral_id,
            earlier.c.event_id < DELIVERIES.c.event_id,
            earlier.c.status == "pending",
        )
    )
    partner = [SUBSCRIPTIONS.c[name] for name in PARTNER_COLUMNS]
    return (
        select(DELIVERIES.c.id, DELIVERIES.c.payload, DELIVERIES.c.subscription_id, *partner)
        .join(SUBSCRIPTIONS, SUBSCRIPTIONS.c.id == DELIVERIES.c.subscription_id)
        .where(
            DELIVERIES.c.status == "pending",
            DELIVERIES.c.next_attempt_at <= moment,
            or_(DELIVERIES.c.leased_until.is_(None), DELIVERIES.c.leased_until < moment),
            SUBSCRIPTIONS.c.status == "active",
            ~blocked_by_earlier,
        )
        .order_by(DELIVERIES.c.event_id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=DELIVERIES)
    )


def claim(limit=CLAIM_SIZE):
    """Lease up to `limit` due deliveries for this dispatcher; committed at once."""
    moment = clock.now()
    seconds = current_app.config["CALLBACK_LEASE_SECONDS"]
    rows = db.session.execute(claim_query(), {"moment": moment, "limit": limit}).all()
    if rows:
        db.session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id.in_([row.id for row in rows]))
            .values(leased_until=moment + timedelta(seconds=seconds))
        )
    db.session.commit()
    lease_ends = time.monotonic() + seconds
    return [Claimed(row.id, row.payload, _partner(row), lease_ends) for row in rows]


def _partner(row):
    fields = {name: row._mapping[name] for name in PARTNER_COLUMNS}
    return SimpleNamespace(id=row.subscription_id, **fields)


def _signed(item):
    """The body and headers of one attempt, signed now with the secrets in force."""
    body = json.dumps(item.payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": sender.USER_AGENT,
        "webhook-id": item.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets_store.secrets_in_force(item.partner), item.id, timestamp, body
        ),
    }
    return body, headers


def deliver(item):
    """Try one claimed delivery once and record the attempt; returns True when that disabled
    the subscription. An attempt its lease would not outlast is not started, and the delivery
    goes back to be claimed again."""
    total = current_app.config["CALLBACK_TOTAL_TIMEOUT"]
    if item.lease_ends - time.monotonic() < total + RECORD_SECONDS:
        _release(item)
        return False
    started = time.monotonic()
    try:
        body, headers = _signed(item)
        answer = sender.post(item.partner, body, headers, total)
    except Exception as exc:  # a fault of ours: recorded and retried like a partner's
        log.exception("delivery %s failed unexpectedly", item.id)
        answer = sender.Answer(error=f"unexpected error: {type(exc).__name__}")
    return record(item, answer, int((time.monotonic() - started) * 1000))


def _release(item):
    db.session.execute(
        update(DELIVERIES).where(DELIVERIES.c.id == item.id).values(leased_until=None)
    )
    db.session.commit()


def record(item, answer, duration_ms):
    """One UPDATE of the delivery and one INSERT of the attempt; the subscription is written
    only when its state changes. Returns True when the subscription was disabled."""
    moment = clock.now()
    changes = {"attempts": DELIVERIES.c.attempts + 1, "leased_until": None}
    if answer.succeeded:
        changes.update(status="delivered", delivered_at=moment)
    found = db.session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.id == item.id)
        .values(changes)
        .returning(DELIVERIES.c.status, DELIVERIES.c.attempts)
    ).first()
    if found is None:  # the subscription was deleted meanwhile
        db.session.commit()
        return False
    db.session.execute(
        insert(ATTEMPTS).values(
            delivery_id=item.id,
            at=moment,
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=duration_ms,
            response_excerpt=answer.excerpt,
        )
    )
    disabled = False
    if answer.succeeded:
        _note_success(item.partner.id, moment)
    elif answer.status_code == 410:
        disabled = _disable(item.partner.id, "The partner answered 410 Gone.")
    elif found.status == "pending":  # else settled while this attempt ran
        disabled = _note_failure(item, found.attempts, answer, moment)
    db.session.commit()
    return disabled


def _note_success(subscription_id, moment):
    """Clear failing_since at once, but move last_success_at at most once a minute: written by
    every delivery, the subscription's row would queue the dispatchers on its lock."""
    columns = SUBSCRIPTIONS.c
    db.session.execute(
        update(SUBSCRIPTIONS)
        .where(
            columns.id == subscription_id,
            or_(
                columns.failing_since.is_not(None),
                columns.last_success_at.is_(None),
                columns.last_success_at < moment - SUCCESS_NOTED_EVERY,
            ),
        )
        .values(last_success_at=moment, failing_since=None)
    )


def _note_failure(item, attempts, answer, moment):
    subscription = db.session.get(Subscription, item.partner.id)
    subscription.failing_since = subscription.failing_since or moment
    limit = timedelta(days=current_app.config["CALLBACK_DISABLE_AFTER_DAYS"])
    if moment - subscription.failing_since >= limit:
        return _disable(subscription.id, "No successful delivery for too long.")
    wait = sender.retry_after(answer.headers) if answer.status_code in (429, 503) else None
    db.session.execute(
        update(DELIVERIES).where(DELIVERIES.c.id == item.id).values(_next_try(attempts, wait))
    )
    return False


def _next_try(attempts, retry_after):
    """The next attempt's time by the retry schedule (with jitter), or parked as failed."""
    schedule = current_app.config["CALLBACK_RETRY_SCHEDULE"]
    if attempts >= len(schedule):
        return {"status": "failed"}
    delay = schedule[attempts] * random.uniform(0.9, 1.1)  # jitter spreads many retries
    if retry_after is not None:
        delay = max(delay, retry_after)
    return {"next_attempt_at": clock.now() + timedelta(seconds=delay)}


def _disable(subscription_id, reason):
    db.session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id)
        .values(status="disabled", disabled_reason=reason)
    )
    db.session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.subscription_id == subscription_id, DELIVERIES.c.status == "pending")
        .values(status="failed", leased_until=None)  # a lease would hold up a later replay
    )
    return True


def dispatch_due(limit=CLAIM_SIZE):
    """Claim and deliver what is due now; returns how many were claimed."""
    claimed = claim(limit)
    deliver_all(claimed)
    return len(claimed)


def deliver_all(claimed):
    """Deliver what one claim leased, one after the other."""
    disabled = set()  # their deliveries in this claim were parked with them
    for item in claimed:
        if item.partner.id in disabled:
            continue
        try:
            if deliver(item):
                disabled.add(item.partner.id)
        except Exception:
            log.exception("recording delivery %s failed; its lease will expire", item.id)
            db.session.rollback()


class Dispatcher:
    """Background threads that deliver right after a commit enqueues, and poll otherwise.

    CALLBACK_DISPATCHER_THREADS threads share the outbox as separate processes do, through
    FOR UPDATE SKIP LOCKED; SQLite has no row locks and gets one. A wake-up goes to one idle
    thread, so that a commit costs one claim, not one per thread; a thread whose claim came
    back full wakes another to help.
    """

    claim_size = 10

    def __init__(self, app):
        check_lease(app.config)
        self.app = app
        self._changed = threading.Condition()
        self._wakes = 0
        self._stopping = False
        self._threads = []

    def wake(self):
        with self._changed:
            self._wakes = min(self._wakes + 1, max(len(self._threads), 1))
            self._changed.notify()

    def start(self):
        if self._threads:
            return
        self._stopping = False  # started again after a stop
        self._threads = [
            threading.Thread(target=self._run, name=f"callback-dispatcher-{n}", daemon=True)
            for n in range(self._thread_count())
        ]
        for thread in self._threads:
            thread.start()

    def stop(self):
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []

    def _thread_count(self):
        with self.app.app_context():
            if db.engine.dialect.name == "sqlite":
                return 1
        return max(self.app.config["CALLBACK_DISPATCHER_THREADS"], 1)

    def _woken(self):
        """Wait for a wake-up or the poll interval; False once stopping."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._wakes or self._stopping, self.app.config["CALLBACK_POLL_SECONDS"]
            )
            self._wakes = max(self._wakes - 1, 0)
            return not self._stopping

    def _run(self):
        while self._woken():
            with self.app.app_context():
                try:
                    with db.engine.connect() as connection:
                        # One connection for the pass: checking one out for each transaction
                        # costs a round trip each (pool_pre_ping).
                        db.session.registry.set(Session(bind=connection))
                        self._drain()
                except Exception:
                    log.exception("dispatcher pass failed")
                finally:
                    db.session.remove()

    def _drain(self):
        while not self._stopping:
            claimed = claim(self.claim_size)
            if not claimed:
                return
            if len(claimed) == self.claim_size:
                self.wake()
            deliver_all(claimed)
