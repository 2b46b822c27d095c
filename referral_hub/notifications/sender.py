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
from sqlalchemy import and_, insert, or_, select, text, update

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
    """One message to send: the notifications it carries, to one person over one channel, with
    all that sending needs, read in the claim's transaction (sending reads nothing more)."""

    message_id: str
    channel: str
    user_id: str
    notifications: list  # rows: id, kind, facts, attempts
    digest: bool
    lease_ends: float  # time.monotonic()
    address: str | None  # the e-mail address or Telegram chat; None: nowhere to send
    language: str
    failures: int  # of the address, in a row
    subject: str | None = None  # as sent


NOTIFICATIONS = Notification.__table__
ADDRESSES = NotificationAddress.__table__.alias("address")


def _due(moment, channel_names, limit, extra=()):
    """Due notifications with their reader's address, language and failures; locked, skipping
    those another sender holds. A paused address keeps its notifications waiting."""
    n, a = NOTIFICATIONS.c, ADDRESSES.c
    return (
        select(
            n.id,
            n.user_id,
            n.channel,
            n.kind,
            n.facts,
            n.attempts,
            n.digest,
            n.created_at,
            User.email,
            User.language,
            User.active,
            a.address,
            a.failures,
        )
        .join(User, User.id == n.user_id)
        .outerjoin(ADDRESSES, and_(a.user_id == n.user_id, a.channel == n.channel))
        .where(
            n.status == "pending",
            n.next_attempt_at <= moment,
            or_(n.leased_until.is_(None), n.leased_until < moment),
            n.channel.in_(channel_names),
            a.paused_at.is_(None),
            *extra,
        )
        .order_by(n.next_attempt_at, n.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=NOTIFICATIONS)
    )


def _no_wait_for_disk():
    """This transaction's commit does not wait for PostgreSQL's disk: should the server crash
    first, a message is sent again, which at least once allows (the outbox itself is written
    with the change, as durably as the change)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL synchronous_commit TO off"))


def claim(channel_names, limit=CLAIM_SIZE):
    """Lease due messages; a digest takes every due notification of its person and channel."""
    moment = clock.now()
    _no_wait_for_disk()
    found = {row.id: row for row in db.session.execute(_due(moment, channel_names, limit))}
    for person, channel in {(r.user_id, r.channel) for r in found.values() if r.digest}:
        same = (NOTIFICATIONS.c.user_id == person, NOTIFICATIONS.c.channel == channel)
        query = _due(moment, [channel], 1000, (*same, NOTIFICATIONS.c.digest))
        found.update({row.id: row for row in db.session.execute(query)})
    if not found:
        db.session.commit()
        return []
    seconds = current_app.config["NOTIFY_LEASE_SECONDS"]
    lease_ends = time.monotonic() + seconds
    groups = defaultdict(list)  # message id -> rows
    for row in sorted(found.values(), key=lambda r: (r.created_at, r.id)):
        groups[("digest", row.user_id, row.channel) if row.digest else row.id].append(row)
    claimed, lease = [], {"leased_until": moment + timedelta(seconds=seconds)}
    for rows in groups.values():
        first = rows[0]
        message_id = first.id
        if first.digest:
            ids = "".join(sorted(r.id for r in rows))
            message_id = "dgst_" + hashlib.sha256(ids.encode()).hexdigest()[:32]
            db.session.execute(
                update(NOTIFICATIONS)
                .where(NOTIFICATIONS.c.id.in_([r.id for r in rows]))
                .values(**lease, message_id=message_id)
            )
        address = first.email if first.channel == "email" else first.address
        claimed.append(
            Claimed(
                message_id,
                first.channel,
                first.user_id,
                rows,
                first.digest,
                lease_ends,
                address if first.active else None,
                first.language,
                first.failures or 0,
            )
        )
    alone = [r.id for r in found.values() if not r.digest]
    if alone:  # one statement for all the messages that carry one notification
        db.session.execute(
            update(NOTIFICATIONS)
            .where(NOTIFICATIONS.c.id.in_(alone))
            .values(**lease, message_id=NOTIFICATIONS.c.id)
        )
    db.session.commit()
    return claimed


def send(item, channel):
    """Send one claimed message by `channel`, unless its lease would not outlast the send."""
    timeout = current_app.config["NOTIFY_SEND_TIMEOUT"]
    if item.lease_ends - time.monotonic() < timeout + RECORD_SECONDS:
        return None, 0
    if item.address is None:
        return channel_types.Answer(False, "no address for this person", permanent=True), 0
    started = time.monotonic()
    try:
        body = content.render(item.notifications, item.language, item.digest)
        item.subject = body.subject
        answer = channel.send(channel_types.Outgoing(item.message_id, item.address, body))
    except Exception as exc:
        log.exception("notification %s failed unexpectedly", item.message_id)
        answer = channel_types.Answer(False, f"unexpected error: {type(exc).__name__}")
    return answer, int((time.monotonic() - started) * 1000)


def record(item, answer, duration_ms):
    """Record one message's attempt; a failure schedules its retry or, when final, counts
    against the address, which pauses after NOTIFY_PAUSE_AFTER_FAILURES in a row."""
    ids = [n.id for n in item.notifications]
    table = NOTIFICATIONS
    _no_wait_for_disk()
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
    if answer.permanent or (answer.ok and item.failures):
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
    """The worker's notification senders: NOTIFY_SENDER_THREADS threads (SQLite: one), each
    with its own connections, sharing the outbox through FOR UPDATE SKIP LOCKED; woken after a
    commit that enqueued (and by NOTIFY, through the callback dispatcher's listener), and on a
    beat for retries and digests."""

    def __init__(self, app):
        self.app = app
        self.factories = channel_types.configured(app.config, app.instance_path)
        self.channel_names = list(self.factories)
        self.telegram_offset = None  # the next Telegram update to read (telegram.py)
        self._senders = []
        self._open = {}  # this thread's channels, for send_due called in the foreground

    def wake(self):
        for sender in self._senders:
            sender.wake()

    def start(self):
        if not self.channel_names or self._senders:
            return
        with self.app.app_context():
            sqlite = db.engine.dialect.name == "sqlite"
        count = 1 if sqlite else max(self.app.config["NOTIFY_SENDER_THREADS"], 1)
        self._senders = [_SendingLoop(self, n) for n in range(count)]
        for sender in self._senders:
            sender.start()

    def stop(self):
        for sender in self._senders:
            sender.stop()
        self._senders = []

    def channels(self):
        """Channels for the calling thread outside the sending loops, made on first use."""
        if not self._open:
            self._open = self.open_channels()
        return self._open

    def open_channels(self):
        return {name: make() for name, make in self.factories.items()}

    def close(self):
        close_all(self._open)
        self._open = {}


def close_all(channels):
    for channel in channels.values():
        channel.close()


class _SendingLoop(WokenLoop):
    """One sending thread with its own channels; no connection is held open while idle."""

    def __init__(self, notifier, number):
        app = notifier.app
        super().__init__(
            app,
            f"notifier-{number}",
            self._pass,
            app.config["CALLBACK_POLL_SECONDS"],
            "notification pass failed; its leases will expire",
        )
        self.notifier, self.open = notifier, {}

    def _pass(self):
        if not self.open:
            self.open = self.notifier.open_channels()
        if send_due(self.open) > 0:
            return True
        close_all(self.open)
        self.open = {}
        return False

    def stop(self):
        super().stop()
        close_all(self.open)
        self.open = {}
