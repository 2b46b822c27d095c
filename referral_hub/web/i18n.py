"""Khmer and English: which one a visitor reads, remembered in a cookie."""

from flask import redirect, request, session
from flask_babel import Babel, refresh

from ..csrf import check_csrf
from ..extensions import db
from .error_pages import page_blueprint
from .session import current_user, local_path

LANGUAGES = {"km": "ខ្មែរ", "en": "English"}
DEFAULT_LANGUAGE = "km"
COOKIE = "hub_lang"
ONE_YEAR = 365 * 24 * 3600

babel = Babel()
bp = page_blueprint("language", __name__)


def select_language():
    """The visitor's choice, else what the browser prefers, else Khmer (most users' first)."""
    chosen = request.cookies.get(COOKIE) or session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


@bp.post("/language")
def choose_language():
    check_csrf()
    language = request.form.get("lang")
    response = redirect(local_path(request.form.get("next")))
    if language in LANGUAGES:
        session["lang"] = language
        user = current_user()
        if user is not None and user.language != language:  # their notifications follow
            user.language = language
            db.session.commit()
        response.set_cookie(
            COOKIE,
            language,
            max_age=ONE_YEAR,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
        )
    return response


def configure(app):
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Phnom_Penh")
    babel.init_app(app, locale_selector=select_language)
    # Babel caches the language on the app context, which a worker may reuse between requests.
    app.before_request(refresh)
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
