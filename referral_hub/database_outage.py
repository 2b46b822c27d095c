"""When the database does not answer: 503 with Retry-After (problem+json, or the error page),
and one log line a minute instead of a traceback a request."""

import logging
import sqlite3
import threading
import time

from flask import current_app
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from . import errors

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
    """Whether an error means the database is out of reach, not that a statement is wrong."""
    if isinstance(exc, DisconnectionError):
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    if exc.connection_invalidated:
        return True
    original = exc.orig
    if isinstance(original, sqlite3.Error):
        return str(original) in SQLITE_UNAVAILABLE
    if type(original).__module__.startswith("psycopg2"):
        code = getattr(original, "pgcode", None)  # None: no answer from the server at all
        return code is None or code.startswith(POSTGRES_UNAVAILABLE)
    return False


def describe(exc):
    """One line that says why, without the statement: "OperationalError: connection ... refused"."""
    cause = getattr(exc, "orig", None) or exc
    reason = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {reason}"


class _OutageLog:
    """At most one line a minute, saying how many answers it stands for."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next_line_at = 0.0
        self._unlogged = 0

    def note(self, exc):
        now = time.monotonic()
        with self._lock:
            if now < self._next_line_at:
                self._unlogged += 1
                return
            self._next_line_at = now + LOG_INTERVAL_SECONDS
            unlogged, self._unlogged = self._unlogged, 0
        log.error(
            "database unavailable, answering 503 (%s); %d more such answers since the last line",
            describe(exc),
            unlogged,
        )


def _answer(exc):
    if not is_outage(exc):
        return errors.unexpected(exc)
    current_app.extensions["hub_database_outage"].note(exc)
    return errors.problem_response(DatabaseUnavailable())


def register(app):
    """Answer outages with 503, and never put SQL parameters in an error's text: call before
    the database is bound, since the engine takes the option when it is made."""
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
        "hide_parameters": True,
    }
    app.extensions["hub_database_outage"] = _OutageLog()
    for error in (OperationalError, InterfaceError, DisconnectionError):
        app.register_error_handler(error, _answer)
