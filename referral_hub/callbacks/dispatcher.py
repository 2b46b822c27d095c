"""Deliver the outbox: signed, at least once, in order per referral, with retries.

Deliveries are claimed with a lease (FOR UPDATE SKIP LOCKED on PostgreSQL, so several
dispatchers never claim the same one), then sent outside any transaction, each attempt within
the total timeout and started only while its lease outlasts it. A dispatcher killed
mid-delivery leaves its lease to expire and the delivery is tried again: at least once, and
the receiver recognises the repeat by its webhook-id.
"""

import logging
import queue
import threading

from sqlalchemy.orm import Session

from ..extensions import db
from ..listening import ChannelListener
from .attempts import attempt, check_lease, claim, record
from .outbox import CHANNEL

log = logging.getLogger(__name__)
CLAIM_SIZE = 20


def dispatch_due(limit=CLAIM_SIZE):
    """Claim what is due now and deliver it, one after the other; returns how many were
    claimed. The background Dispatcher does the same with several sending threads."""
    claimed = claim(limit)
    disabled = set()  # their deliveries in this claim were parked with them
    for item in claimed:
        if item.partner.id in disabled:
            continue
        try:
            disabled |= record([attempt(item)])
        except Exception:
            log.exception("recording delivery %s failed; its lease will expire", item.id)
            db.session.rollback()
    return len(claimed)


def _no_wait_for_disk(connection):
    """This connection's commits (leases, answers) do not wait for PostgreSQL's disk: should the
    server crash before it writes them, a delivery is sent again, which at least once allows;
    the outbox itself is written with the referral's change, as durably as the change. The
    connection leaves the pool, so that the setting goes with it."""
    if connection.dialect.name == "postgresql":
        connection.detach()
        connection.exec_driver_sql("SET synchronous_commit TO off")
        connection.commit()


class Dispatcher:
    """Background threads that deliver right after a commit enqueues, and poll otherwise.

    One thread claims and records, holding one database connection; CALLBACK_DISPATCHER_THREADS
    threads send (SQLite: one), and several processes share the outbox through FOR UPDATE SKIP
    LOCKED. The recording thread takes every answer that came in meanwhile into one
    transaction, and claims no more than the senders can start at once, so a claimed delivery
    waits for a sender, not for a lease to run out. On PostgreSQL a listening thread wakes it
    on commits of other processes too (LISTEN/NOTIFY).
    """

    def __init__(self, app):
        check_lease(app.config)
        self.app = app
        self._changed = threading.Condition()
        self._threads = []
        self._listener = None
        self.also_wake = []  # others woken with it, by this process's commits and by NOTIFY

    def wake(self):
        with self._changed:
            self._woken = True
            self._changed.notify_all()
        for other in self.also_wake:
            other()

    def start(self):
        if self._threads:
            return
        senders = self._sender_count()
        self._stopping, self._woken, self._answers = False, False, []
        self._to_send, self._disabled = queue.SimpleQueue(), set()
        self._capacity, self._in_flight = 2 * senders, 0
        self._threads = [threading.Thread(target=self._coordinate, name="callback-dispatcher")]
        self._threads += [
            threading.Thread(target=self._send, name=f"callback-sender-{n}") for n in range(senders)
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()
        if self._postgresql():
            self._listener = ChannelListener(self.app, CHANNEL, self.wake)
            self._listener.start()

    def stop(self):
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        for _ in self._threads:
            self._to_send.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def _postgresql(self):
        with self.app.app_context():
            return db.engine.dialect.name == "postgresql"

    def _sender_count(self):
        with self.app.app_context():
            if db.engine.dialect.name == "sqlite":
                return 1
        return max(self.app.config["CALLBACK_DISPATCHER_THREADS"], 1)

    def _send(self):
        """A sending thread: attempts what was claimed and hands the answers back."""
        with self.app.app_context():
            while (item := self._to_send.get()) is not None:
                skip = item.partner.id in self._disabled  # parked already
                result = None if skip else attempt(item)
                with self._changed:
                    self._answers.append(result)
                    self._changed.notify_all()

    def _coordinate(self):
        """The recording thread: one connection, reopened after a failure."""
        poll = self.app.config["CALLBACK_POLL_SECONDS"]
        while not self._stopping:
            with self.app.app_context():
                try:
                    with db.engine.connect() as connection:
                        _no_wait_for_disk(connection)
                        db.session.registry.set(Session(bind=connection))
                        self._record_and_claim(poll)
                except Exception:
                    log.exception("dispatcher pass failed; its leases will expire")
                finally:
                    db.session.remove()
            with self._changed:
                self._changed.wait_for(lambda: self._stopping, poll)

    def _record_and_claim(self, poll):
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._woken or self._answers or self._stopping, poll)
                if self._stopping:
                    return
                answers, self._answers, self._woken = self._answers, [], False
            self._in_flight -= len(answers)
            results = [result for result in answers if result is not None]
            if results:
                self._disabled |= record(results)
            room = self._capacity - self._in_flight
            if room > 0:
                claimed = claim(room)
                self._in_flight += len(claimed)
                for item in claimed:
                    self._to_send.put(item)
