"""Structured JSON logs with the request id, scrubbed of credentials and of SQL values."""

import json
import logging
import re
import sqlite3
import sys

from flask import g, has_request_context
from sqlalchemy.exc import StatementError

from . import database_outage

SCRUB = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    (
        re.compile(
            r"(?i)((?:client_secret|password|refresh_token|access_token|code|code_verifier|"
            r"client_assertion|token|secret)[\"']?\s*[=:]\s*[\"']?)[^&\s\"',]+"
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_[redacted]"),
]


def scrub(text):
    """Remove anything that looks like a credential from a log line."""
    for pattern, replacement in SCRUB:
        text = pattern.sub(replacement, text)
    return text


def _chain(exc):
    """The exception and those it was raised from or during, outermost first."""
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _without_values(error):
    """What a database error may say in a log: its statement but never a parameter, and
    never PostgreSQL's message, which quotes values (psycopg2 sends them inside the
    statement)."""
    if isinstance(error, StatementError):
        cause = error.orig
        said = _without_values(cause) if _is_database_error(cause) else "[value hidden]"
        return f"({type(cause).__module__}.{type(cause).__name__}) {said}\n[SQL: {error.statement}]"
    if isinstance(error, sqlite3.Error):
        return str(error)  # SQLite names tables and columns; it binds values apart
    diagnostic = getattr(error, "diag", None)
    names = (
        f"{label}={value}"
        for label in ("table_name", "column_name", "constraint_name")
        if (value := getattr(diagnostic, label, None))
    )
    return " ".join([f"SQLSTATE {error.pgcode}", *names])


def _is_database_error(error):
    return isinstance(error, sqlite3.Error) or hasattr(error, "pgcode")


def exception_text(formatter, exc_info):
    """A traceback whose database errors keep their statement but lose their values; when the
    database is simply out of reach, one line."""
    error = exc_info[1]
    if database_outage.is_outage(error):
        return database_outage.describe(error)
    text = formatter.formatException(exc_info)
    chain = _chain(error)
    wrapped = {id(link.orig) for link in chain if isinstance(link, StatementError)}
    for link in chain:
        said = str(link)
        if not said:
            continue
        if isinstance(link, StatementError) or _is_database_error(link):
            text = text.replace(said, _without_values(link))
        elif id(link) in wrapped:  # e.g. a TypeError a bind parameter raised: it quotes it
            text = text.replace(said, "[value hidden]")
    return scrub(text)


ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


class PlainFormatter(logging.Formatter):
    """A line as a person at a console reads it: plain text, without colour codes."""

    def format(self, record):
        return scrub(ANSI_CODES.sub("", record.getMessage())).rstrip()


class JSONFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if has_request_context():
            entry["request_id"] = g.get("request_id")
        if record.exc_info:
            entry["exception"] = exception_text(self, record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(app):
    """Send the app's and the server's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    handler.addFilter(database_outage.OutageLines())
    for name in ("referral_hub", "werkzeug", "authlib", "apscheduler", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.DEBUG if app.debug else logging.INFO)


def quiet_console():
    """For the demo's console: the scheduler's routine lines off (its warnings stay), and the
    development server's own lines (where it runs, each request) as plain text."""
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PlainFormatter())
    logging.getLogger("werkzeug").handlers = [handler]
