"""Open Referral HSDS 3.0 documents in and out of the directory, with the network's profile."""

import json
import re
import uuid
from datetime import UTC, date, datetime
from functools import cache

from ..errors import InvalidInput
from ..extensions import db
from . import reference
from . import service as directory
from .models import (
    CAPACITY_STATUSES,
    SERVICE_STATUSES,
    SEXES,
    Location,
    Organization,
    Phone,
    Service,
)

HSDS_VERSION = "3.0"
PROFILE = "https://referral-hub.org/hsds/profile"
TAXONOMY_NAME = "referral-hub-categories"
SEED_FILE = reference.DATA_DIR / "seed.json"
DOCUMENT_KEYS = {"hsds_version", "profile", "organizations"}
SOURCE_FIELD = "source_document"
PHONE_TYPES = ("voice", "text", "fax", "cell", "video", "pager", "textphone")
LANGUAGE_NAMES = {
    "en": "English",
    "fr": "French",
    "km": "Khmer",
    "th": "Thai",
    "vi": "Vietnamese",
    "zh": "Chinese",
}


def nested_id(parent_id, kind, key):
    """Ids of nested value objects derive from their parent, so a round trip keeps them."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:referral-hub:{parent_id}:{kind}:{key}"))


def _compact(values):
    return {key: value for key, value in values.items() if value is not None}


def _by_name(records):
    return sorted(records, key=lambda record: (record.name, record.id))


# Export


def export_document(public=True):
    """Every organisation with its services; public leaves confidential locations out."""
    organizations = _by_name(db.session.scalars(db.select(Organization)))
    return {
        "hsds_version": HSDS_VERSION,
        "profile": PROFILE,
        "organizations": [
            organization_object(
                organization,
                [service_object(s, public) for s in _by_name(organization.services)],
                public,
            )
            for organization in organizations
        ],
    }


def organization_fields(organization):
    """The one-to-one fields of an HSDS organization."""
    return _compact(
        {
            "id": organization.id,
            "name": organization.name,
            "alternate_name": organization.alternate_name,
            "description": organization.description or "",
            "email": organization.email,
            "website": organization.website,
        }
    )


def organization_object(organization, services=None, public=True):
    """An HSDS organization with its phones, locations and sources; services when given."""
    phones = sorted(organization.phones, key=lambda phone: phone.number)
    nested = {
        **organization_fields(organization),
        "phones": [_phone(phone, "organization_id", organization.id) for phone in phones],
        "locations": [location_object(loc) for loc in _shown(organization.locations, public)],
        "metadata": _source_metadata(organization, "organization"),
    }
    if services is not None:
        nested["services"] = services
    return nested


def service_fields(service):
    """The one-to-one fields of an HSDS service, with the network's profile extensions."""
    verified = service.last_verified_at
    return _compact(
        {
            "id": service.id,
            "organization_id": service.organization_id,
            "name": service.name,
            "alternate_name": service.alternate_name,
            "description": service.description,
            "url": service.url,
            "email": service.email,
            "status": service.status,
            "application_process": service.application_process,
            "fees_description": service.fees_description,
            "eligibility_description": service.eligibility_description,
            "minimum_age": service.minimum_age,
            "maximum_age": service.maximum_age,
            "eligibility_sex": service.eligibility_sex,
            "accepting_referrals": service.accepting_referrals,
            "capacity_status": service.capacity_status,
            "places_free": service.places_free,
            "last_verified": verified.date().isoformat() if verified else None,
        }
    )


def service_object(service, public=True):
    """A fully nested HSDS service, without its organization."""
    terms = reference.terms_by_code()
    return {
        **service_fields(service),
        "phones": [_phone(phone, "service_id", service.id) for phone in service.phones],
        "contacts": [_contact(service.id, contact) for contact in service.contacts],
        "schedules": [_schedule(service.id, schedule) for schedule in service.schedules],
        "languages": [
            _compact(
                {
                    "id": nested_id(service.id, "language", code),
                    "service_id": service.id,
                    "code": code,
                    "name": LANGUAGE_NAMES.get(code),
                }
            )
            for code in service.language_codes
        ],
        "service_areas": [_service_area(service.id, code) for code in service.area_codes],
        "attributes": [
            _attribute(service.id, terms[code]) for code in service.category_codes if code in terms
        ],
        "service_at_locations": [
            {
                "id": nested_id(service.id, "service_at_location", location.id),
                "service_id": service.id,
                "location_id": location.id,
                "location": location_object(location),
            }
            for location in _shown(service.locations, public)
        ],
        "metadata": _source_metadata(service, "service"),
    }


