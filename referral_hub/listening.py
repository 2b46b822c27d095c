"""Hear other processes' commits: a thread that LISTENs on a PostgreSQL channel."""

import logging
import select
import threading

from .extensions import db

log = logging.getLogger(__name__)
STOP_CHECK_SECONDS = 0.5  # how soon the thread notices a stop
RETRY_SECONDS = 1.0  # after a lost connection


class ChannelListener:
    """Calls `on_notify()` after each batch of NOTIFYs on `channel`, from a thread holding one
    connection of its own (not the pool's, so LISTEN stays with it). `listening` is set only
    while the LISTEN is in place: a cache that relies on it must not trust itself otherwise,
    and `on_listening()` runs each time it is (re)established, for what changed meanwhile.
    NOTIFYs whose payload is `ignored` (this process's own, already acted on) are not heard."""

    def __init__(self, app, channel, on_notify, on_listening=None, ignored=None):
        self.app = app
        self.channel = channel
        self.on_notify = on_notify
        self.on_listening = on_listening or on_notify
        self.ignored = ignored
        self.listening = threading.Event()
        self._stopping = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"listen-{self.channel}", daemon=True
            )
            self._thread.start()

    def stop(self):
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self):
        while not self._stopping.is_set():
            try:
                connection = self._connect()
                try:
                    self._listen(connection)
                finally:
                    self.listening.clear()
                    connection.close()
            except Exception:
                log.exception("listening on %s failed; trying again", self.channel)
                self._stopping.wait(RETRY_SECONDS)

    def _connect(self):
        """A connection of its own, made apart from the pool: taking one from the pool could
        take one the database has dropped, unseen by the pool, or leave the pool short."""
        with self.app.app_context():
            engine = db.engine
        args, options = engine.dialect.create_connect_args(engine.url)
        return engine.dialect.connect(*args, **options)

    def _listen(self, connection):
        connection.autocommit = True
        connection.cursor().execute(f"LISTEN {self.channel}")
        self.listening.set()
        self.on_listening()
        while not self._stopping.is_set():
            if select.select([connection], [], [], STOP_CHECK_SECONDS)[0]:
                connection.poll()
                heard = [n for n in connection.notifies if n.payload != self.ignored]
                connection.notifies.clear()
                if heard:
                    self.on_notify()
