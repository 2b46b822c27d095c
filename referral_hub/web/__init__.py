"""Server-rendered pages in Khmer and English, built on the same service functions as the API."""

from flask import g, request
from flask_babel import get_locale

from .. import clock
from ..csrf import csrf_token
from ..federation.outbox import flagged
from ..referrals.contacts import network_coordinators
from . import (
    dates,
    directory_text,
    error_pages,
    i18n,
    labels,
    localize,
    messages,
    navigation,
    session,
)


def tel(number):
    """A phone number as a tel: link wants it: + and digits only."""
    return "".join(c for c in number if c.isdigit() or c == "+")


def _page_globals():
    return {
        "current_language": str(get_locale() or i18n.DEFAULT_LANGUAGE),
        "current_path": request.full_path.rstrip("?"),
        "menu": navigation.menu(),
        "user": g.get("user"),
    }


def configure(app):
    i18n.configure(app)
    dates.configure(app)
    app.extensions["hub_error_page"] = error_pages.render_error
    app.before_request(error_pages.mark_unknown_path)
    app.context_processor(_page_globals)
    app.after_request(session.not_stored)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.filters["translate_message"] = messages.translate
    app.jinja_env.filters["tel"] = tel
    app.jinja_env.globals.update(
        localize.HELPERS,
        **labels.HELPERS,
        now=clock.now,
        forwarding_flagged=flagged,
        local_text=directory_text.local_text,
        network_coordinators=network_coordinators,
    )
    app.register_blueprint(i18n.bp)