def location_object(location):
    return _compact(
        {
            "id": location.id,
            "location_type": "physical",
            "organization_id": location.organization_id,
            "name": location.name,
            "description": location.description,
            "latitude": location.latitude,
            "longitude": location.longitude,
            "addresses": _addresses(location),
            "confidential": location.confidential or None,
        }
    )


def taxonomy_object():
    taxonomy = reference.taxonomy()["taxonomy"]
    return {key: taxonomy[key] for key in ("id", "name", "description", "version")}


def taxonomy_term_object(term):
    return {
        "id": term["id"],
        "code": term["code"],
        "name": term["name"]["en"],
        "description": term["description"]["en"],
        "taxonomy": TAXONOMY_NAME,
        "taxonomy_id": reference.taxonomy()["taxonomy"]["id"],
        "language": "en",
    }


def _shown(locations, public):
    return [loc for loc in _by_name(locations) if not (public and loc.confidential)]


def _phone(phone, owner_key, owner_id):
    return _compact(
        {
            "id": nested_id(owner_id, "phone", phone.number),
            owner_key: owner_id,
            "number": phone.number,
            "type": phone.type,
            "description": phone.description,
        }
    )


def _contact(service_id, contact):
    contact_id = nested_id(service_id, "contact", f"{contact.name}|{contact.email or ''}")
    phones = (
        [
            {
                "id": nested_id(contact_id, "phone", contact.phone),
                "contact_id": contact_id,
                "number": contact.phone,
            }
        ]
        if contact.phone
        else []
    )
    return _compact(
        {
            "id": contact_id,
            "service_id": service_id,
            "name": contact.name,
            "title": contact.title,
            "email": contact.email,
            "phones": phones or None,
        }
    )


def _schedule(service_id, schedule):
    key = f"{schedule.byday}|{schedule.opens_at}|{schedule.closes_at}"
    return _compact(
        {
            "id": nested_id(service_id, "schedule", key),
            "service_id": service_id,
            "freq": schedule.freq,
            "byday": schedule.byday,
            "opens_at": schedule.opens_at,
            "closes_at": schedule.closes_at,
            "description": schedule.description,
        }
    )


def _addresses(location):
    """The street address with the names of its areas; the hub keeps the areas as codes."""
    province = location.province or (location.district or "")[:2] or None
    if location.address is None and province is None:
        return None
    areas = reference.areas_by_code()
    return [
        {
            "id": nested_id(location.id, "address", "physical"),
            "location_id": location.id,
            "address_1": location.address or "",
            "city": areas.get(location.district, {}).get("name_en", ""),
            "state_province": areas.get(province, {}).get("name_en", ""),
            "postal_code": "",
            "country": "KH",
            "address_type": "physical",
        }
    ]


def _service_area(service_id, code):
    return _compact(
        {
            "id": nested_id(service_id, "service_area", code),
            "service_id": service_id,
            "name": reference.areas_by_code().get(code, {}).get("name_en"),
            "extent": code,
            "extent_type": "text",
        }
    )


def _attribute(service_id, term):
    return {
        "id": nested_id(service_id, "attribute", term["code"]),
        "link_id": service_id,
        "link_type": "service_category",
        "link_entity": "service",
        "taxonomy_term_id": term["id"],
        "taxonomy_term": taxonomy_term_object(term),
    }


def _source_metadata(record, resource_type):
    """One HSDS metadata entry per document the record was taken from."""
    return [
        {
            "id": nested_id(record.id, "metadata", f"{SOURCE_FIELD}:{name}"),
            "resource_id": record.id,
            "resource_type": resource_type,
            "last_action_date": record.created_at.date().isoformat(),
            "last_action_type": "create",
            "field_name": SOURCE_FIELD,
            "previous_value": "",
            "replacement_value": name,
            "updated_by": "referral-hub",
        }
        for name in record.sources or []
    ]


