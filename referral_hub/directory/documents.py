"""A service as the API and the pages show it, read from rows: a page of 50 services costs
three statements (two without locations) and no ORM objects. Loading 50 ORM services with
their seven collections (one statement each) was most of a search's time."""

from collections import defaultdict

from flask import current_app
from sqlalchemy import String, Text, any_, bindparam, cast, literal, null, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY

from ..errors import NotFound
from ..extensions import db
from ..federation.models import Peer
from ..rows import read_rows
from . import reference
from .models import (
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

# What a query must select for service_documents (the search's main query selects these).
SERVICE_COLUMNS = (
    Service.id,
    Service.organization_id,
    Organization.name.label("organization_name"),
    Organization.name_km.label("organization_name_km"),
    Service.name,
    Service.alternate_name,
    Service.description,
    Service.name_km,
    Service.description_km,
    Service.url,
    Service.email,
    Service.status,
    Service.application_process,
    Service.fees_description,
    Service.eligibility_description,
    Service.minimum_age,
    Service.maximum_age,
    Service.eligibility_sex,
    Service.accepting_referrals,
    Service.capacity_status,
    Service.places_free,
    Service.capacity_updated_at,
    Service.latitude,
    Service.longitude,
    Service.sources,
    Service.last_verified_at,
    Service.created_at,
    Service.updated_at,
    Service.peer_id,
    # A subquery rather than an outer join: one join fewer for PostgreSQL to plan at each
    # search (a quarter of the planning of a search by category and area).
    select(Peer.name).where(Peer.id == Service.peer_id).scalar_subquery().label("peer_name"),
)

# The linked rows that are text only, as (kind, service id, a, b, c, d, e) of one UNION; each
# kind puts its sort columns first, so one ORDER BY gives every list its order.
LINK_COLUMNS = {
    "categories": (ServiceCategory, ServiceCategory.code),
    "areas": (ServiceArea, ServiceArea.area_code),
    "languages": (ServiceLanguage, ServiceLanguage.code),
    "phones": (Phone, Phone.number, Phone.type, Phone.description),
    "contacts": (Contact, Contact.name, Contact.title, Contact.email, Contact.phone),
    "schedules": (
        Schedule,
        Schedule.byday,
        Schedule.opens_at,
        Schedule.freq,
        Schedule.closes_at,
        Schedule.description,
    ),
    # Only the ids: joining the locations here made PostgreSQL hash all of them.
    "locations": (ServiceAtLocation, ServiceAtLocation.location_id),
}
WIDTH = 5
LINK_SHAPES = {
    "phones": lambda r: {"number": r[0], "type": r[1], "description": r[2]},
    "contacts": lambda r: {"name": r[0], "title": r[1], "email": r[2], "phone": r[3]},
    "schedules": lambda r: {
        "freq": r[2],
        "byday": r[0],
        "opens_at": r[1],
        "closes_at": r[3],
        "description": r[4],
    },
}
LOCATION_FIELDS = (
    "id",
    "name",
    "description",
    "address",
    "province",
    "district",
    "latitude",
    "longitude",
    "confidential",
)


# The columns service_documents needs, for a query to add its conditions to (built once).
SERVICES = select(*SERVICE_COLUMNS).join(Organization, Organization.id == Service.organization_id)
LOCAL_HUB = "local"  # the id of this hub's own services' hub


IDS = bindparam("ids", expanding=True)
# On PostgreSQL the ids are sent as one array: one prepared statement whatever their number,
# where a list of 50 constants was a statement of its own that PostgreSQL answered by scanning
# every linked table (a search's page of 50 spent more time there than in the search).
ID_ARRAY = bindparam("ids", type_=ARRAY(String))


def _among_ids(column, dialect):
    return column == any_(ID_ARRAY) if dialect == "postgresql" else column.in_(IDS)


def _links_statement(dialect):
    parts = []
    for kind, (model, *columns) in LINK_COLUMNS.items():
        values = [*columns] + [null()] * (WIDTH - len(columns))
        # Labelled one by one: select() would fold repeated NULLs into one column.
        padded = [cast(value, Text).label(f"value{i}") for i, value in enumerate(values)]
        parts.append(
            select(literal(kind).label("kind"), model.service_id, *padded).where(
                _among_ids(model.service_id, dialect)
            )
        )
    union = union_all(*parts).subquery()
    return select(union).order_by(*union.columns).execution_options(prepared=True)


def _locations_statement(dialect):
    return (
        select(*[getattr(Location, name) for name in LOCATION_FIELDS])
        .where(_among_ids(Location.id, dialect))
        .execution_options(prepared=True)
    )


# Built once: building them was a third of the Python time of a page.
DIALECTS = ("postgresql", "sqlite")
LINKS = {dialect: _links_statement(dialect) for dialect in DIALECTS}
LOCATIONS = {dialect: _locations_statement(dialect) for dialect in DIALECTS}
SERVICE = SERVICES.where(Service.id == bindparam("service_id")).execution_options(prepared=True)


def _by_ids(statements, ids):
    """The rows, fetched at once: iterating a result fetches them one call at a time."""
    return read_rows(statements[db.engine.dialect.name], {"ids": ids}).all()


def _links(service_ids):
    links = defaultdict(lambda: defaultdict(list))
    for kind, service_id, *values in _by_ids(LINKS, service_ids):
        shape = LINK_SHAPES.get(kind)
        links[service_id][kind].append(shape(values) if shape else values[0])
    return links


def _locations(location_ids, show_confidential):
    """The places by id; a safe house's address only where show_confidential."""
    if not location_ids:
        return {}
    locations = {}
    for values in _by_ids(LOCATIONS, sorted(location_ids)):
        location = dict(zip(LOCATION_FIELDS, values, strict=True))
        if location["confidential"] and not show_confidential:
            location.update(address=None, latitude=None, longitude=None)
        locations[location["id"]] = location
    return locations


def _areas(codes):
    known = reference.areas_by_code()
    return [
        {"code": code, "name_en": known[code]["name_en"], "name_km": known[code]["name_km"]}
        for code in codes
        if code in known
    ]


def _document(row, links, locations, local_hub):
    return {
        "id": row.id,
        "hub": {"id": row.peer_id, "name": row.peer_name} if row.peer_id else local_hub,
        "organization": {
            "id": row.organization_id,
            "name": row.organization_name,
            "name_km": row.organization_name_km,
        },
        "name": row.name,
        "alternate_name": row.alternate_name,
        "description": row.description,
        "name_km": row.name_km,
        "description_km": row.description_km,
        "url": row.url,
        "email": row.email,
        "status": row.status,
        "application_process": row.application_process,
        "fees_description": row.fees_description,
        "categories": links["categories"],
        "areas": _areas(links["areas"]),
        "languages": links["languages"],
        "eligibility": Service.eligibility.fget(row),
        "capacity": {
            "status": row.capacity_status,
            "places_free": row.places_free,
            "accepting_referrals": row.accepting_referrals,
            "updated_at": row.capacity_updated_at,
        },
        "phones": links["phones"],
        "contacts": links["contacts"],
        "schedules": links["schedules"],
        "locations": sorted(
            (locations[location_id] for location_id in links["locations"]),
            key=lambda location: (location["name"], location["id"]),
        ),
        "sources": row.sources,
        "last_verified_at": row.last_verified_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def service_documents(rows, show_confidential):
    """The documents of services read as rows of SERVICES, in the rows' order.
    Safe-house addresses only where show_confidential (see service.sees_confidential_addresses).
    Times stay datetimes: the JSON provider writes them as ISO 8601, pages format them."""
    if not rows:
        return []
    links = _links([row.id for row in rows])
    location_ids = {location_id for link in links.values() for location_id in link["locations"]}
    locations = _locations(location_ids, show_confidential)
    local = {"id": LOCAL_HUB, "name": current_app.config["HUB_NAME"]}
    return [_document(row, links[row.id], locations, local) for row in rows]


def service_document(service_id, show_confidential):
    row = read_rows(SERVICE, {"service_id": service_id}).first()
    if row is None:
        raise NotFound("No such service.")
    return service_documents([row], show_confidential)[0]
