"""RFC 9457 problem+json for every error the hub returns."""

import logging

from flask import current_app, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "urn:referral-hub:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error the client can act on; subclasses name the kind."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail=None, *, errors=None, headers=None, **extra):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def to_dict(self):
        body = {
            "type": PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class InvalidInput(Problem):
    status, slug, title = 422, "validation", "Invalid input"


class MalformedBody(Problem):
    status, slug, title = 400, "malformed-body", "Malformed request body"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail=None, *, error="invalid_token", **kwargs):
        super().__init__(detail, **kwargs)
        challenge = f'Bearer realm="referral-hub", error="{error}"'
        if detail:
            challenge += f', error_description="{detail}"'
        self.headers.setdefault("WWW-Authenticate", challenge)


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class InsufficientScope(Forbidden):
    slug, title = "insufficient-scope", "Insufficient scope"

    def __init__(self, scope):
        super().__init__(f"This request needs the scope '{scope}'.", required_scope=scope)
        self.headers["WWW-Authenticate"] = (
            f'Bearer realm="referral-hub", error="insufficient_scope", scope="{scope}"'
        )


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class TooManyRequests(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail, retry_after):
        super().__init__(detail, headers={"Retry-After": str(int(retry_after))})


def _text(message):
    """A message as text; one built from values stays itself, for the pages to translate it."""
    return message if isinstance(message, str) else str(message)


def field_errors(messages, prefix=""):
    """Flatten marshmallow's nested messages into [{field, message}] pairs."""
    flat = []
    for key, value in messages.items():
        field = f"{prefix}.{key}" if prefix and key != "_schema" else (prefix or str(key))
        if isinstance(value, dict):
            flat.extend(field_errors(value, field))
        else:
            for message in value if isinstance(value, list) else [value]:
                flat.append({"field": field, "message": _text(message)})
    return flat


def problem_response(problem):
    """problem+json, or the error page when a person's browser asked for a page."""
    render_page = current_app.extensions.get("hub_error_page")
    if render_page is not None and g.get("page_request"):
        return render_page(problem)
    body = problem.to_dict()
    body.setdefault("request_id", g.get("request_id"))
    response = jsonify(body)
    response.status_code = problem.status
    response.content_type = PROBLEM_MEDIA_TYPE
    response.headers.update(problem.headers)
    return response


def _http_exception(exc):
    problem = Problem(exc.description)
    problem.status, problem.title = exc.code, exc.name
    problem.slug = exc.name.lower().replace(" ", "-").replace("'", "")
    response = problem_response(problem)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _validation_error(exc):
    return problem_response(
        InvalidInput(
            "The request has invalid fields.", errors=field_errors(exc.normalized_messages())
        )
    )


def unexpected(exc):
    """A 500 whose traceback is logged; the client gets only the request id."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    problem = Problem("An unexpected error occurred; quote the request_id when reporting it.")
    problem.status, problem.slug, problem.title = 500, "internal", "Internal server error"
    return problem_response(problem)


def register(app):
    app.register_error_handler(Problem, problem_response)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(ValidationError, _validation_error)
    app.register_error_handler(Exception, unexpected)