# Rules on plain values


@cache
def _term_codes_by_id():
    return {term["id"]: term["code"] for term in reference.taxonomy()["terms"]}


def category_code(term_id, term=None):
    """The network category an attribute names, by taxonomy term id or else by code."""
    if isinstance(term_id, str) and term_id in _term_codes_by_id():
        return _term_codes_by_id()[term_id]
    code = term.get("code") if isinstance(term, dict) else None
    return code if isinstance(code, str) and code in reference.terms_by_code() else None


def area_codes_named(province_name, district_name):
    """(province, district) codes for area names in an address, None where unknown."""

    def same(name, wanted):
        return isinstance(wanted, str) and name.casefold() == wanted.strip().casefold()

    for province in reference.provinces():
        if same(province["name_en"], province_name):
            districts = [
                d["code"] for d in province["districts"] if same(d["name_en"], district_name)
            ]
            return province["code"], (districts[0] if districts else None)
    return None, None


def verified_at(day, current):
    """A verification date as a time; the current time when it falls on that day."""
    if day is None:
        return None
    if current is not None and current.date() == day:
        return current
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def duplicates(pairs):
    """The paths of (path, value) pairs whose value came earlier."""
    seen, found = set(), []
    for path, value in pairs:
        if value is not None and value in seen:
            found.append(path)
        seen.add(value)
    return found


# Parsers: return the value to keep, or raise ValueError with the message for the field.


def _kind(message, types, test=lambda value: True):
    """A parser for JSON values of these types (a boolean is no number) that pass test."""
    types = types if isinstance(types, tuple) else (types,)

    def parse(value):
        wrong_type = not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        if wrong_type or not test(value):
            raise ValueError(message)
        return value

    return parse


def _text(limit):
    return _kind(
        f"Expected a string of at most {limit} characters.", str, lambda v: len(v) <= limit
    )


def _whole(low, high):
    return _kind(f"Expected a whole number from {low} to {high}.", int, lambda v: low <= v <= high)


def _choice(options):
    return _kind(f"One of: {', '.join(options)}.", str, lambda v: v in options)


def _uuid(value):
    try:
        return str(uuid.UUID(value))
    except (AttributeError, TypeError, ValueError):
        raise ValueError("Expected a UUID.") from None


def _date(value):
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError("Expected a date, YYYY-MM-DD.") from None


NAME = _kind(
    "Expected a name of 1 to 200 characters, without spaces around it.",
    str,
    lambda v: 0 < len(v) <= 200 and v == v.strip(),
)
TEXT, AGE = _text(5000), _whole(0, 120)
BOOLEAN = _kind("Expected true or false.", bool)
LANGUAGE = _kind(
    "Expected an ISO 639 code in lower case, e.g. km.", str, re.compile("[a-z]{2,3}").fullmatch
)
ORGANIZATION_FIELDS = {
    "id": (_uuid, True),
    "name": (NAME, True),
    "description": (TEXT, True),
    "alternate_name": (_text(200), False),
    "email": (_text(254), False),
    "website": (_text(500), False),
}
SERVICE_FIELDS = {
    "id": (_uuid, True),
    "name": (NAME, True),
    "status": (_choice(SERVICE_STATUSES), True),
    "organization_id": (_uuid, False),
    "alternate_name": (_text(200), False),
    "description": (TEXT, False),
    "url": (_text(500), False),
    "email": (_text(254), False),
    "application_process": (TEXT, False),
    "fees_description": (TEXT, False),
    "eligibility_description": (TEXT, False),
    "minimum_age": (AGE, False),
    "maximum_age": (AGE, False),
}
# The profile's fields: absent means "as it is" (or the default for a new service).
PROFILE_FIELDS = {
    "eligibility_sex": (_choice(SEXES), False),
    "accepting_referrals": (BOOLEAN, True),
    "capacity_status": (_choice(CAPACITY_STATUSES), True),
    "places_free": (_whole(0, 100000), False),
    "last_verified": (_date, False),
}
LOCATION_FIELDS = {
    "id": (_uuid, True),
    "name": (NAME, True),
    "description": (TEXT, False),
    "latitude": (_kind("Expected a latitude.", (int, float), lambda v: -90 <= v <= 90), False),
    "longitude": (_kind("Expected a longitude.", (int, float), lambda v: -180 <= v <= 180), False),
}
ADDRESS_FIELDS = {
    "address_1": (TEXT, False),
    "city": (_text(200), False),
    "state_province": (_text(200), False),
}
LINK_FIELDS = {"location_id": (_uuid, True)}
PHONE_FIELDS = {
    "number": (_kind("Expected a phone number.", str, lambda v: 0 < len(v.strip()) <= 60), True),
    "type": (_choice(PHONE_TYPES), False),
    "description": (_text(500), False),
}

