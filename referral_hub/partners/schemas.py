"""The onboarding manifest a partner sends the coordinator (partners/manifests/*.yaml)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..auth.models import CLIENT_AUTH_METHODS
from ..callbacks.models import EVENT_TYPES
from ..config import GRANTABLE_SCOPES
from ..directory.schemas import PROVINCE_CODE

PARTNER_ROLES = ("org_admin", "caseworker")


class ManifestOrganization(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    province = fields.String(validate=validate.Regexp(PROVINCE_CODE))
    description = fields.String(load_default="", validate=validate.Length(max=5000))


class ManifestContact(Schema):
    name = fields.String(load_default="", validate=validate.Length(max=200))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    role = fields.String(required=True, validate=validate.OneOf(PARTNER_ROLES))


class ManifestClient(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(GRANTABLE_SCOPES)),
        required=True,
        validate=validate.Length(min=1),
    )
    auth_method = fields.String(
        load_default="client_secret_basic",
        validate=validate.OneOf([m for m in CLIENT_AUTH_METHODS if m != "none"]),
    )
    jwks_file = fields.String(validate=validate.Length(min=1, max=500))

    @validates_schema
    def _keys_for_assertions(self, data, **_kwargs):
        if data["auth_method"] == "private_key_jwt" and "jwks_file" not in data:
            raise ValidationError(
                {"jwks_file": ["private_key_jwt needs the client's public keys."]}
            )


class ManifestCallbackOAuth(Schema):
    token_url = fields.Url(required=True, schemes={"https", "http"})
    client_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    scope = fields.String(validate=validate.Length(max=500))


class ManifestCallback(Schema):
    url = fields.Url(required=True, schemes={"https", "http"})
    event_types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        required=True,
        validate=validate.Length(min=1),
    )
    oauth = fields.Nested(ManifestCallbackOAuth)


class PartnerManifest(Schema):
    organization = fields.Nested(ManifestOrganization, required=True)
    contacts = fields.List(
        fields.Nested(ManifestContact), required=True, validate=validate.Length(min=1)
    )
    api_clients = fields.List(fields.Nested(ManifestClient), load_default=list)
    callbacks = fields.List(fields.Nested(ManifestCallback), load_default=list)
