"""HSDS 3.0 exchange: seed import, export, round trip, refused imports, the /hsds read API."""

import copy
import functools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from referral_hub.directory import hsds, reference
from referral_hub.directory import service as directory_service
from referral_hub.directory.hsds_cli import directory_cli
from referral_hub.directory.models import (
    DirectoryChange,
    Location,
    Organization,
    Phone,
    Service,
    ServiceCategory,
)
from referral_hub.errors import InvalidInput
from referral_hub.extensions import db

from . import hsds_standard
from .factories import bearer, coordinator_token, make_org, make_service

SEED_FILE = Path(__file__).resolve().parents[1] / "directory/seed.json"
SEED = json.loads(SEED_FILE.read_text(encoding="utf-8"))
SEED_SERVICES = sum(len(org["services"]) for org in SEED["organizations"])
PAGE_KEYS = {
    "total_items",
    "total_pages",
    "page_number",
    "size",
    "first_page",
    "last_page",
    "empty",
    "contents",
}
SECRET_NAME, SECRET_ADDRESS = "Safe House Orchid", "House 77, Street 2004, Sangkat Secret"
DIRECTORY_TABLES = (
    "directory_changes",
    "verification_reminders",
    "service_at_locations",
    "phones",
    "contacts",
    "schedules",
    "service_categories",
    "service_areas",
    "service_languages",
    "services",
    "locations",
    "organizations",
)


def assert_valid(instance, name, *pointer):
    """Validate against an HSDS 3.0 schema file, or a part of it named by keys."""
    schema = functools.reduce(lambda part, key: part[key], pointer, hsds_standard.schema(name))
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"


def assert_page(page):
    assert set(page) == PAGE_KEYS
    assert_valid(page, "openapi.json", "components", "schemas", "Page")


def import_seed():
    counts = hsds.import_document(copy.deepcopy(SEED), None)
    db.session.commit()
    return counts


def count(model):
    return db.session.scalar(db.select(db.func.count()).select_from(model))


def counts():
    return [count(m) for m in (Organization, Service, Location, ServiceCategory, DirectoryChange)]


def empty_directory():
    db.session.commit()
    for name in DIRECTORY_TABLES:
        db.session.execute(db.metadata.tables[name].delete())
    db.session.commit()
    db.session.expunge_all()


def rich_service():
    """A service using every exported field, at a public and at a confidential location."""
    organization = make_org("Rich NGO", province="12")
    directory_service.update_organization(
        None,
        organization.id,
        {"alternate_name": "RN", "email": "info@rich.example.org", "website": "https://rich.org"},
    )
    db.session.add(Phone(organization_id=organization.id, number="+855 23 000 000", type="voice"))
    public = Location(
        organization_id=organization.id,
        name="Rich Drop-in Centre",
        address="Street 51",
        province="12",
        district="1201",
        latitude=11.55,
        longitude=104.92,
    )
    secret = Location(
        organization_id=organization.id,
        name=SECRET_NAME,
        address=SECRET_ADDRESS,
        province="12",
        latitude=11.5891,
        longitude=104.8713,
        confidential=True,
    )
    db.session.add_all([public, secret])
    service = make_service(
        organization,
        name="Rich shelter",
        categories=["emergency_shelter", "hotline"],
        areas=["12", "1201"],
        languages=["km", "en"],
        phones=[{"number": "+855 99 111 222", "type": "cell", "description": "Duty phone"}],
        contacts=[
            {
                "name": "Duty social worker",
                "title": "Intake",
                "email": "duty@rich.example.org",
                "phone": "+855 99 111 333",
            }
        ],
        schedules=[
            {
                "freq": "WEEKLY",
                "byday": "MO,TU,WE,TH,FR",
                "opens_at": "08:00",
                "closes_at": "17:00",
                "description": "Office hours",
            },
            {
                "freq": "WEEKLY",
                "byday": "SA",
                "opens_at": "08:00",
                "closes_at": "12:00",
                "description": None,
            },
        ],
        minimum_age=6,
        maximum_age=17,
        eligibility_sex="female",
        url="https://rich.org/shelter",
        email="shelter@rich.example.org",
        application_process="Call the duty phone.",
        fees_description="Free",
        eligibility_description="Girls at risk",
    )
    service.locations = [public, secret]
    service.capacity_status, service.places_free = "waitlist", 3
    service.accepting_referrals = False
    service.last_verified_at = datetime(2026, 1, 2, 9, 30, tzinfo=UTC)
    service.sources = ["rich_annual_report.txt"]
    db.session.commit()
    return service