CONTACT_FIELDS = {
    "name": (NAME, True),
    "title": (_text(200), False),
    "email": (_text(254), False),
}
DAY_LIST = re.compile(r"(MO|TU|WE|TH|FR|SA|SU)(,(MO|TU|WE|TH|FR|SA|SU))*")
TIME = _kind("Expected a time, HH:MM.", str, re.compile(r"([01]\d|2[0-3]):[0-5]\d").fullmatch)
SCHEDULE_FIELDS = {
    "freq": (_choice(("WEEKLY", "MONTHLY")), False),
    "byday": (_kind("Expected days such as MO,TU,WE.", str, DAY_LIST.fullmatch), True),
    "opens_at": (TIME, False),
    "closes_at": (TIME, False),
    "description": (_text(500), False),
}


# Reading a document into plain values, with every error found


def _error(errors, field, message):
    errors.append({"field": field, "message": message})


def _path(parent, key):
    return f"{parent}.{key}" if parent else key


def _fields(raw, spec, path, errors, present_only=False):
    """Parsed values of the fields in spec (None when absent or wrong); required: not null."""
    values = {}
    for key, (parse, required) in spec.items():
        if present_only and key not in raw:
            continue
        values[key] = None
        if raw.get(key) is None:
            if required:
                _error(errors, _path(path, key), "Required.")
            continue
        try:
            values[key] = parse(raw[key])
        except ValueError as exc:
            _error(errors, _path(path, key), str(exc))
    return values


def _objects(raw, key, path, errors, required=False):
    """(path, object) for each item of a list field; a wrong shape is an error."""
    items = raw.get(key)
    if items is None:
        if required:
            _error(errors, _path(path, key), "Required.")
        return []
    if not isinstance(items, list):
        _error(errors, _path(path, key), "Expected a list.")
        return []
    found = []
    for index, item in enumerate(items):
        item_path = f"{_path(path, key)}[{index}]"
        if isinstance(item, dict):
            found.append((item_path, item))
        else:
            _error(errors, item_path, "Expected an object.")
    return found


def read_document(document, errors):
    if not isinstance(document, dict):
        _error(errors, "", "Expected an HSDS document, a JSON object.")
        return []
    for key in sorted(set(document) - DOCUMENT_KEYS):
        _error(errors, key, "Unknown field.")
    version = document.get("hsds_version")
    if not (isinstance(version, str) and re.fullmatch(r"3\.0(\.\d+)?", version)):
        _error(errors, "hsds_version", "Only HSDS 3.0 documents are read.")
    organizations = [
        _read_organization(path, raw, errors)
        for path, raw in _objects(document, "organizations", "", errors, required=True)
    ]
    services = [s for org in organizations for s in org["services"]]
    locations = [loc for org in organizations for loc in org["locations"]]
    for records, key in ((organizations, "id"), (services, "id"), (locations, "id")):
        for path in duplicates((f"{r['path']}.{key}", r[key]) for r in records):
            _error(errors, path, "Another record of the document has this id.")
    for path in duplicates((f"{o['path']}.name", o["name"]) for o in organizations):
        _error(errors, path, "Another organisation of the document has this name.")
    return organizations


