"""Structured JSON logs with the request id, scrubbed of credentials."""

import json
import logging
import re
import sys

from flask import g, has_request_context

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
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure(app):
    """Send the app's and the server's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    for name in ("referral_hub", "werkzeug", "authlib", "apscheduler", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.DEBUG if app.debug else logging.INFO)
