"""HSDS 3.0 in and out: the directory's export and import, and the Open Referral read API."""

import math
from datetime import UTC

from flask import Blueprint, current_app, request, url_for
from marshmallow import INCLUDE, Schema, fields, validate
from sqlalchemy import false, func
from sqlalchemy.orm import selectinload

from ..auth.principal import protected
from ..errors import NotFound
from ..extensions import db
from ..federation import inbound
from ..pagination import page_number
from ..request_handling import json_body
from . import hsds, reference
from .models import Organization, Service, ServiceCategory

bp = Blueprint("directory_hsds", __name__, url_prefix="/api/v1/directory")
hsds_bp = Blueprint("hsds", __name__, url_prefix="/hsds")


@bp.get("/export")
@protected("directory:read")
def export_directory(principal):
    return hsds.export_document(public=True)


@bp.post("/import")
@protected("directory:write")
def import_directory(principal):
    principal.require_role("coordinator")
    counts = hsds.import_document(json_body(Schema(unknown=INCLUDE)), principal)
    db.session.commit()
    return counts


# The Open Referral read API


class PageQuery(Schema):
    page = page_number()
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    search = fields.String(validate=validate.Length(min=1, max=200))


class ServiceQuery(PageQuery):
    taxonomy_term_id = fields.String()
    organization_id = fields.String()
    modified_after = fields.AwareDateTime(default_timezone=UTC)
    minimal = fields.Boolean(load_default=False)
    full = fields.Boolean(load_default=False)


class OrganizationQuery(PageQuery):
    full = fields.Boolean(load_default=False)
    full_service = fields.Boolean(load_default=False)


class OrganizationArgs(Schema):
    full_service = fields.Boolean(load_default=False)


class TermQuery(PageQuery):
    taxonomy_id = fields.String()


@protected("directory:read")
def _require_reader(principal):
    """Refuse the request unless it carries a token with directory:read."""


@hsds_bp.before_request
def _guard():
    """Anonymous reading is a setting; a hub that does not publish its directory needs a token."""
    if not current_app.config["HSDS_PUBLIC"]:
        _require_reader()


def page_of(contents, total, page, per_page):
    """The HSDS page envelope around one page of contents."""
    total_pages = math.ceil(total / per_page)
    return {
        "total_items": total,
        "total_pages": total_pages,
        "page_number": page,
        "size": len(contents),
        "first_page": page == 1,
        "last_page": page >= total_pages,
        "empty": not contents,
        "contents": contents,
    }


def _page(query, order, args, shape):
    total = db.session.scalar(db.select(func.count()).select_from(query.subquery()))
    offset = (args["page"] - 1) * args["per_page"]
    rows = db.session.scalars(query.order_by(*order).limit(args["per_page"]).offset(offset))
    return page_of([shape(row) for row in rows], total, args["page"], args["per_page"])


def _listed_page(items, args):
    """A page of items kept in memory, those that have every search word."""
    words = args.get("search", "").casefold().split()
    found = [
        item
        for item in items
        if all(word in f"{item['name']} {item['description']}".casefold() for word in words)
    ]
    start = (args["page"] - 1) * args["per_page"]
    return page_of(
        found[start : start + args["per_page"]], len(found), args["page"], args["per_page"]
    )


def _local_services():
    """This network's services: a peer hub's services are published by that hub."""
    return db.select(Service).join(Service.organization).where(Service.peer_id.is_(None))


def _public_services():
    return _local_services().where(Service.status == "active", Organization.status == "active")


def _public_organizations():
    return db.select(Organization).where(
        Organization.status == "active", Organization.peer_id.is_(None)
    )


def _one(query, detail):
    found = db.session.scalars(query).first()
    if found is None:
        raise NotFound(detail)
    return found


def _modified(service):
    return {"last_modified": service.updated_at.isoformat(timespec="milliseconds")}


def _full_service(service):
    organization = hsds.organization_object(service.organization)
    return {**hsds.service_object(service), **_modified(service), "organization": organization}


