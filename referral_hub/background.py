"""A background thread that does a piece of work as soon as it is woken, and on a beat."""

import logging
import threading

from .extensions import db

log = logging.getLogger(__name__)


class WokenLoop:
    """Runs `work()` in an app context when woken (after a commit that gave it something to do)
    and every `beat_seconds` otherwise (for work that other processes commit, or retries).
    `work()` returns true while there is more to do at once; a failure is logged and the next
    beat tries again."""

    def __init__(self, app, name, work, beat_seconds, failure):
        self.app = app
        self.name = name
        self.work = work
        self.beat_seconds = beat_seconds
        self.failure = failure  # what the log says when a pass fails
        self._changed = threading.Condition()
        self._thread = None
        self._woken = self._stopping = False

    def wake(self):
        with self._changed:
            self._woken = True
            self._changed.notify_all()

    def start(self):
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self):
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self):
        while not self._stopping:
            with self._changed:
                self._changed.wait_for(lambda: self._woken or self._stopping, self.beat_seconds)
                self._woken = False
            with self.app.app_context():
                try:
                    while not self._stopping and self.work():
                        pass
                except Exception:
                    log.exception(self.failure)
                    db.session.rollback()
                finally:
                    db.session.remove()
