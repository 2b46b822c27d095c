"""Audit API: coordinators read the audit log (it holds no personal data)."""

from datetime import UTC

from flask import Blueprint, request
from marshmallow import Schema, fields, validate

from ..auth.principal import protected
from ..pagination import PageArgs
from . import service

bp = Blueprint("audit_api", __name__, url_prefix="/api/v1")


class AuditArgs(PageArgs):
    """Query parameters of GET /api/v1/audit; unknown ones are refused (422)."""

    resource_type = fields.String(validate=validate.Length(min=1, max=30))
    resource_id = fields.String(validate=validate.Length(min=1, max=36))
    action = fields.String(validate=validate.Length(min=1, max=60))
    actor = fields.String(validate=validate.Length(min=1, max=120))
    since = fields.AwareDateTime(default_timezone=UTC)


class AuditEntryView(Schema):
    seq = fields.Integer()
    at = fields.DateTime()
    actor = fields.String()
    organization_id = fields.String(allow_none=True)
    action = fields.String()
    resource_type = fields.String()
    resource_id = fields.String(allow_none=True)
    details = fields.Dict()
    hash = fields.String()


@bp.get("/audit")
@protected("reports:read")
def list_audit_entries(principal):
    args = AuditArgs().load(request.args)
    page_args = {"limit": args.pop("limit"), "cursor": args.pop("cursor")}
    found, next_cursor = service.entries(principal, args, page_args)
    return {"items": AuditEntryView(many=True).dump(found), "next_cursor": next_cursor}
