"""Request plumbing shared by every blueprint: request ids, JSON bodies, headers, and the
refusal of input no database or encoder can hold."""

import re
import secrets

import orjson
from flask import Request, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream

from .errors import InvalidInput, MalformedBody, UnsupportedMediaType
from .web.error_pages import _mark_page

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
MAX_JSON_DEPTH = 32
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Tokens are verified or hashed, never stored or looked up as sent: a malformed one is the OAuth
# layer's to answer (401, or "active": false), as RFC 6750 and RFC 7662 say.
TOKEN_FORM_FIELDS = {"token"}

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'{extra}"
)


def unstorable(text):
    """Why a text can be neither stored nor searched, or None: PostgreSQL refuses NUL
    characters, UTF-8 (and so every database and encoder) lone surrogates."""
    if "\x00" in text:
        return "Must not contain the NUL character."
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "Must not contain a lone surrogate (not a Unicode character)."
    return None


def _refuse(errors):
    for error in errors:  # the name as it can be written back: with \u escapes, never raw
        error["field"] = error["field"].encode("utf-8", "backslashreplace").decode()
    if errors:
        raise InvalidInput("The request has text that cannot be stored.", errors=errors)


def _too_deep(field):
    return MalformedBody(
        f"The body nests deeper than {MAX_JSON_DEPTH} levels.",
        errors=[{"field": field, "message": "Nested too deeply."}],
    )


def _json_errors(data):
    """[{field, message}] for each unstorable key or string of a parsed body, walked without
    recursion; MalformedBody when it nests deeper than any document the hub takes."""
    errors, pending = [], [("", data, 0)]
    while pending:
        path, value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep(path)
        if isinstance(value, str) and (message := unstorable(value)):
            errors.append({"field": path, "message": message})
        if isinstance(value, dict):
            for key, child in value.items():
                field = f"{path}.{key}" if path else key
                if message := unstorable(key):
                    errors.append({"field": field, "message": f"Its name: {message}"})
                pending.append((field, child, depth + 1))
        elif isinstance(value, list):
            pending.extend((f"{path}.{i}", child, depth + 1) for i, child in enumerate(value))
    return errors


def json_body(schema):
    """Parse the request's JSON object with a marshmallow schema, or raise a problem."""
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as application/json.")
    try:
        data = request.get_json(silent=True)
    except RecursionError as exc:  # deeper than the parser goes: the body as a whole
        raise _too_deep("") from exc
    if data is None:
        raise MalformedBody("The body is not valid JSON.")
    _refuse(_json_errors(data))
    if not isinstance(data, dict):
        raise InvalidInput(
            "The body must be a JSON object.",
            errors=[{"field": "", "message": "Expected an object."}],
        )
    return schema.load(data)


def _bearer(name, value):
    return name == "Authorization" and value[:7].lower() == "bearer "


def _refuse_unstorable_parameters():
    """Refuse NUL characters (and lone surrogates) in the path, the query, a form or a header
    before any handler passes them to the database, naming where they are."""
    form = request.form.items(multi=True) if request.mimetype in FORM_TYPES else ()
    pairs = [
        *(request.view_args or {}).items(),
        *request.args.items(multi=True),
        *((name, value) for name, value in request.headers.items() if not _bearer(name, value)),
        *((name, value) for name, value in form if name not in TOKEN_FORM_FIELDS),
    ]
    errors = [
        {"field": name, "message": message}
        for name, value in pairs
        for text in (name, value)
        if isinstance(text, str) and (message := unstorable(text))
    ]
    if errors:
        # before the page blueprints' own hooks have marked the request as a page's
        hooks = current_app.before_request_funcs
        g.page_request = any(_mark_page in hooks.get(name, ()) for name in request.blueprints)
    _refuse(errors)


class _BoundedStream(LimitedStream):
    """A streamed (chunked) body read whole stops at MAX_CONTENT_LENGTH and Werkzeug hands the
    truncated start over as if it were all; one byte more means it was too large."""

    def readall(self):
        data = super().readall()
        if self.is_exhausted and self._stream.read(1):
            raise RequestEntityTooLarge()
        return data


class HubRequest(Request):
    """Flask's request, with a streamed body held to MAX_CONTENT_LENGTH like one with a length."""

    @cached_property
    def stream(self):
        limit = self.max_content_length
        if (
            self.content_length is None
            and limit is not None
            and "wsgi.input_terminated" in self.environ
        ):
            return _BoundedStream(self.environ["wsgi.input"], limit, is_max=True)
        return super().stream


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
    app.request_class = HubRequest
    app.before_request(_assign_request_id)
    app.before_request(_refuse_unstorable_parameters)
    app.after_request(_security_headers)
