"""CSRF protection for the hub's HTML forms (the API uses bearer tokens instead)."""

import hmac
import secrets

from flask import request, session

from .errors import Forbidden


def csrf_token():
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def check_csrf():
    expected = session.get("csrf_token", "")
    sent = request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise Forbidden(
            "The form has expired or did not come from this site; reload the page and try again."
        )