def _read_organization(path, raw, errors):
    fields = _fields(raw, ORGANIZATION_FIELDS, path, errors)
    services = [
        _read_service(item_path, item, fields["id"], errors)
        for item_path, item in _objects(raw, "services", path, errors)
    ]
    names = ((f"{s['path']}.name", s["values"]["name"]) for s in services)
    for name_path in duplicates(names):
        _error(errors, name_path, "Another service of this organisation has this name.")
    return {
        "path": path,
        **fields,
        "sources": _read_sources(raw, path, errors),
        "phones": _read_phones(raw, path, fields["id"], errors),
        "locations": [
            _read_location(item_path, item, errors)
            for item_path, item in _objects(raw, "locations", path, errors)
        ],
        "services": services,
    }


def _read_location(path, raw, errors):
    values = _fields(raw, LOCATION_FIELDS, path, errors)
    values |= _fields(raw, {"confidential": (BOOLEAN, True)}, path, errors, present_only=True)
    addresses = _objects(raw, "addresses", path, errors)
    address_path, address = addresses[0] if addresses else (path, {})
    address = _fields(address, ADDRESS_FIELDS, address_path, errors)
    province, district = area_codes_named(address["state_province"], address["city"])
    return {
        "path": path,
        **values,
        "address": address["address_1"] or None,
        "province": province,
        "district": district,
    }


def _read_service(path, raw, organization_id, errors):
    fields = _fields(raw, SERVICE_FIELDS, path, errors)
    profile = _fields(raw, PROFILE_FIELDS, path, errors, present_only=True)
    service_id = fields.pop("id")
    if fields.pop("organization_id") not in (None, organization_id):
        _error(errors, _path(path, "organization_id"), "Not the organisation it is listed in.")
    minimum, maximum = fields["minimum_age"], fields["maximum_age"]
    if minimum is not None and maximum is not None and minimum > maximum:
        _error(errors, _path(path, "minimum_age"), "The minimum age is above the maximum age.")
    values = {
        **fields,
        "description": fields["description"] or "",
        "categories": _read_categories(raw, path, errors),
        "areas": _read_areas(raw, path, errors),
        "languages": _read_languages(raw, path, errors),
        "phones": _read_phones(raw, path, service_id, errors),
        "contacts": _read_contacts(raw, path, errors),
        "schedules": _read_schedules(raw, path, errors),
        "sources": _read_sources(raw, path, errors),
        **profile,
    }
    if "last_verified" in values:
        values["last_verified_at"] = values.pop("last_verified")
    links = [
        (f"{item_path}.location_id", _fields(item, LINK_FIELDS, item_path, errors)["location_id"])
        for item_path, item in _objects(raw, "service_at_locations", path, errors)
    ]
    return {"path": path, "id": service_id, "values": values, "location_links": links}


def _read_languages(raw, path, errors):
    codes = {
        _fields(item, {"code": (LANGUAGE, True)}, item_path, errors)["code"]
        for item_path, item in _objects(raw, "languages", path, errors)
    }
    return sorted(codes - {None})


def _read_categories(raw, path, errors):
    attributes = _objects(raw, "attributes", path, errors)
    if not attributes:
        _error(errors, _path(path, "attributes"), "At least one category (taxonomy term).")
    codes = set()
    for item_path, attribute in attributes:
        code = category_code(attribute.get("taxonomy_term_id"), attribute.get("taxonomy_term"))
        if code is None:
            _error(errors, f"{item_path}.taxonomy_term_id", "Not a term of /hsds/taxonomy_terms.")
        codes.add(code)
    return sorted(codes - {None})


def _read_areas(raw, path, errors):
    codes = set()
    for item_path, area in _objects(raw, "service_areas", path, errors):
        extent = area.get("extent")
        if (area.get("extent_type") or "text") != "text":
            _error(errors, f"{item_path}.extent_type", "Only 'text' extents (area codes) are read.")
        elif not isinstance(extent, str) or extent not in reference.areas_by_code():
            _error(errors, f"{item_path}.extent", "Not a province (2 digits) or district code.")
        else:
            codes.add(extent)
    return sorted(codes)


