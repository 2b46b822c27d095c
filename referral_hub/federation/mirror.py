"""A peer's directory mirrored here: its organisations and services as it published them
(HSDS 3.0), marked as the peer's, read-only here, all of one sync or nothing."""

import hashlib
import json

from ..directory import hsds
from ..directory import service as directory
from ..directory.models import Location, Organization, Phone, Service
from ..directory.service import LINKS
from ..errors import InvalidInput
from ..extensions import db

ORGANIZATION_FIELDS = ("name", "alternate_name", "description", "email", "website", "sources")
LOCATION_FIELDS = (
    "name",
    "description",
    "address",
    "province",
    "district",
    "latitude",
    "longitude",
)


class BadPeerData(InvalidInput):
    """What the peer sent does not read as its directory; nothing of it was applied."""


def _digest(entry):
    unstamped = {key: value for key, value in entry.items() if key != "last_modified"}
    return hashlib.sha256(json.dumps(unstamped, sort_keys=True).encode()).hexdigest()


def _document(entries):
    """The peer's service entries (each with its organisation) as one HSDS document."""
    organizations = {}
    for entry in entries:
        organization = entry.get("organization") if isinstance(entry, dict) else None
        if not isinstance(organization, dict):
            organization = {}
        key = str(organization.get("id"))
        organizations.setdefault(key, {**organization, "services": []})
        service = {k: v for k, v in entry.items() if k not in ("organization", "last_modified")}
        organizations[key]["services"].append(service)
    return {"hsds_version": hsds.HSDS_VERSION, "organizations": list(organizations.values())}


def _owners(model, ids):
    rows = db.session.execute(db.select(model.id, model.peer_id).where(model.id.in_(ids)))
    return dict(rows.all())


def _check_ownership(peer, plans, errors):
    """A record the peer sends must be new here or the peer's own already, and a service's
    places must be among those its organisation lists."""
    organizations = _owners(Organization, [plan["id"] for plan in plans])
    services = _owners(Service, [s["id"] for plan in plans for s in plan["services"]])
    for owners, records in (
        (organizations, plans),
        (services, [s for plan in plans for s in plan["services"]]),
    ):
        for record in records:
            if record["id"] in owners and owners[record["id"]] != peer.id:
                errors.append({"field": f"{record['path']}.id", "message": "Not the peer's id."})
    for plan in plans:
        places = {location["id"] for location in plan["locations"]}
        for service in plan["services"]:
            for path, location_id in service["location_links"]:
                if location_id not in places:
                    errors.append({"field": path, "message": "Not a location it lists."})


def read(peer, entries):
    """The entries checked as HSDS; BadPeerData with every problem found."""
    errors = []
    plans = hsds.read_document(_document(entries), errors)
    if not errors:
        _check_ownership(peer, plans, errors)
    if errors:
        raise BadPeerData(f"The peer sent {len(errors)} invalid field(s).", errors=errors[:50])
    return plans


def _by_id(model, ids):
    return {
        record.id: record
        for record in db.session.scalars(db.select(model).where(model.id.in_(ids)))
    }


def apply(peer, entries):
    """Create or update the peer's records from its entries; returns what changed. Records
    are read in bulk and written in one flush: one query per record cost most of a sync."""
    plans = read(peer, entries)
    digests = {entry["id"]: _digest(entry) for entry in entries}
    kept = dict(
        db.session.execute(
            db.select(Service.id, Service.peer_digest).where(Service.id.in_(list(digests)))
        ).all()
    )
    counts = {"created": 0, "updated": 0, "removed": 0, "unchanged": 0}
    changed = {
        plan["id"]: [s for s in plan["services"] if kept.get(s["id"]) != digests[s["id"]]]
        for plan in plans
    }
    plans = [plan for plan in plans if changed[plan["id"]]]
    counts["unchanged"] = len(entries) - sum(len(services) for services in changed.values())
    with db.session.no_autoflush:
        organizations = _by_id(Organization, [plan["id"] for plan in plans])
        locations = _by_id(Location, [loc["id"] for plan in plans for loc in plan["locations"]])
        services = _by_id(Service, [s["id"] for plan in plans for s in changed[plan["id"]]])
        for plan in plans:
            organization = _save_organization(peer, plan, organizations, locations)
            for service_plan in changed[plan["id"]]:
                service = services.get(service_plan["id"])
                created = service is None
                digest = digests[service_plan["id"]]
                _save_service(peer, organization, service_plan, service, locations, digest)
                removed = service_plan["values"]["status"] != "active"
                counts["removed" if removed else ("created" if created else "updated")] += 1
    db.session.flush()
    return counts


def _save_organization(peer, plan, organizations, locations):
    organization = organizations.get(plan["id"])
    if organization is None:
        organization = Organization(id=plan["id"], peer_id=peer.id)
        db.session.add(organization)
    else:
        db.session.execute(
            db.delete(Phone).where(Phone.organization_id == plan["id"], Phone.service_id.is_(None))
        )
    for field in ORGANIZATION_FIELDS:
        setattr(organization, field, plan[field])
    organization.status = "active"
    db.session.add_all(Phone(organization_id=plan["id"], **phone) for phone in plan["phones"])
    for values in plan["locations"]:
        location = locations.get(values["id"])
        if location is None:
            location = locations[values["id"]] = Location(
                id=values["id"], organization=organization
            )
            db.session.add(location)
        for field in LOCATION_FIELDS:
            setattr(location, field, values[field])
        location.confidential = bool(values.get("confidential"))
    return organization


def _save_service(peer, organization, plan, service, locations, digest):
    values = dict(plan["values"])
    if service is None:
        service = Service(id=plan["id"], organization=organization, peer_id=peer.id)
        db.session.add(service)
    values["last_verified_at"] = hsds.verified_at(values.pop("last_verified_at", None), None)
    for field, value in values.items():
        if field not in LINKS:
            setattr(service, field, value)
    directory.set_links(service, values)
    service.locations = [locations[location_id] for _, location_id in plan["location_links"]]
    service.peer_digest = digest
    directory.refresh_search_text(service)
    directory.refresh_coordinates(service)
