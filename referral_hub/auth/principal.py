"""Who is acting: the organisation, the user or client, their roles and granted scopes."""

import functools
from dataclasses import dataclass

from flask import g, request

from ..errors import Forbidden, InsufficientScope, Unauthorized
from ..messages import N_
from . import tokens


@dataclass(frozen=True)
class Principal:
    organization_id: str
    client_id: str
    user_id: str | None
    roles: frozenset
    provinces: frozenset
    scopes: frozenset

    @classmethod
    def from_claims(cls, claims):
        user_id = None if claims["sub"] == claims["client_id"] else claims["sub"]
        return cls(
            organization_id=claims["org"],
            client_id=claims["client_id"],
            user_id=user_id,
            roles=frozenset(claims.get("roles") or ()),
            provinces=frozenset(claims.get("provinces") or ()),
            scopes=frozenset((claims.get("scope") or "").split()),
        )

    def has_role(self, *roles):
        return bool(self.roles.intersection(roles))

    def require_role(self, *roles):
        if not self.has_role(*roles):
            raise Forbidden(N_("This needs one of the roles: %(roles)s.", roles=roles))


def actor(principal):
    """How logs of changes name who acted: a user, a client, or the hub itself."""
    if principal is None:
        return "system"
    if principal.user_id:
        return f"user:{principal.user_id}"
    return f"client:{principal.client_id}"


def _bearer_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise Unauthorized(
            "Send an access token: Authorization: Bearer <token>.", error="invalid_request"
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "The Authorization header must be 'Bearer <token>'.", error="invalid_request"
        )
    return token.strip()


def protected(scope):
    """Protect an API route by scope and hand the handler the acting principal."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            claims = tokens.verify(_bearer_token())
            principal = Principal.from_claims(claims)
            if scope not in principal.scopes:
                raise InsufficientScope(scope)
            g.principal = principal
            return view(*args, principal=principal, **kwargs)

        wrapper.required_scope = scope
        return wrapper

    return decorator
