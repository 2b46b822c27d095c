"""Request plumbing shared by every blueprint: request ids, JSON bodies, headers."""

import re
import secrets

import orjson
from flask import current_app, g, request
from flask.json.provider import DefaultJSONProvider

from .errors import InvalidInput, MalformedBody, UnsupportedMediaType

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'{extra}"
)


def json_body(schema):
    """Parse the request's JSON object with a marshmallow schema, or raise a problem."""
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as application/json.")
    data = request.get_json(silent=True)
    if data is None:
        raise MalformedBody("The body is not valid JSON.")
    if not isinstance(data, dict):
        raise InvalidInput(
            "The body must be a JSON object.",
            errors=[{"field": "", "message": "Expected an object."}],
        )
    return schema.load(data)


def _assign_request_id():
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID.match(incoming) else secrets.token_hex(12)


def _security_headers(response):
    headers = response.headers
    headers["X-Request-ID"] = g.get("request_id", "")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if response.mimetype == "text/html":
        extra = g.get("csp_form_action_extra", "")
        headers.setdefault(
            "Content-Security-Policy", PAGE_CSP.format(extra=f" {extra}" if extra else "")
        )
    else:
        headers.setdefault("Content-Security-Policy", API_CSP)
    if current_app.config["HSTS"]:
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    return response


class JSONProvider(DefaultJSONProvider):
    """orjson writes a page of 50 services several times faster than the standard library, in
    UTF-8 rather than \\u escapes (half the bytes of Khmer text), and times in ISO 8601 where
    Flask's default writes HTTP dates. Reading stays the standard library's."""

    def dumps(self, obj, **_kwargs):
        return orjson.dumps(obj, default=self.default, option=orjson.OPT_NON_STR_KEYS).decode()


def register(app):
    app.json = JSONProvider(app)
    app.before_request(_assign_request_id)
    app.after_request(_security_headers)
