"""Deliver the outbox: signed, at least once, in order per referral, with retries.

Deliveries are claimed with a short lease (FOR UPDATE SKIP LOCKED on PostgreSQL, so several
dispatchers never claim the same one), then sent outside any transaction. A dispatcher killed
mid-delivery leaves its lease to expire and the delivery is tried again: at least once, and
the receiver recognises the repeat by its webhook-id.
"""

import json
import logging
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import SimpleNamespace

import requests
from flask import current_app
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import aliased

from .. import clock
from ..extensions import db
from . import partner_tokens, secrets_store, targets
from .models import Delivery, DeliveryAttempt, Subscription
from .signing import signature_header

log = logging.getLogger(__name__)
USER_AGENT = "ReferralHub-Callbacks/1"
EXCERPT = 200
EXCERPT_BYTES = 2048  # read of a partner's answer, to make the excerpt from


def _due_query(moment):
    earlier = aliased(Delivery)
    blocked_by_earlier = exists(
        select(earlier.id).where(
            earlier.subscription_id == Delivery.subscription_id,
            earlier.referral_id == Delivery.referral_id,
            earlier.event_id < Delivery.event_id,
            earlier.status == "pending",
        )
    )
    return (
        select(Delivery.id)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(
            Delivery.status == "pending",
            Delivery.next_attempt_at <= moment,
            or_(Delivery.leased_until.is_(None), Delivery.leased_until < moment),
            Subscription.status == "active",
            ~blocked_by_earlier,
        )
        .order_by(Delivery.event_id)
    )


def claim(limit=20):
    """Lease up to `limit` due deliveries for this dispatcher; committed at once."""
    moment = clock.now()
    query = _due_query(moment).limit(limit).with_for_update(skip_locked=True, of=Delivery)
    ids = list(db.session.scalars(query))
    if ids:
        lease = moment + timedelta(seconds=current_app.config["CALLBACK_LEASE_SECONDS"])
        db.session.execute(
            db.update(Delivery).where(Delivery.id.in_(ids)).values(leased_until=lease)
        )
    db.session.commit()
    return ids


