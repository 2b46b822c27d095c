"""Pages for an organisation's admins: its users and its API clients."""

import json
from functools import partial

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from ..config import GRANTABLE_SCOPES, SCOPES
from ..csrf import check_csrf
from ..errors import Conflict, InvalidInput
from ..extensions import db
from ..web.confirm import ask_first, confirmation_page, confirmed
from ..web.error_pages import page_blueprint
from ..web.forms import form_errors
from ..web.labels import role_labels
from ..web.messages import translate
from ..web.pages import list_and_form, shown_once
from ..web.session import keep_session, signed_in
from . import service
from .credentials import new_secret
from .models import CLIENT_AUTH_METHODS, GRANT_TYPES, ROLES
from .schemas import ClientCreate, UserCreate, UserUpdate

bp = page_blueprint("admin_pages", __name__, url_prefix="/admin")
ADMINS = ("org_admin", "coordinator")
GRANT_NAMES = {
    "client_credentials": _l("A system acting for the organisation (client credentials)"),
    "authorization_code": _l("People sign in through the system (authorization code)"),
    "refresh_token": _l("Keep people signed in (refresh tokens)"),
}
AUTH_METHOD_NAMES = {
    "client_secret_basic": _l("Secret in the Authorization header (client_secret_basic)"),
    "client_secret_post": _l("Secret in the request body (client_secret_post)"),
    "private_key_jwt": _l("Signed with the system's own key (private_key_jwt)"),
    "none": _l("No secret: an app on a phone or in a browser (none)"),
}


# Users


def _grantable_roles(principal):
    reserved = () if principal.has_role("coordinator") else service.ROLES_ONLY_COORDINATORS_GRANT
    return [(role, role_labels()[role]) for role in ROLES if role not in reserved]


def _provinces(text):
    return [code.strip() for code in text.replace(";", ",").split(",") if code.strip()]


def _organization_list(template, listing, principal, form, status=200, **context):
    """A page listing the organisation's users or clients above the form that adds one."""
    return list_and_form(
        template,
        partial(listing, principal, principal.organization_id),
        *form,
        status,
        organization=service.organization_name(principal.organization_id),
        **context,
    )


def _users_page(principal, values, errors, status=200):
    return _organization_list(
        "admin/users.html",
        service.list_users,
        principal,
        (values, errors),
        status,
        roles=_grantable_roles(principal),
        may_grant_provinces=principal.has_role("coordinator"),
    )


@bp.get("/users")
@signed_in(*ADMINS)
def users(principal):
    return _users_page(principal, MultiDict([("roles", "caseworker")]), {})


@bp.post("/users")
@signed_in(*ADMINS)
def invite(principal):
    """Add a user with a temporary password, shown to the admin on this one page only."""
    check_csrf()
    form = request.form
    fields = {
        "email": form.get("email", ""),
        "name": form.get("name", ""),
        "phone": form.get("phone", "").strip() or None,
        "roles": form.getlist("roles"),
        "provinces": _provinces(form.get("provinces", "")),
    }
    try:
        data = {**UserCreate().load(fields), "password": new_secret(12)}
        user = service.create_user(principal, principal.organization_id, **data)
    except (ValidationError, InvalidInput, Conflict) as exc:
        db.session.rollback()
        return _users_page(principal, form, form_errors(exc), 422)
    db.session.commit()
    return shown_once("admin/user_invited.html", invited=user, password=data["password"])


def _user_page(principal, user, values, errors, status=200):
    roles = _grantable_roles(principal)
    page = render_template(
        "admin/user.html",
        person=user,
        roles=roles,
        locked_roles=set(user.roles) - {role for role, _name in roles},
        may_grant_provinces=principal.has_role("coordinator"),
        is_self=user.id == principal.user_id,
        values=values,
        errors=errors,
    )
    return page, status


@bp.get("/users/<uuid:user_id>")
@signed_in(*ADMINS)
def user(user_id, principal):
    person = service.get_user(principal, principal.organization_id, str(user_id))
    values = MultiDict([("roles", role) for role in person.roles])
    values["provinces"] = ", ".join(person.provinces)
    values.update({"name": person.name, "phone": person.phone or ""})
    return _user_page(principal, person, values, {})


@bp.post("/users/<uuid:user_id>/contact")
@signed_in(*ADMINS)
def change_contact(user_id, principal):
    """The name and phone partners see on the referrals this user sends or is assigned."""
    check_csrf()
    form = request.form
    changes = {"name": form.get("name", "").strip(), "phone": form.get("phone", "").strip() or None}
    try:
        person = service.update_user(
            principal,
            principal.organization_id,
            str(user_id),
            UserUpdate(only=("name", "phone")).load(changes),
        )
    except ValidationError as exc:
        db.session.rollback()
        person = service.get_user(principal, principal.organization_id, str(user_id))
        values = MultiDict([("roles", role) for role in person.roles])
        values.update(form)
        return _user_page(principal, person, values, form_errors(exc), 422)
    db.session.commit()
    flash(_("The contact details of %(email)s are saved.", email=person.email), "success")
    return redirect(url_for(".user", user_id=person.id))


