"""Rules for the directory: who may change what, with every change kept as history."""

import json
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, select

from .. import clock
from ..audit import service as audit
from ..auth.principal import actor
from ..errors import Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..messages import N_
from ..notifications import service as notifications
from ..pagination import paginate
from ..persistence import flush_or_conflict
from . import reference
from .models import (
    PEER_STAND_IN,
    Contact,
    DirectoryChange,
    Organization,
    Phone,
    Schedule,
    Service,
    ServiceArea,
    ServiceCategory,
    ServiceLanguage,
    VerificationReminder,
)

# What an organisation's admin may change on its own services; coordinators change anything.
LINKS = ("categories", "areas", "languages", "phones", "contacts", "schedules")
OWNER_FIELDS = {
    "contacts",
    "schedules",
    "name",
    "alternate_name",
    "description",
    "name_km",
    "description_km",
    "url",
    "email",
    "application_process",
    "fees_description",
    "eligibility_description",
    "languages",
    "phones",
}
CURATED_FIELDS = OWNER_FIELDS | {
    "categories",
    "areas",
    "minimum_age",
    "maximum_age",
    "eligibility_sex",
    "status",
}
CAPACITY_FIELDS = {"capacity_status", "places_free", "accepting_referrals"}
ORGANIZATION_OWNER_FIELDS = {
    "description",
    "description_km",
    "alternate_name",
    "email",
    "website",
    "phones",
}
ORGANIZATION_CURATED_FIELDS = ORGANIZATION_OWNER_FIELDS | {"name", "name_km", "province", "status"}


def _is_coordinator(principal):
    return principal is None or principal.has_role("coordinator")


def _as_text(value):
    """History keeps values as text: JSON for lists, ISO 8601 for times."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | dict | bool):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _record(resource, resource_type, action, changes, principal):
    for field, (old, new) in sorted(changes.items()):
        db.session.add(
            DirectoryChange(
                resource_type=resource_type,
                resource_id=resource.id,
                action=action,
                field_name=field,
                previous_value=_as_text(old),
                replacement_value=_as_text(new),
                updated_by=actor(principal),
                organization_id=principal.organization_id if principal else None,
            )
        )
    audit.record(
        actor(principal),
        principal.organization_id if principal else None,
        f"{resource_type}.{action}",
        resource_type,
        resource.id,
        {"fields": sorted(changes)},
    )


def _field_error(field, message):
    return InvalidInput(message, errors=[{"field": field, "message": message}])


# Organisations


def create_organization(principal, name, description="", province=None, **extra):
    """Admit an organisation to the network (coordinators; principal None is the hub itself)."""
    if principal is not None:
        principal.require_role("coordinator")
    if province is not None and not reference.is_province(province):
        raise _field_error("province", f"Unknown province code {province!r}.")
    organization = Organization(
        name=name.strip(), description=description, province=province, **extra
    )
    db.session.add(organization)
    flush_or_conflict("An organisation with this name exists already.", "name")
    _record(organization, "organization", "create", {"name": (None, organization.name)}, principal)
    return organization


def list_organizations(page_args):
    """The network's organisations and those mirrored from peer hubs, not peers' stand-ins."""
    query = db.select(Organization).where(Organization.status != PEER_STAND_IN)
    return paginate(query, Organization.name, Organization.id, page_args)


def get_organization(organization_id):
    organization = db.session.get(Organization, organization_id)
    if organization is None:
        raise NotFound("No such organisation.")
    return organization


def _local(record):
    """A peer hub's entry, mirrored here, is edited on that hub only."""
    if record.peer_id is not None:
        raise Forbidden("This entry is a peer hub's: it is edited on that hub.")
    return record


