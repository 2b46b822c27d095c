"""Shapes of the user and API client admin API."""

from marshmallow import Schema, fields, validate

from ..config import GRANTABLE_SCOPES
from .models import CLIENT_AUTH_METHODS, GRANT_TYPES, ROLES

Role = fields.String(validate=validate.OneOf(ROLES))
Province = fields.String(validate=validate.Regexp(r"^\d{2}$", error="A two-digit province code."))
PHONE_ERROR = "A phone number: digits, spaces and + ( ) - only."
# A number a partner can dial: digits, an optional leading +, spaces and ( ) - between them.
Phone = fields.String(
    allow_none=True,
    validate=validate.Regexp(r"^\+?[0-9][0-9 ()-]{4,40}[0-9]\Z", error=PHONE_ERROR),
)


class UserCreate(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    name = fields.String(load_default="", validate=validate.Length(max=200))
    phone = Phone
    roles = fields.List(Role, required=True, validate=validate.Length(min=1))
    provinces = fields.List(Province, load_default=list)
    password = fields.String(
        load_default=None, validate=validate.Length(min=12, max=200), load_only=True
    )


class UserUpdate(Schema):
    name = fields.String(validate=validate.Length(max=200))
    phone = Phone
    roles = fields.List(Role, validate=validate.Length(min=1))
    provinces = fields.List(Province)
    active = fields.Boolean()


class UserView(Schema):
    id = fields.String()
    organization_id = fields.String()
    email = fields.String()
    name = fields.String()
    phone = fields.String()
    roles = fields.List(fields.String())
    provinces = fields.List(fields.String())
    active = fields.Boolean()
    created_at = fields.DateTime()
    last_login_at = fields.DateTime()


class ContactDetails(Schema):
    """What a person may change about themselves: how partners name and call them."""

    name = fields.String(required=True, validate=validate.Length(max=200))
    phone = Phone


RedirectUri = fields.Url(schemes={"https", "http"}, require_tld=False)


class ClientCreate(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(GRANTABLE_SCOPES)),
        required=True,
        validate=validate.Length(min=1),
    )
    grant_types = fields.List(
        fields.String(validate=validate.OneOf(GRANT_TYPES)),
        load_default=lambda: ["client_credentials"],
        validate=validate.Length(min=1),
    )
    auth_method = fields.String(
        load_default="client_secret_basic", validate=validate.OneOf(CLIENT_AUTH_METHODS)
    )
    redirect_uris = fields.List(RedirectUri, load_default=list)
    jwks = fields.Dict(load_default=None)


class ClientUpdate(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(GRANTABLE_SCOPES)), validate=validate.Length(min=1)
    )
    redirect_uris = fields.List(RedirectUri)
    revoked = fields.Boolean(validate=validate.Equal(True, error="A revoked client stays revoked."))


class ClientView(Schema):
    client_id = fields.String()
    organization_id = fields.String()
    name = fields.String()
    scopes = fields.Function(lambda client: client.scope.split())
    grant_types = fields.List(fields.String())
    auth_method = fields.String()
    redirect_uris = fields.List(fields.String())
    created_at = fields.DateTime()
    revoked_at = fields.DateTime()
