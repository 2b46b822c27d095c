"""Values read from the database that each process keeps until a change commits anywhere.

A transaction that changes what a cache's values are made of calls `changed(name)`: this process
forgets its values once the change commits, and on PostgreSQL a NOTIFY on the cache's channel
makes every other process forget theirs. Each process listens from its first use of the cache
and, until its LISTEN is in place, reads afresh every time rather than trust values nobody would
tell it are stale. SQLite has no NOTIFY: there, other processes' values last at most `seconds`
(run one process on SQLite, as `referral-hub demo` does). No value lasts longer than that anyway,
should a NOTIFY be lost.
"""

import os
import threading
import time
from collections import OrderedDict

from flask import current_app

from . import commit_hooks
from .extensions import db
from .listening import ChannelListener


def changed(name, session=None):
    """Call in a transaction that changes what the cache `name` holds (once is enough)."""
    session = session or db.session
    if commit_hooks.mark(name, session):
        return
    if session.get_bind().dialect.name == "postgresql":
        # This process forgets after the commit itself: its own NOTIFY is not heard (listening.py).
        cache = current_app.extensions[name]
        session.connection().exec_driver_sql(f"NOTIFY {cache.channel}, '{cache.signature()}'")


class ProcessCache:
    """This process's values of one cache, app.extensions[name]: none older than `seconds`, and
    at most `size` of them, or of their weights by weigh(value); the least recently used go
    first."""

    def __init__(self, app, name, channel, seconds, size, weigh=None):
        self.app, self.channel = app, channel
        self.seconds, self.size = seconds, size
        self.weigh = weigh or (lambda _value: 1)
        self._lock = threading.Lock()
        self._values = OrderedDict()  # key -> (monotonic time it was read, value, its weight)
        self._weight = 0
        self._generation = 0  # bumped by each forget: a read that began before is not kept
        self.listener = None
        self._listener_pid = None
        commit_hooks.after_commit(name, lambda extensions: extensions[name].forget())

    def get(self, key, read):
        """The value kept for key, or read()'s, kept when this process would hear of changes.
        Keep values that nobody changes afterwards: every caller shares them."""
        trusted = self._told_of_changes()
        with self._lock:
            kept, generation = self._values.get(key), self._generation
        now = time.monotonic()
        if trusted and kept is not None and now - kept[0] < self.seconds:
            with self._lock:
                if key in self._values:
                    self._values.move_to_end(key)
            return kept[1]
        value = read()
        if trusted:
            with self._lock:
                if self._generation == generation:
                    self._keep(key, now, value)
        return value

    def _keep(self, key, now, value):
        if key in self._values:
            self._weight -= self._values.pop(key)[2]
        weight = self.weigh(value)
        self._values[key] = (now, value, weight)
        self._weight += weight
        while self._weight > self.size:
            self._weight -= self._values.popitem(last=False)[1][2]

    def signature(self):
        """What this cache, in this process, signs its NOTIFYs with (a fork gets its own)."""
        return f"{os.getpid()}.{id(self)}"

    def forget(self):
        with self._lock:
            self._generation += 1
            self._values.clear()
            self._weight = 0

    def stop(self):
        """Stop listening: for a hub that goes away while its process goes on (a test's)."""
        if self.listener is not None:
            self.listener.stop()

    def _told_of_changes(self):
        """Whether other processes' changes reach this one: on PostgreSQL, while it listens
        (started here, in the process that serves: a forked worker listens for itself)."""
        if db.engine.dialect.name != "postgresql":
            return True
        with self._lock:
            if self._listener_pid != os.getpid():
                self._listener_pid = os.getpid()
                self.listener = ChannelListener(
                    self.app, self.channel, self.forget, ignored=self.signature()
                )
                self.listener.start()
            return self.listener.listening.is_set()
