"""Who is signed in to the pages, as the same Principal the API's service calls take."""

import functools
import secrets
import string
from urllib.parse import urlsplit

from flask import g, redirect, request, session, url_for

from ..auth.models import User
from ..auth.principal import Principal
from ..config import SCOPES
from ..extensions import db

WEB_CLIENT = "web"
# Printable ASCII but space and backslash: what a browser sends as a path and query, and nothing
# it would drop or read as a slash (turning "/\t/evil.example" into "//evil.example").
PATH_CHARACTERS = frozenset(string.printable) - frozenset(string.whitespace) - {"\\"}


def current_user():
    """The signed-in user, unless this session was signed out or ended with all the others
    (sign out everywhere, a new password, a change of roles, being disabled)."""
    user_id = session.get("user_id")
    user = db.session.get(User, user_id) if user_id else None
    if user and user.active and user.holds_session(session.get("generation"), session.get("id")):
        return user
    return None


def start_session(user):
    """A new session for `user`, so nothing set before signing in carries over but the language."""
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language
    session.permanent = True
    session.update(user_id=user.id, generation=user.session_generation, id=secrets.token_hex(8))


def keep_session(user):
    """Keep this session open after the user ended every older one."""
    session["generation"] = user.session_generation


def principal_of(user):
    """A signed-in person may do through the pages what their roles allow through the API."""
    return Principal(
        organization_id=user.organization_id,
        client_id=WEB_CLIENT,
        user_id=user.id,
        roles=frozenset(user.roles),
        provinces=frozenset(user.provinces),
        scopes=frozenset(SCOPES),
    )


def signed_in(*roles):
    """Guard a page: sign in first, then hold one of `roles` (any role when none are named)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("auth_pages.login", next=request.full_path.rstrip("?")))
            principal = principal_of(user)
            if roles:
                principal.require_role(*roles)
            g.user, g.principal = user, principal
            return view(*args, principal=principal, **kwargs)

        return wrapper

    return decorator


def local_path(target, default="/"):
    """Only same-site paths, so no link or form can send a visitor to another host."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not set(target) <= PATH_CHARACTERS:
        return default
    return target


def not_stored(response):
    """Pages may show personal data: no browser or proxy keeps them, unless a page says so."""
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response
