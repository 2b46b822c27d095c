"""When the database does not answer: 503 with Retry-After (problem+json, or the error page),
and one log line a minute instead of a traceback a request."""

import logging
import sqlite3
import threading
import time

from flask import current_app, g, has_request_context
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from . import errors
from .extensions import db

try:
    from psycopg2 import InterfaceError as PostgresInterfaceError
    from psycopg2 import OperationalError as PostgresOperationalError

    POSTGRES_CONNECTION_ERRORS = (PostgresOperationalError, PostgresInterfaceError)
except ImportError:  # PostgreSQL is an extra: [postgres]
    POSTGRES_CONNECTION_ERRORS = ()

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
LOG_INTERVAL_SECONDS = 60
# PostgreSQL SQLSTATEs that mean "not now" rather than "wrong SQL": connection exception,
# administrator or crash shutdown, cannot connect now, too many connections.
POSTGRES_UNAVAILABLE = ("08", "57P01", "57P02", "57P03", "53300")
SQLITE_UNAVAILABLE = ("unable to open database file", "disk I/O error")


class DatabaseUnavailable(errors.Problem):
    status, slug, title = 503, "database-unavailable", "Service unavailable"

    def __init__(self):
        super().__init__(
            "The hub cannot reach its database just now; try again shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def is_outage(exc):
    """Whether an error means the database is out of reach, not that a statement is wrong.
    SQLAlchemy wraps the driver's error, except from a raw connection (the dispatcher's)."""
    if isinstance(exc, DisconnectionError):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    if isinstance(exc, sqlite3.OperationalError):
        return str(exc) in SQLITE_UNAVAILABLE
    if isinstance(exc, POSTGRES_CONNECTION_ERRORS):
        code = exc.pgcode  # None: no answer from the server at all
        return code is None or code.startswith(POSTGRES_UNAVAILABLE)
    return False


def describe(exc):
    """One line that says why, without the statement: "OperationalError: connection ... refused"."""
    cause = getattr(exc, "orig", None) or exc
    reason = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {reason}"


class _OncePerMinute:
    """Lets one line a minute through for each kind of line, and counts the others."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next_line_at = {}
        self._held_back = {}

    def due(self, kind):
        """None while the kind's minute runs; else how many lines were held back meanwhile."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_line_at.get(kind, 0.0):
                self._held_back[kind] = self._held_back.get(kind, 0) + 1
                return None
            self._next_line_at[kind] = now + LOG_INTERVAL_SECONDS
            return self._held_back.pop(kind, 0)


class OutageLines(logging.Filter):
    """On a log handler: an outage that a background thread logs (the callback dispatcher at
    each poll, a job at each run) comes through once a minute for each message."""

    def __init__(self):
        super().__init__()
        self._limit = _OncePerMinute()

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        return not is_outage(error) or self._limit.due((record.name, record.msg)) is not None


@event.listens_for(Engine, "after_cursor_execute")
def _count_statement(*_args):
    if has_request_context():
        g.statements_done = g.get("statements_done", 0) + 1


def _replayable(exc):
    """A pooled connection found dead by the request's first statement: nothing was written,
    so the request may run again once on a new one. The pool is not pinged before each use
    (a round trip per request); connections are recycled after POOL_RECYCLE_SECONDS and this
    replay covers one that died meanwhile (a database restart, a failover, a proxy's timeout)."""
    invalidated = getattr(exc, "connection_invalidated", False)
    return invalidated and not g.get("statements_done") and not g.get("replayed")


def _replay():
    db.session.rollback()
    g.replayed = True
    app = current_app._get_current_object()
    try:
        return app.preprocess_request() or app.dispatch_request()
    except Exception as exc:  # answered as the first run's errors would have been
        return app.handle_user_exception(exc)


def _answer(exc):
    if _replayable(exc):
        return _replay()
    if not is_outage(exc):
        return errors.unexpected(exc)
    held_back = current_app.extensions["hub_database_outage"].due("requests")
    if held_back is not None:
        log.error(
            "database unavailable, answering 503 (%s); %d more such answers since the last line",
            describe(exc),
            held_back,
        )
    return errors.problem_response(DatabaseUnavailable())


def register(app):
    """Answer outages with 503, and never put SQL parameters in an error's text: call before
    the database is bound, since the engine takes the option when it is made."""
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
        "hide_parameters": True,
    }
    app.extensions["hub_database_outage"] = _OncePerMinute()
    for error in (OperationalError, InterfaceError, DisconnectionError):
        app.register_error_handler(error, _answer)