def _peer_entry(service, public):
    """What a peer hub mirrors: every status (so that it sees removals), the organisation's
    status folded into the service's, and confidential locations only if it is trusted."""
    organization = service.organization
    entry = hsds.service_object(service, public)
    if organization.status != "active":
        entry["status"] = "inactive"
    modified = max(service.updated_at, organization.updated_at)
    return {
        **entry,
        "last_modified": modified.isoformat(timespec="microseconds"),
        "organization": hsds.organization_object(organization, public=public),
    }


def _service_entry(args, peer=None):
    """minimal: one-to-one fields; full: fully nested; else one-to-one with the organization."""

    def shape(service):
        if peer is not None:
            return _peer_entry(service, public=not peer.trusted_with_confidential)
        if args["full"]:
            return _full_service(service)
        entry = {**hsds.service_fields(service), **_modified(service)}
        if not args["minimal"]:
            entry["organization"] = hsds.organization_fields(service.organization)
        return entry

    return shape


def _full_organization(organization, full_service):
    services = sorted(
        (s for s in organization.services if s.status == "active"), key=lambda s: (s.name, s.id)
    )
    shape = hsds.service_object if full_service else hsds.service_fields
    return hsds.organization_object(organization, [shape(s) for s in services])


@hsds_bp.get("/")
def about():
    return {
        "version": "3.0.0",
        "profile": hsds.PROFILE,
        "openapi_url": url_for("health.openapi", _external=True),
    }


@hsds_bp.get("/services")
def services():
    args = ServiceQuery().load(request.args)
    peer = inbound.asking_peer()
    if peer is None:
        query = _public_services()
    else:  # a page of whole entries: the organisations' lists in two statements, not two each
        query = _local_services().options(
            selectinload(Service.organization).selectinload(Organization.phones),
            selectinload(Service.organization).selectinload(Organization.locations),
        )
    for word in args.get("search", "").lower().split():
        query = query.where(Service.search_text.contains(word, autoescape=True))
    if "taxonomy_term_id" in args:
        code = hsds.category_code(args["taxonomy_term_id"], {"code": args["taxonomy_term_id"]})
        query = query.where(
            Service.categories.any(ServiceCategory.code == code) if code else false()
        )
    if "organization_id" in args:
        query = query.where(Service.organization_id == args["organization_id"])
    if "modified_after" in args:
        since = args["modified_after"]
        changed = Service.updated_at >= since
        query = query.where(
            changed if peer is None else changed | (Organization.updated_at >= since)
        )
    # A peer pages in order of change, so that what changes meanwhile comes last, not between.
    order = (Service.name, Service.id) if peer is None else (Service.updated_at, Service.id)
    return _page(query, order, args, _service_entry(args, peer))


@hsds_bp.get("/services/<service_id>")
def service(service_id):
    return _full_service(
        _one(_public_services().where(Service.id == service_id), "No such service.")
    )


@hsds_bp.get("/organizations")
def organizations():
    args = OrganizationQuery().load(request.args)
    query = _public_organizations()
    for word in args.get("search", "").lower().split():
        query = query.where(func.lower(Organization.name).contains(word, autoescape=True))

    def shape(organization):
        if args["full"]:
            return _full_organization(organization, args["full_service"])
        return hsds.organization_fields(organization)

    return _page(query, (Organization.name, Organization.id), args, shape)


@hsds_bp.get("/organizations/<organization_id>")
def organization(organization_id):
    args = OrganizationArgs().load(request.args)
    query = _public_organizations().where(Organization.id == organization_id)
    return _full_organization(_one(query, "No such organisation."), args["full_service"])


@hsds_bp.get("/taxonomies")
def taxonomies():
    return _listed_page([hsds.taxonomy_object()], PageQuery().load(request.args))


@hsds_bp.get("/taxonomy_terms")
def taxonomy_terms():
    args = TermQuery().load(request.args)
    ours = args.get("taxonomy_id", hsds.taxonomy_object()["id"]) == hsds.taxonomy_object()["id"]
    terms = reference.taxonomy()["terms"] if ours else []
    return _listed_page([hsds.taxonomy_term_object(term) for term in terms], args)
