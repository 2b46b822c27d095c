"""A peer's directory mirrored here: its organisations and services as it published them
(HSDS 3.0), marked as the peer's, read-only here, all of one sync or nothing."""

import hashlib
import json
from types import SimpleNamespace

from sqlalchemy import bindparam, insert, update

from ..db_types import new_id
from ..directory import hsds
from ..directory import service as directory
from ..directory.models import (
    Contact,
    Location,
    Organization,
    Phone,
    Schedule,
    Service,
    ServiceArea,
    ServiceAtLocation,
    ServiceCategory,
    ServiceLanguage,
)
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


# HSDS leaves out what is empty: for a mirror, a field the peer left out is empty (or the
# default), not "as it was here".
PROFILE_DEFAULTS = {
    "eligibility_sex": None,
    "places_free": None,
    "accepting_referrals": True,
    "capacity_status": "available",
}
# What hangs off a service, replaced whole when the service changes.
LINK_MODELS = (
    ServiceCategory,
    ServiceArea,
    ServiceLanguage,
    Phone,
    Contact,
    Schedule,
    ServiceAtLocation,
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


def apply(peer, entries):
    """Create or update the peer's records from its entries; returns what changed. Written
    with a few statements per table, not through the ORM: object bookkeeping cost most of a
    sync of thousands of services."""
    plans = read(peer, entries)
    digests = {entry["id"]: _digest(entry) for entry in entries}
    kept = _existing(Service, list(digests), Service.peer_digest)
    changed = {
        plan["id"]: [s for s in plan["services"] if kept.get(s["id"], "") != digests[s["id"]]]
        for plan in plans
    }
    plans = [plan for plan in plans if changed[plan["id"]]]
    services = [(plan, s) for plan in plans for s in changed[plan["id"]]]
    counts = {"created": 0, "updated": 0, "removed": 0, "unchanged": 0}
    counts["unchanged"] = len(entries) - len(services)
    for _, service in services:
        if service["values"]["status"] != "active":
            counts["removed"] += 1
        else:
            counts["updated" if service["id"] in kept else "created"] += 1
    _save_organizations(peer, plans)
    _save_services(peer, services, digests, kept)
    return counts


def _existing(model, ids, column):
    """{id: column} of the records of these ids that exist here."""
    rows = db.session.execute(db.select(model.id, column).where(model.id.in_(ids)))
    return dict(rows.all())


def _upsert(model, rows, existing):
    """Insert the new rows, update the others (by id), each kind in one statement."""
    new = [row for row in rows if row["id"] not in existing]
    old = [{**row, "_id": row["id"]} for row in rows if row["id"] in existing]
    if new:
        db.session.execute(insert(model), new)
    if old:
        table = model.__table__
        columns = {key: bindparam(key) for key in old[0] if key not in ("id", "_id")}
        db.session.execute(update(table).where(table.c.id == bindparam("_id")).values(columns), old)


def _replace(model, owner_column, owner_ids, rows):
    db.session.execute(db.delete(model).where(owner_column.in_(owner_ids)))
    if rows:
        db.session.execute(insert(model), rows)


def _save_organizations(peer, plans):
    ids = [plan["id"] for plan in plans]
    existing = _existing(Organization, ids, Organization.id)
    _upsert(
        Organization,
        [
            {"id": plan["id"], "peer_id": peer.id, "status": "active"}
            | {field: plan[field] for field in ORGANIZATION_FIELDS}
            for plan in plans
        ],
        existing,
    )
    db.session.execute(
        db.delete(Phone).where(Phone.organization_id.in_(ids), Phone.service_id.is_(None))
    )
    phones = [
        {"organization_id": plan["id"], **phone} for plan in plans for phone in plan["phones"]
    ]
    if phones:
        db.session.execute(insert(Phone), phones)
    places = [(plan, place) for plan in plans for place in plan["locations"]]
    _upsert(
        Location,
        [
            {"id": place["id"], "organization_id": plan["id"]}
            | {field: place[field] for field in LOCATION_FIELDS}
            | {"confidential": bool(place.get("confidential"))}
            for plan, place in places
        ],
        _existing(Location, [place["id"] for _, place in places], Location.id),
    )


def _link_rows(organization_id, service):
    """What hangs off one service, as rows of each table."""
    values, service_id = service["values"], service["id"]
    return {
        ServiceCategory: [{"service_id": service_id, "code": c} for c in values["categories"]],
        ServiceArea: [{"service_id": service_id, "area_code": c} for c in values["areas"]],
        ServiceLanguage: [{"service_id": service_id, "code": c} for c in values["languages"]],
        Phone: [
            {"service_id": service_id, "organization_id": organization_id, **phone}
            for phone in values["phones"]
        ],
        Contact: [
            {"id": new_id(), "service_id": service_id, **contact} for contact in values["contacts"]
        ],
        Schedule: [
            {"id": new_id(), "service_id": service_id, **schedule}
            for schedule in values["schedules"]
        ],
        ServiceAtLocation: [
            {"service_id": service_id, "location_id": location_id}
            for _, location_id in service["location_links"]
        ],
    }


def _derived(plan, service, own):
    """The search text and the map point, by the rules the directory uses for its own."""
    places = {place["id"]: place for place in plan["locations"]}
    shown = SimpleNamespace(
        name_km=None,  # HSDS carries no Khmer: a peer's entries are searched in English
        description_km=None,
        **own,
        organization=SimpleNamespace(name=plan["name"]),
        category_codes=service["values"]["categories"],
        area_codes=service["values"]["areas"],
        locations=[
            SimpleNamespace(**{"confidential": False, **places[location_id]})
            for _, location_id in service["location_links"]
        ],
    )
    directory.refresh_search_text(shown)
    directory.refresh_coordinates(shown)
    return {
        "search_text": shown.search_text,
        "latitude": shown.latitude,
        "longitude": shown.longitude,
    }


def _save_services(peer, services, digests, kept):
    """The services and, replaced whole, what hangs off them."""
    rows, links = [], {model: [] for model in LINK_MODELS}
    for plan, service in services:
        values = dict(service["values"])
        day = values.pop("last_verified_at", None)
        own = PROFILE_DEFAULTS | {key: value for key, value in values.items() if key not in LINKS}
        rows.append(
            {
                "id": service["id"],
                "organization_id": plan["id"],
                "peer_id": peer.id,
                "peer_digest": digests[service["id"]],
                "last_verified_at": hsds.verified_at(day, None),
                **_derived(plan, service, own),
                **own,
            }
        )
        for model, found in _link_rows(plan["id"], service).items():
            links[model] += found
    _upsert(Service, rows, kept)
    ids = [row["id"] for row in rows]
    for model in LINK_MODELS:
        _replace(model, model.service_id, ids, links[model])
