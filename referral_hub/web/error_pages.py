"""Errors on pages are pages: a title a person understands, what to do, no stack trace."""

from flask import Blueprint, g, render_template, request
from flask_babel import gettext as _

API_PREFIXES = (
    "/api/",
    "/oauth/token",
    "/oauth/revoke",
    "/oauth/introspect",
    "/hsds",
    "/.well-known",
)


def _titles():
    return {
        400: _("The request could not be understood"),
        401: _("Please sign in"),
        403: _("You may not do this"),
        404: _("Page not found"),
        405: _("This action is not available here"),
        409: _("Someone changed this at the same time"),
        413: _("What you sent is too large"),
        422: _("Please correct the form"),
        429: _("Too many attempts"),
        500: _("Something went wrong on our side"),
        503: _("The hub is unavailable for a moment"),
    }


def _mark_page():
    g.page_request = True


def page_blueprint(name, import_name, **options):
    """A Blueprint of pages: its errors are shown as pages, not as problem+json."""
    bp = Blueprint(name, import_name, **options)
    bp.before_request(_mark_page)
    return bp


def mark_unknown_path():
    """An unknown path a browser asked for gets the 404 page; API clients keep problem+json."""
    g.page_request = False
    if request.url_rule is not None or request.path.startswith(API_PREFIXES):
        return
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        g.page_request = True


def render_error(problem):
    title = _titles().get(problem.status, _("Something went wrong"))
    page = render_template(
        "error.html",
        title=title,
        detail=problem.detail,
        status=problem.status,
        request_id=g.get("request_id"),
    )
    return page, problem.status, problem.headers
