"""Send the notifications outbox: at least once, retried, each attempt recorded.

Messages are claimed with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL), sent outside any
transaction, and each is recorded right after it is sent: a worker killed between the two sends
that one message again once its lease runs out, with the same Message-ID, and no other. A
digest's notifications of one person and channel go out as one message.
"""

import hashlib
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import exists, insert, select, update

from .. import clock
from ..auth.models import User
from ..background import WokenLoop
from ..extensions import db
from . import channels as channel_types
from . import content
from .models import Notification, NotificationAddress, NotificationAttempt

log = logging.getLogger(__name__)
CLAIM_SIZE = 20
RECORD_SECONDS = 2  # of a lease, kept after a send's timeout to record it


@dataclass
class Claimed:
    """One message to send: the notifications it carries, to one person over one channel."""

    message_id: str
    channel: str
    user_id: str
    notifications: list
    digest: bool
    lease_ends: float  # time.monotonic()
    subject: str | None = None  # as sent


def _paused():
    return exists(
        select(NotificationAddress.id).where(
            NotificationAddress.user_id == Notification.user_id,
            NotificationAddress.channel == Notification.channel,
            NotificationAddress.paused_at.is_not(None),
        )
    )


def _due(moment, channel_names, limit, extra=()):
    return (
        select(Notification)
        .where(
            Notification.status == "pending",
            Notification.next_attempt_at <= moment,
            (Notification.leased_until.is_(None)) | (Notification.leased_until < moment),
            Notification.channel.in_(channel_names),
            ~_paused(),
            *extra,
        )
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Notification)
    )


def claim(channel_names, limit=CLAIM_SIZE):
    """Lease due messages; a digest takes every due notification of its person and channel."""
    moment = clock.now()
    found = {n.id: n for n in db.session.scalars(_due(moment, channel_names, limit))}
    for person, channel in {(n.user_id, n.channel) for n in found.values() if n.digest}:
        same = (
            Notification.user_id == person,
            Notification.channel == channel,
            Notification.digest,
        )
        query = _due(moment, [channel], 1000, same)
        found.update({n.id: n for n in db.session.scalars(query)})
    seconds = current_app.config["NOTIFY_LEASE_SECONDS"]
    lease_ends = time.monotonic() + seconds
    claimed, digests = [], defaultdict(list)
    for notification in sorted(found.values(), key=lambda n: (n.created_at, n.id)):
        notification.leased_until = moment + timedelta(seconds=seconds)
        if notification.digest:
            digests[(notification.user_id, notification.channel)].append(notification)
        else:
            notification.message_id = notification.id
            claimed.append(
                Claimed(
                    notification.id,
                    notification.channel,
                    notification.user_id,
                    [notification],
                    False,
                    lease_ends,
                )
            )
    for (person, channel), notifications in digests.items():
        ids = "".join(sorted(n.id for n in notifications))
        message_id = "dgst_" + hashlib.sha256(ids.encode()).hexdigest()[:32]
        for notification in notifications:
            notification.message_id = message_id
        claimed.append(Claimed(message_id, channel, person, notifications, True, lease_ends))
    db.session.commit()
    return claimed


def _reader(item):
    """(address, language) of the message's reader, or None if it has nowhere to go."""
    user = db.session.get(User, item.user_id)
    if user is None or not user.active:
        return None
    if item.channel == "email":
        return user.email, user.language
    chat = db.session.scalar(
        select(NotificationAddress.address).filter_by(user_id=user.id, channel=item.channel)
    )
    return (chat, user.language) if chat else None


def send(item, channel):
    """Send one claimed message by `channel`, unless its lease would not outlast the send."""
    timeout = current_app.config["NOTIFY_SEND_TIMEOUT"]
    if item.lease_ends - time.monotonic() < timeout + RECORD_SECONDS:
        return None, 0
    started = time.monotonic()
    try:
        reader = _reader(item)
        if reader is None:
            return channel_types.Answer(False, "no address for this person", permanent=True), 0
        address, language = reader
        body = content.render(item.notifications, language, item.digest)
        db.session.commit()  # no transaction stays open while the message is sent
        item.subject = body.subject
        answer = channel.send(channel_types.Outgoing(item.message_id, address, body))
    except Exception as exc:
        log.exception("notification %s failed unexpectedly", item.message_id)
        answer = channel_types.Answer(False, f"unexpected error: {type(exc).__name__}")
    return answer, int((time.monotonic() - started) * 1000)


