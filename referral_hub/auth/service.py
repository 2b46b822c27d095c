"""Rules for signing in and for managing an organisation's users and API clients."""

import re

from .. import clock
from ..audit import service as audit
from ..directory.models import Organization
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..messages import N_
from ..pagination import paginate
from ..persistence import flush_or_conflict
from . import revocation, throttle
from .credentials import digest, hash_password, new_secret, verify_password
from .models import Membership, OAuthClient, RefreshToken, User
from .principal import actor

PROVINCE_CODE = re.compile(r"^(0[1-9]|1[0-9]|2[0-5])$")
ROLES_ONLY_COORDINATORS_GRANT = {"coordinator", "focal_point"}


def sign_in(email, password, address):
    """The active user with these credentials, or None; failures from the source address are
    throttled, refused before the password is hashed."""
    email = email.strip().lower()
    throttle.check("login", email, address)
    user = db.session.scalar(db.select(User).filter_by(email=email))
    password_hash = user.password_hash if user and user.active else None
    if not verify_password(password_hash, password):
        throttle.record_failure("login", email, address)
        return None
    throttle.record_success("login", email, address)
    user.last_login_at = clock.now()
    db.session.commit()
    return user


PASSWORD_LENGTH = range(12, 201)
PASSWORD_LENGTH_MESSAGE = "Use 12 to 200 characters."


def change_password(user_id, current, new):
    """A person replaces their own password (an invited user's temporary one, first); other
    sessions' refresh tokens stop working, since whoever held the old password may hold those."""
    user = db.session.get(User, user_id)
    if user is None or not verify_password(user.password_hash, current):
        message = "The current password is not right."
        raise InvalidInput(message, errors=[{"field": "current_password", "message": message}])
    if len(new) not in PASSWORD_LENGTH:
        message = PASSWORD_LENGTH_MESSAGE
        raise InvalidInput(message, errors=[{"field": "new_password", "message": message}])
    if new == current:
        message = "Choose a password different from the current one."
        raise InvalidInput(message, errors=[{"field": "new_password", "message": message}])
    user.password_hash = hash_password(new)
    revocation.revoke_refresh_tokens(RefreshToken.user_id == user.id)
    end_web_sessions(user)
    audit.record(f"user:{user.id}", user.organization_id, "user.password_changed", "user", user.id)
    db.session.flush()


# How many sessions signed out one by one a user keeps; one more ends all their sessions instead.
ENDED_SESSIONS_KEPT = 30


def end_web_sessions(user):
    """End every web session the user has open, on any device."""
    user.session_generation += 1
    user.ended_sessions = []


def end_session(user_id, session_id):
    """Sign one web session out for good, the user's other sessions staying open; the user's row
    is locked so that two sign-outs at once are both kept."""
    user = db.session.get(User, user_id, with_for_update=True, populate_existing=True)
    if len(user.ended_sessions) < ENDED_SESSIONS_KEPT:
        user.ended_sessions = [*user.ended_sessions, session_id]
    else:
        end_web_sessions(user)
    db.session.flush()


def sign_out_everywhere(user_id):
    """A person ends all their web sessions and the tokens of the apps they signed in to."""
    user = db.session.get(User, user_id)
    end_web_sessions(user)
    revocation.revoke(f"user:{user.id}")
    revocation.revoke_refresh_tokens(RefreshToken.user_id == user.id)
    audit.record(
        f"user:{user.id}", user.organization_id, "user.signed_out_everywhere", "user", user.id
    )
    db.session.flush()


def update_contact_details(user_id, name, phone=None):
    """A person changes how partners name and call them; their email is their sign-in."""
    user = db.session.get(User, user_id)
    changed = sorted(
        field
        for field, value in (("name", name), ("phone", phone or None))
        if getattr(user, field) != value
    )
    user.name, user.phone = name, phone or None
    db.session.flush()
    if changed:
        audit.record(
            f"user:{user.id}",
            user.organization_id,
            "user.updated",
            "user",
            user.id,
            {"fields": changed},
        )
    return user