def _read_phones(raw, path, owner_id, errors):
    phones = [
        {"path": item_path, **_fields(item, PHONE_FIELDS, item_path, errors)}
        for item_path, item in _objects(raw, "phones", path, errors)
    ]
    for number_path in duplicates((f"{p['path']}.number", p["number"]) for p in phones):
        _error(errors, number_path, "This number is listed twice.")
    return [
        {
            "id": nested_id(owner_id, "phone", phone["number"]),
            **{key: phone[key] for key in PHONE_FIELDS},
        }
        for phone in phones
    ]


def _read_contacts(raw, path, errors):
    """Contacts with the first of their phone numbers (the hub keeps one per contact)."""
    contacts = []
    for item_path, item in _objects(raw, "contacts", path, errors):
        contact = _fields(item, CONTACT_FIELDS, item_path, errors)
        phones = [
            _fields(phone, {"number": PHONE_FIELDS["number"]}, phone_path, errors)["number"]
            for phone_path, phone in _objects(item, "phones", item_path, errors)
        ]
        contacts.append({**contact, "phone": phones[0] if phones else None})
    return contacts


def _read_schedules(raw, path, errors):
    schedules = []
    for item_path, item in _objects(raw, "schedules", path, errors):
        schedule = _fields(item, SCHEDULE_FIELDS, item_path, errors)
        schedules.append({**schedule, "freq": schedule["freq"] or "WEEKLY"})
    return schedules


def _read_sources(raw, path, errors):
    """The source documents named in the metadata; other metadata is not kept."""
    names = []
    for item_path, entry in _objects(raw, "metadata", path, errors):
        if entry.get("field_name") != SOURCE_FIELD:
            continue
        name = entry.get("replacement_value")
        if not isinstance(name, str) or not name.strip():
            _error(errors, f"{item_path}.replacement_value", "Name the source document.")
        elif name not in names:
            names.append(name)
    return names


def _check_against_hub(organizations, errors):
    """Ids and names the document shares with other records already in the hub."""
    organization_ids = {o["id"] for o in organizations}
    services = [(o, s) for o in organizations for s in o["services"]]
    service_ids = {s["id"] for _, s in services}
    taken_names = dict(
        db.session.execute(
            db.select(Organization.name, Organization.id).where(
                Organization.name.in_([o["name"] for o in organizations])
            )
        ).all()
    )
    for org in organizations:
        if taken_names.get(org["name"], org["id"]) not in (org["id"], *organization_ids):
            _error(errors, f"{org['path']}.name", "Another organisation has this name.")
    rows = db.session.execute(
        db.select(Service.id, Service.organization_id, Service.name).where(
            Service.id.in_(service_ids) | Service.organization_id.in_(organization_ids)
        )
    ).all()
    owners = {row.id: row.organization_id for row in rows}
    named = {(row.organization_id, row.name): row.id for row in rows}
    for org, svc in services:
        if owners.get(svc["id"], org["id"]) != org["id"]:
            _error(errors, f"{svc['path']}.id", "This service belongs to another organisation.")
        other = named.get((org["id"], svc["values"]["name"]), svc["id"])
        if other != svc["id"] and other not in service_ids:
            _error(errors, f"{svc['path']}.name", "Another service of this organisation has it.")
    _check_locations(organizations, errors)


def _check_locations(organizations, errors):
    listed = {
        loc["id"]: (org["id"], loc["path"]) for org in organizations for loc in org["locations"]
    }
    rows = db.session.execute(
        db.select(Location.id, Location.organization_id).where(
            Location.id.in_(list(listed))
            | Location.organization_id.in_([o["id"] for o in organizations])
        )
    ).all()
    for location_id, owner in rows:
        if location_id in listed and listed[location_id][0] != owner:
            _error(errors, f"{listed[location_id][1]}.id", "A location of another organisation.")
    known = {(owner, location_id) for location_id, owner in rows}
    known |= {(owner, location_id) for location_id, (owner, _) in listed.items()}
    for org in organizations:
        for svc in org["services"]:
            for link_path, location_id in svc["location_links"]:
                if (org["id"], location_id) not in known:
                    _error(errors, link_path, "Not a location of this organisation.")


