"""Organisation API of the directory."""

from flask import Blueprint, request

from ..auth.principal import protected
from ..extensions import db
from ..pagination import PageArgs
from ..request_handling import json_body
from . import service
from .schemas import OrganizationCreate, OrganizationView

bp = Blueprint("directory_api", __name__, url_prefix="/api/v1")


@bp.get("/organizations")
@protected("directory:read")
def list_organizations(principal):
    organizations, next_cursor = service.list_organizations(PageArgs().load(request.args))
    return {"items": OrganizationView(many=True).dump(organizations), "next_cursor": next_cursor}


@bp.post("/organizations")
@protected("directory:write")
def create_organization(principal):
    organization = service.create_organization(principal, **json_body(OrganizationCreate()))
    db.session.commit()
    return OrganizationView().dump(organization), 201


@bp.get("/organizations/<uuid:organization_id>")
@protected("directory:read")
def get_organization(organization_id, principal):
    return OrganizationView().dump(service.get_organization(str(organization_id)))
