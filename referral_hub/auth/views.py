"""Sign-in, sign-out, changing one's password, and the OAuth approval page."""

from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from ..config import SCOPES
from ..csrf import check_csrf
from ..errors import InvalidInput, TooManyRequests
from ..extensions import db
from ..web.error_pages import page_blueprint
from ..web.forms import form_errors
from ..web.session import current_user, keep_session, local_path, signed_in, start_session
from . import service
from .oauth_api import server
from .schemas import ContactDetails

bp = page_blueprint("auth_pages", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = local_path(request.values.get("next"), url_for("health.index"))
    if request.method != "POST":  # GET, or HEAD asking what a GET would answer
        return render_template("login.html", next_url=next_url, error=None)
    check_csrf()
    email = request.form.get("email", "")
    try:
        user = service.sign_in(email, request.form.get("password", ""), request.remote_addr)
    except TooManyRequests as exc:
        error = _(
            "Too many failed attempts. Wait %(minutes)s minutes and try again.",
            minutes=max(1, round(int(exc.headers["Retry-After"]) / 60)),
        )
        page = render_template("login.html", next_url=next_url, error=error, email=email)
        return page, 429, exc.headers
    if user is None:
        error = _("The email or password is not right.")
        return render_template("login.html", next_url=next_url, error=error, email=email), 401
    start_session(user)
    return redirect(next_url)


@bp.post("/logout")
def logout():
    """End this session for good: a copy of its cookie is refused from now on too."""
    check_csrf()
    user = current_user()
    if user is not None:
        service.end_session(user.id, session["id"])
        db.session.commit()
    session.clear()
    return redirect(url_for("auth_pages.login"))


@bp.post("/account/sign-out-everywhere")
@signed_in()
def sign_out_everywhere(principal):
    check_csrf()
    service.sign_out_everywhere(principal.user_id)
    db.session.commit()
    session.clear()
    flash(_("You are signed out on every device and app."), "success")
    return redirect(url_for("auth_pages.login"))


def _profile_page(values, errors, status=200):
    return render_template("profile.html", person=g.user, values=values, errors=errors), status


@bp.get("/account")
@signed_in()
def profile(principal):
    """How partners see and call me: the name and phone shown on the referrals I send."""
    return _profile_page({"name": g.user.name, "phone": g.user.phone or ""}, {})


@bp.post("/account")
@signed_in()
def update_profile(principal):
    check_csrf()
    form = request.form
    try:
        fields = {"name": form.get("name", "").strip(), "phone": form.get("phone", "").strip()}
        details = ContactDetails().load({**fields, "phone": fields["phone"] or None})
        service.update_contact_details(principal.user_id, **details)
    except ValidationError as exc:
        db.session.rollback()
        return _profile_page(form, form_errors(exc), 422)
    db.session.commit()
    flash(_("Your contact details are saved."), "success")
    return redirect(url_for(".profile"))


@bp.get("/account/password")
@signed_in()
def password(principal):
    return render_template("password.html", errors={})


@bp.post("/account/password")
@signed_in()
def change_password(principal):
    check_csrf()
    new = request.form.get("new_password", "")
    try:
        if new != request.form.get("repeat_password", ""):
            message = "The two new passwords are not the same."
            raise InvalidInput(message, errors=[{"field": "repeat_password", "message": message}])
        service.change_password(principal.user_id, request.form.get("current_password", ""), new)
    except InvalidInput as problem:
        db.session.rollback()
        return render_template("password.html", errors=form_errors(problem)), 422
    db.session.commit()
    keep_session(g.user)
    flash(_("Your password is changed."), "success")
    return redirect(url_for("referral_pages.home"))


def _error_page(message, status=400):
    return render_template(
        "message.html", title=_("Authorization request refused"), message=message
    ), status


@bp.route("/oauth/authorize", methods=["GET", "POST"])
def authorize():
    user = current_user()
    if user is None:
        return redirect(url_for("auth_pages.login", next=request.full_path))
    oauth = server()
    try:
        grant = oauth.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        if getattr(error, "redirect_uri", None):
            return oauth.handle_error_response(None, error)
        return _error_page(error.description or error.error)
    except ValueError:
        # Authlib refuses to build an error whose text holds quotes or non-ASCII characters.
        return _error_page("The authorization request is malformed.")
    if request.method != "POST":
        redirect_uri = grant.request.payload.redirect_uri
        parts = urlsplit(redirect_uri)
        g.csp_form_action_extra = f"{parts.scheme}://{parts.netloc}"
        scopes = grant.request.scope.split()
        return render_template(
            "authorize.html",
            client=grant.client,
            organization=service.organization_name(grant.client.organization_id),
            scopes=[(scope, SCOPES[scope]) for scope in scopes],
            user=user,
        )
    check_csrf()
    approved = request.form.get("decision") == "approve"
    current_app.logger.info(
        "authorization %s by user %s", "approved" if approved else "denied", user.id
    )
    return oauth.create_authorization_response(grant_user=user if approved else None, grant=grant)