def organization_name(organization_id):
    organization = db.session.get(Organization, organization_id)
    return organization.name if organization else ""


def managed_organization(principal, organization_id):
    """The organisation if the principal administers it; 404 if it may not even know of it."""
    organization = db.session.get(Organization, organization_id)
    is_coordinator = principal.has_role("coordinator")
    if organization is None or (
        organization.id != principal.organization_id and not is_coordinator
    ):
        raise NotFound("No such organisation.")
    if not is_coordinator and not principal.has_role("org_admin"):
        raise Forbidden("Only the organisation's admins and network coordinators may do this.")
    return organization


def _check_roles(principal, roles, provinces):
    if principal is not None and not principal.has_role("coordinator"):
        reserved = ROLES_ONLY_COORDINATORS_GRANT.intersection(roles)
        if reserved:
            raise Forbidden(
                N_("Only network coordinators may grant: %(roles)s.", roles=sorted(reserved))
            )
    bad = [code for code in provinces if not PROVINCE_CODE.match(code)]
    if bad:
        raise InvalidInput(
            "Unknown province codes.",
            errors=[{"field": "provinces", "message": N_("Unknown: %(codes)s", codes=bad)}],
        )
    if "focal_point" in roles and not provinces:
        raise InvalidInput(
            "A focal point covers at least one province.",
            errors=[{"field": "provinces", "message": "Required for the focal_point role."}],
        )


def _set_roles(user, roles, provinces):
    """Keep the memberships whose role stays, drop the others, add the new ones."""
    kept = {m.role: m for m in user.memberships if m.role in roles}
    user.memberships = [kept.get(role) or Membership(role=role) for role in sorted(set(roles))]
    for membership in user.memberships:
        membership.provinces = sorted(provinces) if membership.role == "focal_point" else []


def create_user(
    principal, organization_id, email, roles, name="", provinces=(), password=None, phone=None
):
    """Add a user to an organisation; principal None means the command line (trusted)."""
    if principal is not None:
        managed_organization(principal, organization_id)
    elif db.session.get(Organization, organization_id) is None:
        raise NotFound("No such organisation.")
    _check_roles(principal, roles, provinces)
    user = User(
        organization_id=organization_id,
        email=email.strip().lower(),
        name=name,
        phone=phone or None,
        password_hash=hash_password(password) if password else None,
    )
    _set_roles(user, roles, provinces)
    db.session.add(user)
    flush_or_conflict("A user with this email exists already.", "email")
    _audit(principal, organization_id, "user.created", "user", user.id, {"roles": sorted(roles)})
    return user


def _audit(principal, organization_id, action, resource_type, resource_id, details):
    audit.record(actor(principal), organization_id, action, resource_type, resource_id, details)


def _user_of(principal, organization_id, user_id):
    managed_organization(principal, organization_id)
    user = db.session.get(User, user_id)
    if user is None or user.organization_id != organization_id:
        raise NotFound("No such user.")
    return user


def get_user(principal, organization_id, user_id):
    """One user of an organisation the principal administers."""
    return _user_of(principal, organization_id, user_id)


def list_users(principal, organization_id, page_args):
    managed_organization(principal, organization_id)
    query = db.select(User).filter_by(organization_id=organization_id)
    return paginate(query, User.email, User.id, page_args)


def update_user(principal, organization_id, user_id, changes):
    """Change name, phone, roles, provinces or active; anything that narrows access voids their
    tokens."""
    user = _user_of(principal, organization_id, user_id)
    if user.id == principal.user_id and changes.get("active") is False:
        raise Conflict("You cannot disable your own account.")
    roles = changes.get("roles", user.roles)
    provinces = changes.get("provinces", user.provinces)
    if "roles" in changes or "provinces" in changes:
        _check_roles(principal, roles, provinces)
        _set_roles(user, roles, provinces)
    if "name" in changes:
        user.name = changes["name"]
    if "phone" in changes:
        user.phone = changes["phone"] or None
    if "active" in changes:
        user.active = changes["active"]
    if not user.active or {"roles", "provinces"} & changes.keys():
        revocation.revoke(f"user:{user.id}")
        end_web_sessions(user)
    if not user.active:
        revocation.revoke_refresh_tokens(RefreshToken.user_id == user.id)
    db.session.flush()
    _audit(principal, organization_id, "user.updated", "user", user.id, {"fields": sorted(changes)})
    return user


