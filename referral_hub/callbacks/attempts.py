"""Claim due deliveries, attempt one, record attempts: what a dispatcher is made of.

Claims and records touch the database and never the network; an attempt touches the network
and never the database, so a dispatcher can send from several threads while one records.
The hot path works on the tables (Core): the ORM's bookkeeping cost more than the SQL.
"""

import functools
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import bindparam, exists, insert, or_, select, update

from .. import clock
from ..config import ConfigError
from ..db_types import UTCDateTime
from ..extensions import db
from ..notifications import service as notifications
from . import secrets_store, sender, subscribers
from .models import Delivery, DeliveryAttempt, Subscription
from .signing import signature_header

log = logging.getLogger(__name__)
RECORD_SECONDS = 2  # of a lease, kept after an attempt's deadline to record the attempt
SUCCESS_NOTED_EVERY = timedelta(minutes=1)  # last_success_at's resolution
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
    "failing_since",
)


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with all that its attempt needs, read in the claim's transaction."""

    id: str
    payload: dict
    partner: SimpleNamespace  # the subscription's fields
    lease_ends: float  # time.monotonic()


@dataclass(frozen=True)
class Result:
    """What became of a claimed delivery; no answer: not attempted, its lease is given back."""

    item: Claimed
    answer: sender.Answer | None = None
    duration_ms: int = 0


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


def claim(limit):
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


def attempt(item):
    """Send one claimed delivery once, within the total timeout; not started (no answer) when
    its lease would not outlast it. Faults of the hub are answers too, so they are recorded."""
    total = current_app.config["CALLBACK_TOTAL_TIMEOUT"]
    if item.lease_ends - time.monotonic() < total + RECORD_SECONDS:
        return Result(item)
    started = time.monotonic()
    try:
        body, headers = _signed(item)
        answer = sender.post(item.partner, body, headers, total)
    except Exception as exc:
        log.exception("delivery %s failed unexpectedly", item.id)
        answer = sender.Answer(error=f"unexpected error: {type(exc).__name__}")
    return Result(item, answer, int((time.monotonic() - started) * 1000))


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


def record(results):
    """Record attempts in one transaction: one UPDATE for the delivered, one INSERT of the
    attempts, one UPDATE of the subscriptions that succeeded; each failure schedules its own
    retry. Returns the ids of the subscriptions this disabled."""
    moment = clock.now()
    attempted = [r for r in results if r.answer is not None]
    _give_back([r.item.id for r in results if r.answer is None])
    delivered = {r.item.id for r in attempted if r.answer.succeeded}
    found = _count_delivered(delivered, moment) if delivered else set()
    states = {}  # of the deliveries that were not delivered now
    for r in attempted:
        if not r.answer.succeeded:
            state = _count_failed(r.item.id)
            if state is not None:
                states[r.item.id] = state
    recorded = [r for r in attempted if r.item.id in found or r.item.id in states]
    if recorded:
        db.session.execute(insert(ATTEMPTS), [_attempt_row(r, moment) for r in recorded])
    _note_success({r.item.partner.id for r in recorded if r.item.id in found}, moment)
    disabled = set()
    for r in recorded:
        state, partner = states.get(r.item.id), r.item.partner.id
        if state is None or partner in disabled:
            continue
        if r.answer.status_code == 410:
            disabled.add(_disable(partner, "The partner answered 410 Gone."))
        elif state.status == "pending":  # else settled while the attempt ran
            disabled.add(_note_failure(r, state.attempts, moment))
    db.session.commit()
    return disabled - {None}


def _give_back(ids):
    if ids:
        db.session.execute(
            update(DELIVERIES).where(DELIVERIES.c.id.in_(ids)).values(leased_until=None)
        )


def _count_delivered(ids, moment):
    """Mark delivered; returns the ids still there (a subscription may have been deleted)."""
    done = (
        update(DELIVERIES)
        .where(DELIVERIES.c.id.in_(ids))
        .values(
            attempts=DELIVERIES.c.attempts + 1,
            leased_until=None,
            status="delivered",
            delivered_at=moment,
        )
        .returning(DELIVERIES.c.id)
    )
    return set(db.session.scalars(done))


def _count_failed(delivery_id):
    """Count the attempt; returns (status, attempts), or None if the delivery is gone."""
    counted = (
        update(DELIVERIES)
        .where(DELIVERIES.c.id == delivery_id)
        .values(attempts=DELIVERIES.c.attempts + 1, leased_until=None)
        .returning(DELIVERIES.c.status, DELIVERIES.c.attempts)
    )
    return db.session.execute(counted).first()


def _attempt_row(result, moment):
    answer = result.answer
    return {
        "delivery_id": result.item.id,
        "at": moment,
        "status_code": answer.status_code,
        "error": answer.error,
        "duration_ms": result.duration_ms,
        "response_excerpt": answer.excerpt,
    }


def _note_success(subscription_ids, moment):
    """Clear failing_since at once, but move last_success_at at most once a minute: written by
    every delivery, a subscription's row would queue the dispatchers on its lock."""
    if not subscription_ids:
        return
    columns = SUBSCRIPTIONS.c
    db.session.execute(
        update(SUBSCRIPTIONS)
        .where(
            columns.id.in_(subscription_ids),
            or_(
                columns.failing_since.is_not(None),
                columns.last_success_at.is_(None),
                columns.last_success_at < moment - SUCCESS_NOTED_EVERY,
            ),
        )
        .values(last_success_at=moment, failing_since=None)
    )


def _note_failure(result, attempts, moment):
    """Schedule the next try, or disable a subscription failing for too long (returns its id).

    failing_since as the claim read it decides whether to look again: mostly it need not."""
    partner = result.item.partner
    limit = timedelta(days=current_app.config["CALLBACK_DISABLE_AFTER_DAYS"])
    if partner.failing_since is None or moment - partner.failing_since >= limit:
        subscription = db.session.get(Subscription, partner.id)
        subscription.failing_since = subscription.failing_since or moment
        if moment - subscription.failing_since >= limit:
            return _disable(subscription.id, "No successful delivery for too long.")
    answer = result.answer
    wait = sender.retry_after(answer.headers) if answer.status_code in (429, 503) else None
    db.session.execute(
        update(DELIVERIES).where(DELIVERIES.c.id == result.item.id).values(next_try(attempts, wait))
    )
    return None


def next_try(attempts, retry_after):
    """The next attempt's time by the retry schedule (with jitter), or parked as failed."""
    schedule = current_app.config["CALLBACK_RETRY_SCHEDULE"]
    if attempts >= len(schedule):
        return {"status": "failed"}
    delay = schedule[attempts] * random.uniform(0.9, 1.1)  # jitter spreads many retries
    if retry_after is not None:
        delay = max(delay, retry_after)
    return {"next_attempt_at": clock.now() + timedelta(seconds=delay)}


def _disable(subscription_id, reason):
    """Disable the subscription, park its waiting deliveries and tell the organisation's admins;
    returns its id."""
    subscribers.changed()
    db.session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id)
        .values(status="disabled", disabled_reason=reason)
    )
    db.session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.subscription_id == subscription_id, DELIVERIES.c.status == "pending")
        .values(status="failed")  # a replay clears a lease still running
    )
    subscription = db.session.get(Subscription, subscription_id)
    if subscription is not None:
        notifications.subscription_disabled(subscription, reason)
    return subscription_id