def find(document, name):
    services = [s for org in document["organizations"] for s in org.get("services", [])]
    return next(s for s in services if s["name"] == name)


def no_none(value):
    if isinstance(value, dict):
        return all(v is not None and no_none(v) for v in value.values())
    if isinstance(value, list):
        return all(no_none(v) for v in value)
    return True


# Import and export


def test_the_seed_imports_with_counts_that_match_it():
    assert import_seed() == {"organizations": len(SEED["organizations"]), "services": SEED_SERVICES}
    assert count(Organization) == len(SEED["organizations"])
    assert count(Service) == SEED_SERVICES
    raw = next(s for o in SEED["organizations"] for s in o["services"] if s.get("eligibility_sex"))
    service = db.session.get(Service, raw["id"])
    assert service.eligibility_sex == raw["eligibility_sex"]
    assert service.category_codes == sorted(a["taxonomy_term"]["code"] for a in raw["attributes"])
    assert service.area_codes == sorted(a["extent"] for a in raw.get("service_areas", []))
    assert service.sources == [m["replacement_value"] for m in raw["metadata"]]
    linked = next(
        s for o in SEED["organizations"] for s in o["services"] if s.get("service_at_locations")
    )
    locations = [link["location_id"] for link in linked["service_at_locations"]]
    assert [loc.id for loc in db.session.get(Service, linked["id"]).locations] == locations
    created = db.session.scalars(db.select(DirectoryChange).filter_by(action="create")).all()
    assert {c.updated_by for c in created} == {"system"}
    assert {c.resource_type for c in created} == {"organization", "service", "location"}


def test_load_seed_imports_the_seed_once():
    assert hsds.load_seed() == {
        "organizations": len(SEED["organizations"]),
        "services": SEED_SERVICES,
    }
    db.session.commit()
    assert hsds.load_seed() is None
    assert count(Service) == SEED_SERVICES


def test_the_export_validates_against_the_hsds_schemas():
    import_seed()
    rich_service()
    document = hsds.export_document()
    assert document["hsds_version"] == "3.0" and document["profile"] == hsds.PROFILE
    names = [org["name"] for org in document["organizations"]]
    assert names == sorted(names) and len(names) == len(SEED["organizations"]) + 1
    assert no_none(document)
    for organization in document["organizations"]:
        assert_valid(organization, "organization.json")
        for service in organization["services"]:
            assert_valid(service, "service.json")
    rich = find(document, "Rich shelter")
    assert {k: rich[k] for k in ("eligibility_sex", "capacity_status", "places_free")} == {
        "eligibility_sex": "female",
        "capacity_status": "waitlist",
        "places_free": 3,
    }
    assert rich["accepting_referrals"] is False and rich["last_verified"] == "2026-01-02"
    assert [a["taxonomy_term"]["code"] for a in rich["attributes"]] == [
        "emergency_shelter",
        "hotline",
    ]
    hotline = reference.terms_by_code()["hotline"]["id"]
    assert rich["attributes"][1]["taxonomy_term_id"] == hotline
    assert [(a["extent"], a["name"]) for a in rich["service_areas"]] == [
        ("12", "Phnom Penh"),
        ("1201", "Chamkar Mon"),
    ]
    assert [lang["code"] for lang in rich["languages"]] == ["en", "km"]
    assert [m["replacement_value"] for m in rich["metadata"]] == ["rich_annual_report.txt"]
    contact = rich["contacts"][0]
    assert (contact["name"], contact["email"], contact["phones"][0]["number"]) == (
        "Duty social worker",
        "duty@rich.example.org",
        "+855 99 111 333",
    )
    assert [(s["byday"], s["opens_at"], s["closes_at"]) for s in rich["schedules"]] == [
        ("MO,TU,WE,TH,FR", "08:00", "17:00"),
        ("SA", "08:00", "12:00"),
    ]