def update_organization(principal, organization_id, changes):
    """Coordinators curate any organisation; an admin edits its own organisation's description."""
    organization = _local(get_organization(organization_id))
    if _is_coordinator(principal):
        allowed = ORGANIZATION_CURATED_FIELDS
    elif principal.organization_id == organization.id and principal.has_role("org_admin"):
        allowed = ORGANIZATION_OWNER_FIELDS
    else:
        raise Forbidden(
            "Only coordinators, or the organisation's own admins, edit an organisation."
        )
    _refuse_fields(changes, allowed)
    if "name" in changes:
        changes = {**changes, "name": changes["name"].strip()}
    if changes.get("province") is not None and not reference.is_province(changes["province"]):
        raise _field_error("province", f"Unknown province code {changes['province']!r}.")
    diff = _apply(organization, changes)
    if "phones" in changes:
        diff.update(_set_organization_phones(organization, changes["phones"]))
    flush_or_conflict("An organisation with this name exists already.", "name")
    if "name" in diff:  # its services are found by their organisation's name too
        for offered in organization.services:
            refresh_search_text(offered)
    _record(organization, "organization", "update", diff, principal)
    return organization


def _set_organization_phones(organization, phones):
    """Replace the organisation's own numbers (not its services'); {"phones": (old, new)} if
    they changed."""
    old = [phone.number for phone in organization.phones]
    new = [phone["number"] for phone in phones]
    if old == new:
        return {}
    db.session.execute(
        db.delete(Phone).where(Phone.organization_id == organization.id, Phone.service_id.is_(None))
    )
    db.session.add_all(Phone(organization_id=organization.id, **phone) for phone in phones)
    db.session.flush()
    db.session.expire(organization, ["phones"])
    return {"phones": (old, new)}


def verify_organization(principal, organization_id):
    principal.require_role("coordinator")
    organization = _local(get_organization(organization_id))
    old = organization.last_verified_at
    organization.last_verified_at, organization.last_verified_by = clock.now(), actor(principal)
    verified = {"last_verified_at": (old, organization.last_verified_at)}
    _record(organization, "organization", "verify", verified, principal)
    return organization


# Services


def _refuse_fields(changes, allowed):
    refused = sorted(set(changes) - allowed)
    if refused:
        raise Forbidden(
            N_("You may not change: %(fields)s.", fields=refused),
            errors=[{"field": field, "message": "Not yours to change."} for field in refused],
        )


def _check_service_values(values, current=None):
    """The rules marshmallow cannot see: known codes and a sensible age range."""
    errors = []
    unknown = reference.unknown_categories(values.get("categories", []))
    if unknown:
        errors.append(
            {"field": "categories", "message": N_("Unknown categories: %(codes)s", codes=unknown)}
        )
    unknown = reference.unknown_areas(values.get("areas", []))
    if unknown:
        errors.append(
            {"field": "areas", "message": N_("Unknown area codes: %(codes)s", codes=unknown)}
        )
    minimum = values.get("minimum_age", current.minimum_age if current else None)
    maximum = values.get("maximum_age", current.maximum_age if current else None)
    if minimum is not None and maximum is not None and minimum > maximum:
        errors.append(
            {"field": "minimum_age", "message": "The minimum age is above the maximum age."}
        )
    if errors:
        raise InvalidInput("The service has invalid fields.", errors=errors)


def set_links(service, values):
    """Replace the linked records (categories, areas, languages, phones, contacts, schedules)."""
    if "categories" in values:
        service.categories = [
            ServiceCategory(code=code) for code in sorted(set(values["categories"]))
        ]
    if "areas" in values:
        service.areas = [ServiceArea(area_code=code) for code in sorted(set(values["areas"]))]
    if "languages" in values:
        service.languages = [
            ServiceLanguage(code=code) for code in sorted(set(values["languages"]))
        ]
    if "phones" in values:
        service.phones = [
            Phone(organization_id=service.organization_id, **phone) for phone in values["phones"]
        ]
    if "contacts" in values:
        service.contacts = [Contact(**contact) for contact in values["contacts"]]
    if "schedules" in values:
        service.schedules = [Schedule(**schedule) for schedule in values["schedules"]]