def create_client(
    principal, organization_id, name, scopes, grant_types, auth_method, redirect_uris=(), jwks=None
):
    """Register an API client; returns (client, secret) and the secret is never shown again."""
    if principal is not None:
        managed_organization(principal, organization_id)
    elif db.session.get(Organization, organization_id) is None:
        raise NotFound("No such organisation.")
    _check_client_shape(grant_types, auth_method, redirect_uris, jwks)
    secret = new_secret() if auth_method.startswith("client_secret") else None
    client = OAuthClient(
        client_id=f"hub_{new_secret(12)}",
        organization_id=organization_id,
        name=name,
        secret_hash=digest(secret) if secret else None,
        auth_method=auth_method,
        grant_types=sorted(set(grant_types)),
        redirect_uris=list(redirect_uris),
        scope=" ".join(sorted(set(scopes))),
        jwks=jwks,
    )
    db.session.add(client)
    db.session.flush()
    _audit(
        principal,
        organization_id,
        "client.created",
        "client",
        client.id,
        {"scope": sorted(set(scopes))},
    )
    return client, secret


def _check_client_shape(grant_types, auth_method, redirect_uris, jwks):
    errors = []
    interactive = "authorization_code" in grant_types
    if interactive and not redirect_uris:
        errors.append({"field": "redirect_uris", "message": "Required for authorization_code."})
    if "refresh_token" in grant_types and not interactive:
        errors.append(
            {"field": "grant_types", "message": "refresh_token goes with authorization_code."}
        )
    if auth_method == "none" and "client_credentials" in grant_types:
        errors.append(
            {"field": "auth_method", "message": "client_credentials needs a confidential client."}
        )
    if auth_method == "private_key_jwt" and not (jwks and jwks.get("keys")):
        errors.append(
            {"field": "jwks", "message": "private_key_jwt needs the client's public keys."}
        )
    if errors:
        raise InvalidInput("The client registration is inconsistent.", errors=errors)


def _client_of(principal, organization_id, client_id):
    managed_organization(principal, organization_id)
    client = db.session.scalar(db.select(OAuthClient).filter_by(client_id=client_id))
    if client is None or client.organization_id != organization_id:
        raise NotFound("No such client.")
    return client


def get_client(principal, organization_id, client_id):
    """One API client of an organisation the principal administers."""
    return _client_of(principal, organization_id, client_id)


def list_clients(principal, organization_id, page_args):
    managed_organization(principal, organization_id)
    query = db.select(OAuthClient).filter_by(organization_id=organization_id)
    return paginate(query, OAuthClient.client_id, OAuthClient.id, page_args)


def update_client(principal, organization_id, client_id, changes):
    """Rename, re-scope or revoke a client; revoking voids its tokens at once."""
    client = _client_of(principal, organization_id, client_id)
    if client.revoked_at is not None:
        raise Conflict("This client has been revoked.")
    if "name" in changes:
        client.name = changes["name"]
    if "redirect_uris" in changes:
        _check_client_shape(
            client.grant_types, client.auth_method, changes["redirect_uris"], client.jwks
        )
        client.redirect_uris = list(changes["redirect_uris"])
    if "scopes" in changes:
        client.scope = " ".join(sorted(set(changes["scopes"])))
        revocation.revoke(f"client:{client.client_id}")
    if changes.get("revoked"):
        client.revoked_at = clock.now()
        revocation.revoke(f"client:{client.client_id}")
        revocation.revoke_refresh_tokens(RefreshToken.client_id == client.client_id)
    db.session.flush()
    _audit(
        principal,
        organization_id,
        "client.updated",
        "client",
        client.id,
        {"fields": sorted(changes)},
    )
    return client