def test_export_then_import_into_an_empty_hub_gives_the_same_document():
    import_seed()
    rich_service()
    first = hsds.export_document()
    empty_directory()
    assert count(Service) == 0
    assert hsds.import_document(copy.deepcopy(first), None)["services"] == SEED_SERVICES + 1
    db.session.commit()
    db.session.expunge_all()
    second = hsds.export_document()
    assert second == first
    rich = find(second, "Rich shelter")
    assert rich["phones"][0]["number"] == "+855 99 111 222"
    assert rich["contacts"][0]["name"] == "Duty social worker" and len(rich["schedules"]) == 2
    address = rich["service_at_locations"][0]["location"]["addresses"][0]
    assert (address["address_1"], address["city"]) == ("Street 51", "Chamkar Mon")


def test_importing_the_export_again_changes_nothing_and_keeps_confidential_links():
    import_seed()
    service_id = rich_service().id
    document = hsds.export_document()
    before = counts()
    hsds.import_document(copy.deepcopy(document), None)
    db.session.commit()
    db.session.expunge_all()
    assert counts() == before
    assert hsds.export_document() == document
    assert SECRET_NAME in [loc.name for loc in db.session.get(Service, service_id).locations]


def test_an_import_updates_records_by_id_and_keeps_the_history():
    import_seed()
    service_id = rich_service().id
    document = hsds.export_document()
    changed = find(document, "Rich shelter")
    changed["name"], changed["places_free"] = "Rich shelter for girls", 0
    changed["attributes"] = changed["attributes"][:1]
    del changed["capacity_status"]
    hsds.import_document(document, None)
    db.session.commit()
    service = db.session.get(Service, service_id)
    assert (service.name, service.places_free) == ("Rich shelter for girls", 0)
    assert (service.category_codes, service.capacity_status) == (["emergency_shelter"], "waitlist")
    history = db.session.scalars(
        db.select(DirectoryChange).filter_by(resource_id=service_id, action="update")
    ).all()
    assert {c.field_name for c in history} == {"name", "places_free", "categories"}


def _invalid_seed():
    """The seed with a valid change first, then one error of each kind."""
    document = copy.deepcopy(SEED)
    orgs = document["organizations"]
    orgs[0]["description"] = "Changed, but must not be written."
    orgs[2]["services"][0]["attributes"][0]["taxonomy_term_id"] = "not-a-term"
    orgs[2]["services"][0]["attributes"][0]["taxonomy_term"]["code"] = "not_a_category"
    orgs[2]["services"][1]["service_areas"] = [{"id": "x", "extent": "99", "extent_type": "text"}]
    orgs[3]["services"][0]["minimum_age"], orgs[3]["services"][0]["maximum_age"] = 18, 5
    del orgs[4]["name"]
    return document, {
        "organizations[2].services[0].attributes[0].taxonomy_term_id",
        "organizations[2].services[1].service_areas[0].extent",
        "organizations[3].services[0].minimum_age",
        "organizations[4].name",
    }