def _link_values(service):
    return {
        "categories": service.category_codes,
        "areas": service.area_codes,
        "languages": service.language_codes,
        "phones": [phone.number for phone in service.phones],
        "contacts": [contact.name for contact in service.contacts],
        "schedules": [f"{s.byday} {s.opens_at}-{s.closes_at}" for s in service.schedules],
    }


def _apply(record, changes):
    """Set plain fields and return {field: (old, new)} for those that changed."""
    diff = {}
    for field, value in changes.items():
        if field in LINKS:
            continue
        old = getattr(record, field)
        if old != value:
            diff[field] = (old, value)
            setattr(record, field, value)
    return diff


def refresh_search_text(service):
    """The text that `q` searches: names, description, category and area names, both languages."""
    areas = reference.areas_by_code()
    area_names = " ".join(
        f"{areas[c]['name_en']} {areas[c]['name_km']}" for c in service.area_codes if c in areas
    )
    parts = [
        service.name,
        service.name_km or "",
        service.alternate_name or "",
        service.description or "",
        service.description_km or "",
        service.eligibility_description or "",
        service.organization.name,
        reference.category_names(service.category_codes),
        area_names,
    ]
    service.search_text = " ".join(parts).lower()


def refresh_coordinates(service):
    """Distance ordering uses the first non-confidential location with coordinates."""
    public = [loc for loc in service.locations if not loc.confidential and loc.latitude is not None]
    service.latitude, service.longitude = (
        (public[0].latitude, public[0].longitude) if public else (None, None)
    )


def create_service(principal, organization_id, values):
    if principal is not None:
        principal.require_role("coordinator")
    organization = _local(get_organization(organization_id))
    _check_service_values(values)
    plain = {k: v for k, v in values.items() if k not in LINKS}
    service = Service(organization=organization, **plain)
    set_links(service, values)
    db.session.add(service)
    flush_or_conflict("This organisation has a service with this name already.", "name")
    refresh_search_text(service)
    _record(service, "service", "create", {"name": (None, service.name)}, principal)
    return service


def display_names(service_ids=(), organization_ids=()):
    """Names of services and organisations by id, in two queries, for lists of referrals."""
    names = {}
    if service_ids:
        names.update(
            db.session.execute(
                db.select(Service.id, Service.name).where(Service.id.in_(set(service_ids)))
            ).all()
        )
    if organization_ids:
        names.update(
            db.session.execute(
                db.select(Organization.id, Organization.name).where(
                    Organization.id.in_(set(organization_ids))
                )
            ).all()
        )
    return names


def sees_confidential_addresses(principal):
    """Safe-house addresses are for the NGOs that place children there, not for government
    readers or the public."""
    if principal is None:
        return False
    return not principal.roles or bool(principal.roles - {"focal_point"})


def get_service(service_id):
    service = db.session.get(Service, service_id)
    if service is None:
        raise NotFound("No such service.")
    return service


class ServiceFacts(NamedTuple):
    """What sending a referral checks of its service, and whose it is."""

    id: str
    organization_id: str
    peer_id: str | None
    status: str
    organization_status: str
    accepting_referrals: bool
    minimum_age: int | None
    maximum_age: int | None
    eligibility_sex: str | None


SERVICE_FACTS = (
    select(
        *(getattr(Service, name) for name in ServiceFacts._fields if name != "organization_status"),
        Organization.status.label("organization_status"),
    )
    .join(Organization, Organization.id == Service.organization_id)
    .where(Service.id == bindparam("service_id"))
    .execution_options(prepared=True)
)


def service_facts(service_id):
    """The ServiceFacts of a service, or None when there is no such service: one prepared
    SELECT, not the ORM's load of the service with its organisation, which was the largest
    part of a create. Read afresh, not kept with the published directory: a service closed a
    moment ago, by any process, takes no more referrals."""
    row = db.session.connection().execute(SERVICE_FACTS, {"service_id": service_id}).first()
    return ServiceFacts(**row._mapping) if row else None


