"""Who is signed in to the pages, as the same Principal the API's service calls take."""

import functools

from flask import g, redirect, request, session, url_for

from ..auth.models import User
from ..auth.principal import Principal
from ..config import SCOPES
from ..extensions import db

WEB_CLIENT = "web"


def current_user():
    user_id = session.get("user_id")
    user = db.session.get(User, user_id) if user_id else None
    return user if user and user.active else None


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
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default