def test_an_invalid_import_is_refused_with_the_fields_at_fault_and_writes_nothing(app, client):
    import_seed()
    token = coordinator_token(app)
    before = counts()
    document, fields = _invalid_seed()
    response = client.post("/api/v1/directory/import", json=document, headers=bearer(token))
    assert response.status_code == 422, response.get_json()
    assert {e["field"] for e in response.get_json()["errors"]} == fields
    response = client.post(
        "/api/v1/directory/import",
        json={"hsds_version": "3.0", "organizations": {"a": 1}},
        headers=bearer(token),
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["organizations"]
    db.session.expire_all()
    assert counts() == before
    first = db.session.get(Organization, SEED["organizations"][0]["id"])
    assert first.description == SEED["organizations"][0]["description"]


def _organization(**changes):
    organization = copy.deepcopy(SEED["organizations"][0])
    organization.update(changes)
    return organization


def _document(*organizations, **extra):
    return {"hsds_version": "3.0", "organizations": list(organizations), **extra}


def _service_change(**changes):
    organization = _organization()
    organization["services"][0].update(changes)
    return _document(organization)


@pytest.mark.parametrize(
    ("document", "fields"),
    [
        ([], [""]),
        (_document(_organization(), extra=1), ["extra"]),
        ({**_document(_organization()), "hsds_version": "2.0"}, ["hsds_version"]),
        (
            _document(
                _organization(services=[], locations=[]),
                _organization(name="Other name", services=[], locations=[]),
            ),
            ["organizations[1].id"],
        ),
        (_service_change(minimum_age=True), ["organizations[0].services[0].minimum_age"]),
        (_service_change(status="open"), ["organizations[0].services[0].status"]),
        (_service_change(attributes=[]), ["organizations[0].services[0].attributes"]),
        (
            _service_change(organization_id="9c5b94b1-35ad-49bb-b118-8e8fc24abf80"),
            ["organizations[0].services[0].organization_id"],
        ),
        (
            _service_change(
                service_at_locations=[
                    {"id": "a", "location_id": "9c5b94b1-35ad-49bb-b118-8e8fc24abf80"}
                ]
            ),
            ["organizations[0].services[0].service_at_locations[0].location_id"],
        ),
        (
            _service_change(name=SEED["organizations"][0]["services"][1]["name"]),
            ["organizations[0].services[1].name"],
        ),
    ],
)
def test_import_document_reports_every_error_and_writes_nothing(document, fields):
    before = counts()
    with pytest.raises(InvalidInput) as raised:
        hsds.import_document(copy.deepcopy(document), None)
    assert [e["field"] for e in raised.value.errors] == fields
    assert counts() == before


def test_an_organisation_name_the_hub_has_under_another_id_is_refused():
    make_org(SEED["organizations"][0]["name"])
    with pytest.raises(InvalidInput) as raised:
        hsds.import_document(_document(_organization()), None)
    assert [e["field"] for e in raised.value.errors] == ["organizations[0].name"]
    assert count(Service) == 0


# The HTTP API


def test_the_import_api_commits_and_needs_a_coordinator(app, client, partner):
    response = client.post("/api/v1/directory/import", json=SEED, headers=bearer(partner["token"]))
    assert response.status_code == 403
    assert client.post("/api/v1/directory/import", json=SEED).status_code == 401
    token = coordinator_token(app)
    response = client.post("/api/v1/directory/import", json=SEED, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "organizations": len(SEED["organizations"]),
        "services": SEED_SERVICES,
    }
    db.session.rollback()
    assert count(Service) == SEED_SERVICES


def test_the_export_api_serves_the_document(client, partner):
    import_seed()
    assert client.get("/api/v1/directory/export").status_code == 401
    response = client.get("/api/v1/directory/export", headers=bearer(partner["token"]))
    assert response.status_code == 200
    assert response.get_json() == hsds.export_document()
    assert partner["client_id"] not in response.get_data(as_text=True)


def test_confidential_locations_never_leave_the_hub(client):
    service = rich_service()
    organization_id = service.organization_id
    answers = [
        hsds.export_document(),
        client.get(f"/hsds/services/{service.id}").get_json(),
        client.get("/hsds/services?full=true").get_json(),
        client.get(f"/hsds/organizations/{organization_id}?full_service=true").get_json(),
        client.get("/hsds/organizations?full=true&full_service=true").get_json(),
    ]
    for answer in answers:
        text = json.dumps(answer, ensure_ascii=False)
        assert "Rich Drop-in Centre" in text
        for secret in (SECRET_NAME, SECRET_ADDRESS, "11.5891", "104.8713"):
            assert secret not in text


# The /hsds read API


def test_hsds_root_names_version_profile_and_contract(client):
    body = client.get("/hsds/").get_json()
    assert body["version"] == "3.0.0" and body["profile"] == hsds.PROFILE
    assert body["openapi_url"].endswith("/openapi.yaml")


def test_hsds_services_are_pages_of_hsds_services(client):
    import_seed()
    first = client.get("/hsds/services?per_page=20").get_json()
    assert_page(first)
    assert (first["total_items"], first["total_pages"], first["size"]) == (SEED_SERVICES, 3, 20)
    assert first["first_page"] and not first["last_page"] and not first["empty"]
    for entry in first["contents"]:
        assert_valid(entry, "service_list.json")
        assert entry["organization"]["id"] == entry["organization_id"]
    names = [entry["name"] for entry in first["contents"]]
    assert names == sorted(names)
    last = client.get("/hsds/services?per_page=20&page=3").get_json()
    assert (last["size"], last["last_page"], last["first_page"]) == (
        SEED_SERVICES - 40,
        True,
        False,
    )
    beyond = client.get("/hsds/services?per_page=20&page=4").get_json()
    assert beyond["empty"] and beyond["contents"] == []
    minimal = client.get("/hsds/services?minimal=true").get_json()["contents"]
    assert all(not isinstance(v, list | dict) for entry in minimal for v in entry.values())
    full = client.get("/hsds/services?full=true&per_page=5").get_json()
    for entry in full["contents"]:
        assert_valid(entry, "service.json")
        assert entry["attributes"] and entry["organization"]["name"]


def test_hsds_services_filter_by_term_organisation_text_and_time(client):
    import_seed()
    hotline = reference.terms_by_code()["hotline"]["id"]
    by_term = client.get(f"/hsds/services?taxonomy_term_id={hotline}").get_json()
    assert by_term["total_items"] == 2
    assert client.get("/hsds/services?taxonomy_term_id=hotline").get_json()["total_items"] == 2
    assert client.get("/hsds/services?taxonomy_term_id=nothing").get_json()["total_items"] == 0
    organization = SEED["organizations"][0]
    by_org = client.get(f"/hsds/services?organization_id={organization['id']}").get_json()
    assert by_org["total_items"] == len(organization["services"])
    found = client.get("/hsds/services?search=ChildSafe hotline").get_json()["contents"]
    assert [entry["name"] for entry in found] == [
        "ChildSafe Hotline",
        "ChildSafe Hotline (Battambang)",
    ]
    later = client.get("/hsds/services?modified_after=2999-01-01T00:00:00Z").get_json()
    assert later["total_items"] == 0
    since = client.get("/hsds/services?modified_after=2000-01-01T00:00:00").get_json()
    assert since["total_items"] == SEED_SERVICES
    for query in ("per_page=101", "page=0", "colour=red", "full=maybe"):
        response = client.get(f"/hsds/services?{query}")
        assert response.status_code == 422 and response.mimetype == "application/problem+json"


def test_hsds_lists_only_active_services_of_active_organisations(client):
    import_seed()
    first, second = SEED["organizations"][:2]
    directory_service.update_organization(None, first["id"], {"status": "suspended"})
    closed = second["services"][0]["id"]
    directory_service.update_service(None, closed, {"status": "inactive"})
    db.session.commit()
    expected = SEED_SERVICES - len(first["services"]) - 1
    assert client.get("/hsds/services").get_json()["total_items"] == expected
    assert client.get(f"/hsds/services/{closed}").status_code == 404
    assert client.get(f"/hsds/organizations/{first['id']}").status_code == 404
    nested = client.get(f"/hsds/organizations/{second['id']}").get_json()["services"]
    assert closed not in [s["id"] for s in nested]


def test_hsds_service_is_fully_nested_with_its_organisation(client):
    import_seed()
    raw = SEED["organizations"][0]["services"][0]
    response = client.get(f"/hsds/services/{raw['id']}")
    assert response.status_code == 200
    body = response.get_json()
    assert_valid(body, "service.json")
    assert body["organization"]["id"] == SEED["organizations"][0]["id"]
    assert [a["taxonomy_term"]["code"] for a in body["attributes"]] == sorted(
        a["taxonomy_term"]["code"] for a in raw["attributes"]
    )
    missing = client.get("/hsds/services/9c5b94b1-35ad-49bb-b118-8e8fc24abf80")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


def test_hsds_organizations_validate_as_lists_and_fully_nested(client):
    import_seed()
    page = client.get("/hsds/organizations?per_page=100").get_json()
    assert_page(page)
    assert page["total_items"] == len(SEED["organizations"])
    for entry in page["contents"]:
        assert_valid(entry, "organization_list.json")
        assert "services" not in entry
    for entry in client.get("/hsds/organizations?full=true").get_json()["contents"]:
        assert_valid(entry, "organization.json")
    raw = SEED["organizations"][0]
    body = client.get(f"/hsds/organizations/{raw['id']}?full_service=true").get_json()
    assert_valid(body, "organization.json")
    assert sorted(s["id"] for s in body["services"]) == sorted(s["id"] for s in raw["services"])
    assert all(s["attributes"] for s in body["services"])
    assert client.get("/hsds/organizations/unknown").status_code == 404


def test_hsds_taxonomies_and_terms_validate(client):
    term_schema = ("service.json", "properties", "attributes", "items", "properties")
    taxonomies = client.get("/hsds/taxonomies").get_json()
    assert_page(taxonomies)
    assert taxonomies["total_items"] == 1
    assert_valid(
        taxonomies["contents"][0], *term_schema, "taxonomy_term", "properties", "taxonomy_detail"
    )
    terms = client.get("/hsds/taxonomy_terms?per_page=100").get_json()
    assert_page(terms)
    assert terms["total_items"] == len(reference.taxonomy()["terms"])
    for term in terms["contents"]:
        assert_valid(term, *term_schema, "taxonomy_term")
    assert client.get("/hsds/taxonomy_terms?search=hotline").get_json()["total_items"] >= 1
    other = client.get("/hsds/taxonomy_terms?taxonomy_id=someone-else").get_json()
    assert other["total_items"] == 0


def test_anonymous_hsds_reading_is_a_setting(app, client, partner, monkeypatch):
    assert client.get("/hsds/services").status_code == 200
    monkeypatch.setitem(app.config, "HSDS_PUBLIC", False)
    refused = client.get("/hsds/services")
    assert refused.status_code == 401 and "Bearer" in refused.headers["WWW-Authenticate"]
    assert client.get("/hsds/").status_code == 401
    assert client.get("/hsds/services", headers=bearer(partner["token"])).status_code == 200


# The command line


def test_the_cli_imports_a_file_or_prints_the_problem(app, tmp_path):
    runner = app.test_cli_runner()
    result = runner.invoke(directory_cli, ["import", str(SEED_FILE)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "organizations": len(SEED["organizations"]),
        "services": SEED_SERVICES,
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_invalid_seed()[0]), encoding="utf-8")
    result = runner.invoke(directory_cli, ["import", str(bad)])
    assert result.exit_code == 1
    assert json.loads(result.stderr)["status"] == 422
