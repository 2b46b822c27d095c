"""Consistency checks for the directory data files in ``directory/``.

taxonomy.json (service categories), areas.json (provinces and districts) and seed.json
(HSDS 3.0 organisations and services taken from the partners' documents).
"""

import functools
import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from . import hsds_standard

DIRECTORY = Path(__file__).resolve().parents[1] / "directory"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SEEDS = SHARED / "seeds"

REQUIRED_CODES = {
    "disability_rehabilitation",
    "detox",
    "harm_reduction",
    "foster_kinship_care",
    "emergency_shelter",
    "family_reintegration",
    "family_strengthening",
    "legal_aid",
    "medical",
    "mental_health_counselling",
    "education",
    "vocational_training",
    "safe_migration",
    "hotline",
    "hiv_aids",
}


def load(name):
    return json.loads((DIRECTORY / name).read_text(encoding="utf-8"))


TAXONOMY = load("taxonomy.json")
AREAS = load("areas.json")
SEED = load("seed.json")
TERMS = TAXONOMY["terms"]
ORGS = SEED["organizations"]
SERVICES = [service for org in ORGS for service in org.get("services", [])]
AREA_CODES = {p["code"] for p in AREAS["provinces"]} | {
    d["code"] for p in AREAS["provinces"] for d in p["districts"]
}


@functools.cache
def validator(schema_name):
    return Draft202012Validator(hsds_standard.schema(schema_name), format_checker=FormatChecker())


def khmer(text):
    return any("\u1780" <= ch <= "\u17ff" for ch in text)


def test_taxonomy_has_required_codes_unique_ids_and_both_names():
    codes = [t["code"] for t in TERMS]
    assert set(codes) >= REQUIRED_CODES
    assert len(codes) == len(set(codes))
    ids = [TAXONOMY["taxonomy"]["id"], *(t["id"] for t in TERMS)]
    assert len(ids) == len(set(ids))
    for term in TERMS:
        url = f"https://referral-hub.org/taxonomy/{term['code']}"
        assert term["id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, url))
        assert term["code"].isidentifier() and term["code"] == term["code"].lower()
        assert term["name"]["en"] and khmer(term["name"]["km"]), term["code"]
        assert term["description"]["en"] and khmer(term["description"]["km"]), term["code"]


def test_areas_have_25_provinces_and_well_formed_districts():
    codes = [p["code"] for p in AREAS["provinces"]]
    assert codes == [f"{n:02d}" for n in range(1, 26)]
    assert [p["code"] for p in AREAS["provinces"] if p["type"] == "capital"] == ["12"]
    districts = [(p["code"], d) for p in AREAS["provinces"] for d in p["districts"]]
    assert len({d["code"] for _, d in districts}) == len(districts)
    for province_code, district in districts:
        assert len(district["code"]) == 4 and district["code"].isdigit()
        assert district["code"].startswith(province_code)
        assert district["type"] in {"district", "municipality", "khan"}
        assert district["name_en"] and khmer(district["name_km"])
    for province in AREAS["provinces"]:
        assert province["name_en"] and khmer(province["name_km"])


@pytest.mark.parametrize("org", ORGS, ids=lambda org: org["name"])
def test_organization_validates_against_hsds(org):
    errors = [e.message for e in validator("organization.json").iter_errors(org)]
    assert errors == []


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service["name"])
def test_service_validates_against_hsds(service):
    assert service["status"] == "active"
    errors = [e.message for e in validator("service.json").iter_errors(service)]
    assert errors == []


def test_services_point_to_known_categories_areas_and_parents():
    term_ids = {t["code"]: t["id"] for t in TERMS}
    for org in ORGS:
        location_ids = {loc["id"] for loc in org.get("locations", [])}
        for service in org.get("services", []):
            assert service["organization_id"] == org["id"]
            for attribute in service.get("attributes", []):
                term = attribute["taxonomy_term"]
                assert attribute["link_id"] == service["id"]
                assert term_ids.get(term["code"]) == term["id"] == attribute["taxonomy_term_id"]
                assert term["taxonomy_id"] == TAXONOMY["taxonomy"]["id"]
            for area in service.get("service_areas", []):
                assert area["service_id"] == service["id"]
                assert area["extent"] in AREA_CODES, area
            for link in service.get("service_at_locations", []):
                assert link["location_id"] in location_ids


def test_shelters_publish_no_location():
    for service in SERVICES:
        codes = {a["taxonomy_term"]["code"] for a in service.get("attributes", [])}
        if "emergency_shelter" in codes:
            assert not service.get("service_at_locations"), service["name"]


def test_every_record_names_its_source_document():
    """The documents themselves sit beside the project (../shared/seeds) where it is developed."""
    for record in [*ORGS, *SERVICES]:
        sources = [m for m in record.get("metadata", []) if m["field_name"] == "source_document"]
        assert sources, record["name"]
        for entry in sources:
            assert entry["resource_id"] == record["id"]
            assert entry["replacement_value"].strip()
            if SEEDS.is_dir():
                assert (SEEDS / entry["replacement_value"]).is_file(), entry["replacement_value"]


def collect_ids(node, found):
    """All object ids, except taxonomy_term copies that only refer to taxonomy.json."""
    if isinstance(node, dict):
        if "id" in node:
            found.append(node["id"])
        for key, value in node.items():
            if key != "taxonomy_term":
                collect_ids(value, found)
    elif isinstance(node, list):
        for item in node:
            collect_ids(item, found)
    return found


def test_all_ids_are_unique():
    ids = collect_ids(SEED, [TAXONOMY["taxonomy"]["id"], *(t["id"] for t in TERMS)])
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert duplicates == set()