def _owner_admin(principal, service):
    return principal.organization_id == service.organization_id and principal.has_role("org_admin")


def update_service(principal, service_id, changes):
    """Coordinators curate any field; the owner's admins edit the descriptive ones."""
    service = _local(get_service(service_id))
    if _is_coordinator(principal):
        allowed = CURATED_FIELDS
    elif _owner_admin(principal, service):
        allowed = OWNER_FIELDS
    else:
        raise Forbidden("Only coordinators, or the service's own organisation's admins, edit it.")
    _refuse_fields(changes, allowed)
    _check_service_values(changes, current=service)
    if "name" in changes:
        changes = {**changes, "name": changes["name"].strip()}
    before = _link_values(service)
    diff = _apply(service, changes)
    set_links(service, changes)
    after = _link_values(service)
    diff.update(
        {k: (before[k], after[k]) for k in changes if k in before and before[k] != after[k]}
    )
    flush_or_conflict("This organisation has a service with this name already.", "name")
    refresh_search_text(service)
    _record(service, "service", "update", diff, principal)
    return service


def _owner_system_or_admin(principal, service):
    owner = principal.organization_id == service.organization_id
    return owner and (principal.user_id is None or principal.has_role("org_admin"))


def update_capacity(principal, service_id, changes):
    """The owning organisation (its admins or its systems) and coordinators say what is free now."""
    service = _local(get_service(service_id))
    if not (_is_coordinator(principal) or _owner_system_or_admin(principal, service)):
        raise Forbidden(
            "Only coordinators and the service's own organisation (its admins or its systems) "
            "update capacity."
        )
    diff = _apply(service, changes)
    service.capacity_updated_at, service.capacity_updated_by = clock.now(), actor(principal)
    _record(service, "service", "capacity", diff, principal)
    db.session.flush()
    return service


def verify_service(principal, service_id):
    """A coordinator confirms the entry is true today; open reminders close."""
    principal.require_role("coordinator")
    service = _local(get_service(service_id))
    old = service.last_verified_at
    service.last_verified_at, service.last_verified_by = clock.now(), actor(principal)
    db.session.execute(
        db.update(VerificationReminder)
        .where(
            VerificationReminder.service_id == service.id,
            VerificationReminder.resolved_at.is_(None),
        )
        .values(resolved_at=service.last_verified_at)
    )
    _record(
        service,
        "service",
        "verify",
        {"last_verified_at": (old, service.last_verified_at)},
        principal,
    )
    return service


def history(resource_type, resource_id, page_args):
    query = db.select(DirectoryChange).where(
        DirectoryChange.resource_type == resource_type, DirectoryChange.resource_id == resource_id
    )
    return paginate(query, DirectoryChange.id, DirectoryChange.id, page_args)


def remind_unverified(max_age_days):
    """Open one reminder for each active service not verified for max_age_days, and tell the
    organisation's admins."""
    cutoff = clock.now() - timedelta(days=max_age_days)
    open_reminder = db.select(VerificationReminder.service_id).where(
        VerificationReminder.resolved_at.is_(None)
    )
    stale = db.session.scalars(
        db.select(Service).where(
            Service.status == "active",
            Service.peer_id.is_(None),  # a peer hub verifies its own
            (Service.last_verified_at.is_(None)) | (Service.last_verified_at < cutoff),
            Service.id.not_in(open_reminder),
        )
    ).all()
    for service in stale:
        db.session.add(
            VerificationReminder(service_id=service.id, last_verified_at=service.last_verified_at)
        )
        notifications.service_unverified(service)
    db.session.flush()
    return len(stale)


def open_reminders(principal, page_args):
    principal.require_role("coordinator")
    query = db.select(VerificationReminder).where(VerificationReminder.resolved_at.is_(None))
    return paginate(query, VerificationReminder.service_id, VerificationReminder.id, page_args)