def record(item, answer, duration_ms):
    """Record one message's attempt; a failure schedules its retry or, when final, counts
    against the address, which pauses after NOTIFY_PAUSE_AFTER_FAILURES in a row."""
    ids = [n.id for n in item.notifications]
    table = Notification.__table__
    if answer is None:  # not started: give the lease back
        db.session.execute(update(table).where(table.c.id.in_(ids)).values(leased_until=None))
        db.session.commit()
        return
    moment = clock.now()
    values = {"attempts": table.c.attempts + 1, "leased_until": None}
    if answer.ok:
        values |= {"status": "sent", "sent_at": moment, "subject": item.subject}
    elif answer.permanent:
        values |= {"status": "failed"}
    else:
        values |= _next_try(max(n.attempts for n in item.notifications) + 1)
    db.session.execute(
        update(table).where(table.c.id.in_(ids), table.c.status == "pending").values(**values)
    )
    db.session.execute(
        insert(NotificationAttempt),
        [
            {
                "notification_id": notification_id,
                "at": moment,
                "succeeded": answer.ok,
                "error": answer.error,
                "duration_ms": duration_ms,
            }
            for notification_id in ids
        ],
    )
    if answer.ok or answer.permanent:
        _count_for_address(item, answer.ok, moment)
    db.session.commit()


def _next_try(attempts):
    schedule = current_app.config["NOTIFY_RETRY_SCHEDULE"]
    if attempts >= len(schedule):
        return {"status": "failed"}
    delay = schedule[attempts] * random.uniform(0.9, 1.1)
    return {"next_attempt_at": clock.now() + timedelta(seconds=delay)}


def _count_for_address(item, succeeded, moment):
    """A success clears the count; a refusal adds one, and enough in a row pause the address."""
    found = db.session.scalar(
        select(NotificationAddress).filter_by(user_id=item.user_id, channel=item.channel)
    )
    if succeeded:
        if found is not None and found.failures:
            found.failures = 0
        return
    if found is None:
        found = NotificationAddress(user_id=item.user_id, channel=item.channel, failures=0)
        db.session.add(found)
    found.failures += 1
    if found.failures >= current_app.config["NOTIFY_PAUSE_AFTER_FAILURES"]:
        found.paused_at = found.paused_at or moment
        log.warning("notifications to a %s address paused after failures", item.channel)


def send_due(channels, limit=CLAIM_SIZE):
    """Claim what is due and send it, one after the other; returns how many were claimed.
    `channels` maps a channel's name to an open channel, kept between passes."""
    claimed = claim(list(channels), limit)
    for item in claimed:
        answer, duration_ms = send(item, channels[item.channel])
        try:
            record(item, answer, duration_ms)
        except Exception:
            log.exception(
                "recording notification %s failed; its lease will expire", item.message_id
            )
            db.session.rollback()
    return len(claimed)


class Notifier:
    """The worker's notification sender: woken after a commit that enqueued (and by NOTIFY,
    through the callback dispatcher), and on a beat for retries and digests."""

    def __init__(self, app):
        self.app = app
        self.factories = channel_types.configured(app.config, app.instance_path)
        self.channel_names = list(self.factories)
        self.telegram_offset = None  # the next Telegram update to read (telegram.py)
        self._open = {}
        self._loop = WokenLoop(
            app,
            "notifier",
            self._pass,
            app.config["CALLBACK_POLL_SECONDS"],
            "notification pass failed; its leases will expire",
        )

    def wake(self):
        self._loop.wake()

    def start(self):
        if self.channel_names:
            self._loop.start()

    def stop(self):
        self._loop.stop()
        self.close()

    def channels(self):
        """This process's open channels, made on first use."""
        if not self._open:
            self._open = {name: make() for name, make in self.factories.items()}
        return self._open

    def close(self):
        for channel in self._open.values():
            channel.close()
        self._open = {}

    def _pass(self):
        more = send_due(self.channels()) > 0
        if not more:
            self.close()  # no SMTP connection is held open while idle
        return more