# Import


def import_document(document, principal):
    """Check the whole document, then create or update its records by id: all or nothing."""
    if principal is not None:
        principal.require_role("coordinator")
    errors = []
    organizations = read_document(document, errors)
    if not errors:
        _check_against_hub(organizations, errors)
    if errors:
        raise InvalidInput(
            f"The document has {len(errors)} invalid field(s); nothing was imported.",
            errors=errors,
        )
    try:
        for plan in organizations:
            _save_organization(plan, principal)
        db.session.flush()
    except Exception:
        db.session.rollback()
        raise
    return {
        "organizations": len(organizations),
        "services": sum(len(plan["services"]) for plan in organizations),
    }


def load_seed(keep=None):
    """Import directory/seed.json (only the organisations `keep` accepts, when given) unless one
    of them is there; None if it was."""
    document = json.loads(SEED_FILE.read_text(encoding="utf-8"))
    if keep is not None:
        document["organizations"] = [o for o in document["organizations"] if keep(o)]
    ids = [organization["id"] for organization in document["organizations"]]
    if db.session.scalar(db.select(Organization.id).where(Organization.id.in_(ids)).limit(1)):
        return None
    return import_document(document, None)


def _update(record, resource_type, changes, principal):
    """Set fields the service layer's update rules leave out, keeping their history."""
    diff = {k: (getattr(record, k), v) for k, v in changes.items() if getattr(record, k) != v}
    for field, (_, new) in diff.items():
        setattr(record, field, new)
    directory._record(record, resource_type, "update", diff, principal)


def _save_organization(plan, principal):
    fields = {k: plan[k] for k in ("name", "alternate_name", "description", "email", "website")}
    organization = db.session.get(Organization, plan["id"])
    if organization is None:
        organization = directory.create_organization(
            principal, id=plan["id"], sources=plan["sources"], **fields
        )
    else:
        directory.update_organization(principal, organization.id, fields)
        _update(organization, "organization", {"sources": plan["sources"]}, principal)
    _replace_phones(organization, plan["phones"])
    for values in plan["locations"]:
        _save_location(organization, values, principal)
    locations = {location.id: location for location in organization.locations}
    for service_plan in plan["services"]:
        _save_service(organization, service_plan, locations, principal)


def _replace_phones(organization, phones):
    current = [(p.id, p.number, p.type, p.description) for p in organization.phones]
    if sorted(current) == sorted(tuple(p.values()) for p in phones):
        return
    db.session.execute(
        db.delete(Phone).where(Phone.organization_id == organization.id, Phone.service_id.is_(None))
    )
    db.session.add_all(Phone(organization_id=organization.id, **phone) for phone in phones)
    db.session.expire(organization, ["phones"])


def _save_location(organization, values, principal):
    values = {key: value for key, value in values.items() if key != "path"}
    location = db.session.get(Location, values["id"])
    if location is None:
        location = Location(organization=organization, **values)
        db.session.add(location)
        directory._record(
            location, "location", "create", {"name": (None, location.name)}, principal
        )
    else:
        _update(location, "location", values, principal)


def _save_service(organization, plan, locations, principal):
    service = db.session.get(Service, plan["id"])
    values = dict(plan["values"])
    if "last_verified_at" in values:
        current = service.last_verified_at if service else None
        values["last_verified_at"] = verified_at(values["last_verified_at"], current)
    if service is None:
        service = directory.create_service(principal, organization.id, {"id": plan["id"], **values})
    else:
        curated = {k: v for k, v in values.items() if k in directory.CURATED_FIELDS}
        directory.update_service(principal, service.id, curated)
        others = {k: v for k, v in values.items() if k not in directory.CURATED_FIELDS}
        _update(service, "service", others, principal)
    # A public document cannot name confidential locations, so it never unlinks them.
    linked = {loc.id: loc for loc in service.locations if loc.confidential}
    linked |= {location_id: locations[location_id] for _, location_id in plan["location_links"]}
    service.locations = _by_name(linked.values())
    directory.refresh_coordinates(service)
