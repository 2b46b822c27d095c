"""Directory API: organisations, services, search, capacity, history, areas and taxonomy."""

from flask import Blueprint, request

from ..auth.principal import protected
from ..extensions import db
from ..pagination import PageArgs
from ..request_handling import json_body
from . import documents, published, reference, service
from .schemas import (
    CapacityUpdate,
    ChangeView,
    OrganizationCreate,
    OrganizationUpdate,
    OrganizationView,
    ReminderView,
    SearchArgs,
    ServiceCreate,
    ServiceFields,
)

bp = Blueprint("directory_api", __name__, url_prefix="/api/v1")
# Made once: making the schema (a copy of each field) cost more than the search's parsing.
SEARCH_ARGS = SearchArgs()


def page(items, schema, next_cursor):
    return {"items": schema.dump(items), "next_cursor": next_cursor}


@bp.get("/organizations")
@protected("directory:read")
def list_organizations(principal):
    organizations, next_cursor = service.list_organizations(PageArgs().load(request.args))
    return page(organizations, OrganizationView(many=True), next_cursor)


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


@bp.patch("/organizations/<uuid:organization_id>")
@protected("directory:write")
def update_organization(organization_id, principal):
    changes = json_body(OrganizationUpdate())
    organization = service.update_organization(principal, str(organization_id), changes)
    db.session.commit()
    return OrganizationView().dump(organization)


@bp.post("/organizations/<uuid:organization_id>/verify")
@protected("directory:write")
def verify_organization(organization_id, principal):
    organization = service.verify_organization(principal, str(organization_id))
    db.session.commit()
    return OrganizationView().dump(organization)


def _document(service_id, principal):
    """The service as this principal may see it: safe-house addresses only for partners."""
    return documents.service_document(service_id, service.sees_confidential_addresses(principal))


@bp.get("/services")
@protected("directory:read")
def search_services(principal):
    args = SEARCH_ARGS.load(request.args)
    page_args = {"limit": args.pop("limit"), "cursor": args.pop("cursor")}
    return published.search_page(args, page_args, service.sees_confidential_addresses(principal))


@bp.post("/services")
@protected("directory:write")
def create_service(principal):
    values = json_body(ServiceCreate())
    organization_id = str(values.pop("organization_id"))
    created = service.create_service(principal, organization_id, values)
    db.session.commit()
    return _document(created.id, principal), 201


@bp.get("/services/<uuid:service_id>")
@protected("directory:read")
def get_service(service_id, principal):
    show_confidential = service.sees_confidential_addresses(principal)
    return published.service_document(str(service_id), show_confidential)


@bp.patch("/services/<uuid:service_id>")
@protected("directory:write")
def update_service(service_id, principal):
    changes = json_body(ServiceFields())
    updated = service.update_service(principal, str(service_id), changes)
    db.session.commit()
    return _document(updated.id, principal)


@bp.patch("/services/<uuid:service_id>/capacity")
@protected("directory:write")
def update_capacity(service_id, principal):
    changes = json_body(CapacityUpdate())
    updated = service.update_capacity(principal, str(service_id), changes)
    db.session.commit()
    return _document(updated.id, principal)


@bp.post("/services/<uuid:service_id>/verify")
@protected("directory:write")
def verify_service(service_id, principal):
    verified = service.verify_service(principal, str(service_id))
    db.session.commit()
    return _document(verified.id, principal)


@bp.get("/services/<uuid:service_id>/history")
@protected("directory:read")
def service_history(service_id, principal):
    service.get_service(str(service_id))
    changes, next_cursor = service.history(
        "service", str(service_id), PageArgs().load(request.args)
    )
    return page(changes, ChangeView(many=True), next_cursor)


@bp.get("/directory/reminders")
@protected("directory:write")
def reminders(principal):
    found, next_cursor = service.open_reminders(principal, PageArgs().load(request.args))
    return page(found, ReminderView(many=True), next_cursor)


@bp.get("/areas")
@protected("directory:read")
def areas(principal):
    return {
        "provinces": [
            {
                "code": p["code"],
                "name_en": p["name_en"],
                "name_km": p["name_km"],
                "type": p["type"],
                "districts": [
                    {k: d[k] for k in ("code", "name_en", "name_km", "type")}
                    for d in p["districts"]
                ],
            }
            for p in reference.provinces()
        ]
    }


@bp.get("/taxonomy")
@protected("directory:read")
def taxonomy(principal):
    data = reference.taxonomy()
    return {"taxonomy": data["taxonomy"], "terms": data["terms"]}