@bp.post("/users/<uuid:user_id>/roles")
@signed_in(*ADMINS)
def change_roles(user_id, principal):
    check_csrf()
    form = request.form
    changes = {"roles": form.getlist("roles")}
    if principal.has_role("coordinator"):
        changes["provinces"] = _provinces(form.get("provinces", ""))
    try:
        person = service.update_user(
            principal, principal.organization_id, str(user_id), UserUpdate().load(changes)
        )
    except (ValidationError, InvalidInput) as exc:
        db.session.rollback()
        person = service.get_user(principal, principal.organization_id, str(user_id))
        return _user_page(principal, person, form, form_errors(exc), 422)
    db.session.commit()
    if person.id == principal.user_id:
        keep_session(person)
    flash(_("The roles of %(email)s are saved.", email=person.email), "success")
    return redirect(url_for(".user", user_id=person.id))


@bp.get("/users/<uuid:user_id>/active")
@signed_in(*ADMINS)
def confirm_disable(user_id, principal):
    """Ask once more before disabling a user; enabling again needs no second look."""
    person = service.get_user(principal, principal.organization_id, str(user_id))
    if not person.active or person.id == principal.user_id:
        return redirect(url_for(".user", user_id=person.id))
    return confirmation_page(
        url_for(".set_active", user_id=person.id),
        title=_("Disable %(email)s?", email=person.email),
        happens=[
            _("%(email)s can no longer sign in.", email=person.email),
            _("They are signed out at once of every device, and every app acting for them stops."),
        ],
        lasting=[
            _(
                "Signing them out cannot be undone. You can enable the account again later; "
                "they will then sign in again everywhere."
            ),
        ],
        button=_("Yes, disable the user"),
        back=url_for(".user", user_id=person.id),
        fields={"active": "false"},
    )


@bp.post("/users/<uuid:user_id>/active")
@signed_in(*ADMINS)
def set_active(user_id, principal):
    check_csrf()
    active = request.form.get("active") == "true"
    if not active and not confirmed():
        return ask_first()
    try:
        person = service.update_user(
            principal, principal.organization_id, str(user_id), {"active": active}
        )
    except Conflict as exc:
        db.session.rollback()
        flash(translate(exc.detail), "error")
        return redirect(url_for(".user", user_id=user_id))
    db.session.commit()
    if active:
        flash(_("%(email)s may sign in again.", email=person.email), "success")
    else:
        message = _("%(email)s is disabled and signed out everywhere.", email=person.email)
        flash(message, "notice")
    return redirect(url_for(".user", user_id=person.id))


# API clients


def _clients_page(principal, values, errors, status=200):
    return _organization_list(
        "admin/clients.html",
        service.list_clients,
        principal,
        (values, errors),
        status,
        scopes=[
            (scope, f"{scope}: {_(description)}")
            for scope, description in SCOPES.items()
            if scope in GRANTABLE_SCOPES
        ],
        grant_types=[(grant, GRANT_NAMES[grant]) for grant in GRANT_TYPES],
        auth_methods=[(method, AUTH_METHOD_NAMES[method]) for method in CLIENT_AUTH_METHODS],
    )


@bp.get("/clients")
@signed_in(*ADMINS)
def clients(principal):
    defaults = MultiDict(
        [("grant_types", "client_credentials"), ("auth_method", "client_secret_basic")]
    )
    return _clients_page(principal, defaults, {})


def _client_fields(form):
    fields = {
        "name": form.get("name", ""),
        "scopes": form.getlist("scopes"),
        "grant_types": form.getlist("grant_types"),
        "auth_method": form.get("auth_method", ""),
        "redirect_uris": form.get("redirect_uris", "").split(),
    }
    jwks = form.get("jwks", "").strip()
    if jwks:
        try:
            fields["jwks"] = json.loads(jwks)
        except ValueError:
            raise ValidationError({"jwks": [_("This is not valid JSON.")]}) from None
    return fields


@bp.post("/clients")
@signed_in(*ADMINS)
def create_client(principal):
    """Register a client; its secret is on the answer to this form and nowhere else, ever."""
    check_csrf()
    try:
        data = ClientCreate().load(_client_fields(request.form))
        client, secret = service.create_client(principal, principal.organization_id, **data)
    except (ValidationError, InvalidInput) as exc:
        db.session.rollback()
        return _clients_page(principal, request.form, form_errors(exc), 422)
    db.session.commit()
    return shown_once("admin/client_created.html", client=client, secret=secret)


@bp.get("/clients/<client_id>/revoke")
@signed_in(*ADMINS)
def confirm_revoke(client_id, principal):
    """Ask once more before revoking an API client."""
    client = service.get_client(principal, principal.organization_id, client_id)
    if client.revoked_at is not None:
        return redirect(url_for(".clients"))
    return confirmation_page(
        url_for(".revoke_client", client_id=client.client_id),
        title=_("Revoke %(name)s?", name=client.name),
        happens=[
            _(
                "%(name)s stops working at once: its tokens are refused and it cannot get new "
                "ones.",
                name=client.name,
            ),
        ],
        lasting=[
            _(
                "A revoked client cannot be restored. To connect that system again, register "
                "a new client and give it the new secret."
            ),
        ],
        button=_("Yes, revoke the client"),
        back=url_for(".clients"),
    )


@bp.post("/clients/<client_id>/revoke")
@signed_in(*ADMINS)
def revoke_client(client_id, principal):
    check_csrf()
    if not confirmed():
        return ask_first()
    client = service.update_client(
        principal, principal.organization_id, client_id, {"revoked": True}
    )
    db.session.commit()
    flash(_("%(name)s is revoked: its tokens no longer work.", name=client.name), "notice")
    return redirect(url_for(".clients"))
