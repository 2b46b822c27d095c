"""Shapes of the organisation API."""

from marshmallow import Schema, fields, validate

from .models import ORGANIZATION_STATUSES


class OrganizationCreate(Schema):
    name = fields.String(
        required=True,
        validate=[validate.Length(max=200), validate.Regexp(r"\S", error="The name is empty.")],
    )
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    province = fields.String(
        load_default=None, validate=validate.Regexp(r"^(0[1-9]|1[0-9]|2[0-5])$")
    )


class OrganizationView(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    province = fields.String()
    status = fields.String(validate=validate.OneOf(ORGANIZATION_STATUSES))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