def _excerpt(text):
    """A short, printable excerpt of what the partner answered; never more."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text or "")
    return " ".join(printable.split())[:EXCERPT] or None


def _outgoing(subscription, delivery):
    """Everything a send needs, read before the transaction ends: nothing is held open while
    the partner answers."""
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets_store.secrets_in_force(subscription), delivery.id, timestamp, body
        ),
    }
    partner = SimpleNamespace(
        id=subscription.id,
        url=subscription.url,
        oauth_token_url=subscription.oauth_token_url,
        oauth_client_id=subscription.oauth_client_id,
        oauth_client_secret_data=subscription.oauth_client_secret_data,
        oauth_scope=subscription.oauth_scope,
    )
    return partner, body, headers


def _send(partner, body, headers):
    """POST the signed body; returns (status code, error, excerpt, headers)."""
    targets.check_url(partner.url)  # the rules in force now, not at registration
    with targets.session() as http:
        answer = _post(http, partner, body, headers, renew_token=False)
        if answer[0] == 401 and partner.oauth_token_url:
            answer = _post(http, partner, body, headers, renew_token=True)
    status_code, excerpt, answer_headers = answer
    error = "redirect not followed" if 300 <= status_code < 400 else None
    return status_code, error, excerpt, answer_headers


def _post(http, partner, body, headers, renew_token):
    """One POST, with the partner's bearer token when it protects its endpoint with OAuth.

    Only the start of the answer is read: a partner's long answer costs neither memory nor time.
    """
    config = current_app.config
    if partner.oauth_token_url:
        token = partner_tokens.token_for(partner, renew=renew_token)
        headers = {**headers, "authorization": f"Bearer {token}"}
    with http.post(
        partner.url,
        data=body,
        headers=headers,
        timeout=(config["CALLBACK_CONNECT_TIMEOUT"], config["CALLBACK_TOTAL_TIMEOUT"]),
        allow_redirects=False,
        stream=True,
    ) as response:
        try:
            start = next(response.iter_content(EXCERPT_BYTES), b"")
        except requests.RequestException:
            start = b""  # the status counts even if the body breaks off
        return response.status_code, _excerpt(start.decode("utf-8", "replace")), response.headers


def _retry_after(headers):
    """Seconds from a Retry-After header (delay-seconds or HTTP-date), at most a day."""
    value = (headers or {}).get("Retry-After", "").strip()
    if value.isdigit():
        seconds = int(value)
    else:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0), 86400)


def _schedule_next(delivery, retry_after):
    schedule = current_app.config["CALLBACK_RETRY_SCHEDULE"]
    if delivery.attempts >= len(schedule):
        delivery.status = "failed"
        return
    delay = schedule[delivery.attempts]
    delay = delay * random.uniform(0.9, 1.1)  # jitter spreads retries of many deliveries
    if retry_after is not None:
        delay = max(delay, retry_after)
    delivery.next_attempt_at = clock.now() + timedelta(seconds=delay)


def _disable(subscription, reason):
    subscription.status, subscription.disabled_reason = "disabled", reason
    db.session.execute(
        db.update(Delivery)
        .where(Delivery.subscription_id == subscription.id, Delivery.status == "pending")
        .values(status="failed", leased_until=None)  # a lease would hold up a later replay
    )


def deliver(delivery_id):
    """Try one leased delivery once and record the attempt."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.status != "pending":
        db.session.commit()
        return
    partner, body, headers = _outgoing(delivery.subscription, delivery)
    db.session.commit()  # no transaction stays open while the partner answers
    started = time.monotonic()
    status_code, error, excerpt, answer_headers = None, None, None, None
    try:
        status_code, error, excerpt, answer_headers = _send(partner, body, headers)
    except targets.TargetRefused as exc:
        error = f"refused target: {exc}"[:200]
    except partner_tokens.TokenError as exc:
        error = f"partner token: {exc}"[:200]
    except requests.Timeout:
        error = "timeout"
    except requests.RequestException as exc:
        error = f"connection failed: {type(exc).__name__}"
    duration = int((time.monotonic() - started) * 1000)
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:  # the subscription was deleted meanwhile
        db.session.commit()
        return
    subscription = delivery.subscription
    delivery.attempts += 1
    delivery.leased_until = None
    delivery.attempt_log.append(
        DeliveryAttempt(
            status_code=status_code, error=error, duration_ms=duration, response_excerpt=excerpt
        )
    )
    moment = clock.now()
    if status_code is not None and 200 <= status_code < 300:
        delivery.status, delivery.delivered_at = "delivered", moment
        subscription.last_success_at, subscription.failing_since = moment, None
    elif status_code == 410:
        _disable(subscription, "The partner answered 410 Gone.")
    elif delivery.status != "pending":
        pass  # settled while this attempt ran (delivered after a lease expired, or parked)
    else:
        subscription.failing_since = subscription.failing_since or moment
        limit = timedelta(days=current_app.config["CALLBACK_DISABLE_AFTER_DAYS"])
        if moment - subscription.failing_since >= limit:
            _disable(subscription, "No successful delivery for too long.")
        else:
            retry_after = _retry_after(answer_headers) if status_code in (429, 503) else None
            _schedule_next(delivery, retry_after)
    db.session.commit()


def dispatch_due(limit=20):
    """Claim and deliver what is due now; returns how many were tried."""
    ids = claim(limit)
    for delivery_id in ids:
        try:
            deliver(delivery_id)
        except Exception:
            log.exception("delivery %s failed unexpectedly", delivery_id)
            db.session.rollback()
    return len(ids)


class Dispatcher:
    """A background thread that delivers right after a commit enqueues, and polls otherwise."""

    def __init__(self, app):
        self.app = app
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None

    def wake(self):
        self._wake.set()

    def start(self):
        if self._thread is None:
            self._stop.clear()  # started again after a stop
            self._thread = threading.Thread(
                target=self._run, name="callback-dispatcher", daemon=True
            )
            self._thread.start()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self):
        poll = self.app.config["CALLBACK_POLL_SECONDS"]
        while not self._stop.is_set():
            self._wake.wait(timeout=poll)
            self._wake.clear()
            with self.app.app_context():
                try:
                    while dispatch_due() and not self._stop.is_set():
                        pass
                except Exception:
                    log.exception("dispatcher pass failed")
                finally:
                    db.session.remove()
