"""Directory API: search that understands the area hierarchy, curation, capacity, history."""

from datetime import timedelta

import pytest

from referral_hub import clock
from referral_hub.directory import hsds, reference
from referral_hub.directory import service as directory_service
from referral_hub.directory.models import Location
from referral_hub.extensions import db
from referral_hub.jobs import remind_unverified_services

from .factories import (
    bearer,
    client_token,
    coordinator_token,
    make_client,
    make_org,
    make_service,
    make_user,
    user_tokens,
)
from .referral_fixtures import user_party

SIEM_REAP = "17"


def a_district_of(province):
    return next(d["code"] for d in reference.areas_by_code().values() if d["parent"] == province)


def search(client, token, **params):
    response = client.get("/api/v1/services", headers=bearer(token), query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def names(result):
    return {item["name"] for item in result["items"]}


def test_areas_and_taxonomy_have_both_languages(client, partner):
    areas = client.get("/api/v1/areas", headers=bearer(partner["token"])).get_json()["provinces"]
    assert len(areas) == 25
    siem_reap = next(p for p in areas if p["code"] == SIEM_REAP)
    assert siem_reap["name_en"] == "Siem Reap" and siem_reap["name_km"] and siem_reap["districts"]
    terms = client.get("/api/v1/taxonomy", headers=bearer(partner["token"])).get_json()["terms"]
    detox = next(t for t in terms if t["code"] == "detox")
    assert detox["name"]["en"] and detox["name"]["km"]


def test_search_understands_the_province_district_hierarchy(client, partner):
    organization = make_org()
    district = a_district_of(SIEM_REAP)
    make_service(organization, name="Province-wide", areas=[SIEM_REAP])
    make_service(organization, name="One district", areas=[district])
    make_service(organization, name="Elsewhere", areas=["12"])
    by_district = search(client, partner["token"], district=district)
    assert names(by_district) == {"Province-wide", "One district"}
    reasons = {item["name"]: item["match"]["areas"] for item in by_district["items"]}
    assert reasons == {"Province-wide": [SIEM_REAP], "One district": [district]}
    assert names(search(client, partner["token"], province=SIEM_REAP)) == {
        "Province-wide",
        "One district",
    }


def test_search_filters_combine(client, partner):
    organization = make_org()
    make_service(
        organization,
        name="Boys detox",
        categories=["detox"],
        minimum_age=12,
        maximum_age=18,
        eligibility_sex="male",
        languages=["km", "en"],
    )
    make_service(
        organization,
        name="Girls shelter",
        categories=["emergency_shelter"],
        eligibility_sex="female",
    )
    make_service(organization, name="Adult detox", categories=["detox", "medical"], minimum_age=18)
    full = make_service(organization, name="Full detox", categories=["detox"])
    directory_service.update_capacity(
        None, full.id, {"capacity_status": "full", "accepting_referrals": False}
    )
    db.session.commit()
    token = partner["token"]
    assert names(search(client, token, category="detox", age=16, sex="male")) == {
        "Boys detox",
        "Full detox",
    }
    assert names(search(client, token, category="detox", age=16, sex="male", accepting="true")) == {
        "Boys detox"
    }
    assert names(search(client, token, category="emergency_shelter,medical")) == {
        "Girls shelter",
        "Adult detox",
    }
    assert names(search(client, token, language="en")) == {"Boys detox"}
    assert names(search(client, token, capacity="full")) == {"Full detox"}
    hit = search(client, token, category="detox,medical", q="adult")["items"][0]
    assert hit["match"] == {"categories": ["detox", "medical"], "text": "adult"}


def test_text_search_in_english_and_khmer(client, partner):
    organization = make_org()
    make_service(
        organization,
        name="Water Lily House",
        description="Residential detox for young people",
        categories=["detox"],
    )
    make_service(organization, name="Legal clinic", categories=["legal_aid"])
    assert names(search(client, partner["token"], q="young detox")) == {"Water Lily House"}
    khmer_detox = reference.terms_by_code()["detox"]["name"]["km"]
    assert names(search(client, partner["token"], q=khmer_detox)) == {"Water Lily House"}
    assert names(search(client, partner["token"], q="nothing like this")) == set()


def test_a_renamed_organisation_is_found_by_its_new_name(client, partner):
    organization = make_org(name="Old Name Association")
    make_service(organization, name="Family support")
    token = coordinator_token(client.application)
    renamed = client.patch(
        f"/api/v1/organizations/{organization.id}",
        headers=bearer(token),
        json={"name": "Kaliyan Mith Renamed"},
    )
    assert renamed.status_code == 200, renamed.get_json()
    assert names(search(client, partner["token"], q="kaliyan renamed")) == {"Family support"}
    assert names(search(client, partner["token"], q="old name association")) == set()


def test_pages_are_stable_and_complete(client, partner):
    organization = make_org()
    for index in range(7):
        make_service(organization, name=f"Service {index % 3}-{index}")
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        result = search(client, partner["token"], **params)
        seen += [item["name"] for item in result["items"]]
        cursor = result["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 7


def test_near_orders_by_distance_and_never_uses_confidential_locations(client, partner):
    organization = make_org()
    places = {"Near": (13.36, 103.86), "Far": (11.56, 104.92), "Secret": (13.3601, 103.8601)}
    for name, (lat, lon) in places.items():
        service = make_service(organization, name=name)
        location = Location(
            organization_id=organization.id,
            name=f"{name} place",
            latitude=lat,
            longitude=lon,
            confidential=name == "Secret",
        )
        service.locations.append(location)
        directory_service.refresh_coordinates(service)
    make_service(organization, name="Nowhere")
    db.session.commit()
    order = []
    cursor = None
    while True:
        params = {"near": "13.35,103.85", "limit": 2, **({"cursor": cursor} if cursor else {})}
        result = search(client, partner["token"], **params)
        order += [(item["name"], item["distance_km"]) for item in result["items"]]
        cursor = result["next_cursor"]
        if not cursor:
            break
    assert [name for name, _ in order][:2] == ["Near", "Far"]
    assert order[0][1] < 5 and order[1][1] > 100
    assert {name for name, km in order if km is None} == {"Secret", "Nowhere"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"category": "teleportation"}, "category"),
        ({"province": "99"}, "province"),
        ({"district": "9999"}, "district"),
        ({"province": "12", "district": a_district_of(SIEM_REAP)}, "district"),
        ({"age": "-3"}, "age"),
        ({"sex": "other"}, "sex"),
        ({"near": "north"}, "near"),
        ({"capacity": "plenty"}, "capacity"),
        ({"cursor": "garbage"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_search_parameters_name_the_field(client, partner, params, field):
    response = client.get("/api/v1/services", headers=bearer(partner["token"]), query_string=params)
    assert response.status_code == 422
    assert field in {error["field"] for error in response.get_json()["errors"]}


def test_coordinators_create_and_curate_services(app, client):
    organization = make_org()
    token = coordinator_token(app)
    body = {
        "organization_id": organization.id,
        "name": "Green House",
        "categories": ["detox"],
        "areas": ["12"],
        "minimum_age": 12,
        "maximum_age": 24,
        "languages": ["km"],
        "phones": [{"number": "+855 12 000 000", "description": "Intake"}],
    }
    created = client.post("/api/v1/services", headers=bearer(token), json=body)
    assert created.status_code == 201, created.get_json()
    service = created.get_json()
    assert service["categories"] == ["detox"] and service["areas"][0]["name_en"] == "Phnom Penh"
    assert service["capacity"]["status"] == "available"
    assert client.post("/api/v1/services", headers=bearer(token), json=body).status_code == 409
    url = f"/api/v1/services/{service['id']}"
    retired = client.patch(url, headers=bearer(token), json={"status": "defunct"})
    assert retired.get_json()["status"] == "defunct"
    verified = client.post(f"{url}/verify", headers=bearer(token))
    assert verified.get_json()["last_verified_at"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"categories": ["nope"]}, "categories"),
        ({"areas": ["98"]}, "areas"),
        ({"minimum_age": 18, "maximum_age": 10}, "minimum_age"),
        ({"minimum_age": "old"}, "minimum_age"),
        ({"name": " "}, "name"),
        ({"secret_field": 1}, "secret_field"),
    ],
)
def test_bad_service_input_is_refused_and_changes_nothing(app, client, change, field):
    service = make_service(make_org(), name="Stable name")
    token = coordinator_token(app)
    response = client.patch(f"/api/v1/services/{service.id}", headers=bearer(token), json=change)
    assert response.status_code == 422
    assert field in {error["field"] for error in response.get_json()["errors"]}
    db.session.expire_all()
    assert directory_service.get_service(service.id).name == "Stable name"


def test_an_owner_admin_edits_descriptions_but_not_curation(app, client):
    organization = make_org()
    service = make_service(organization)
    admin = make_user(organization, roles=["org_admin"])
    token = user_tokens(app, admin, "directory:write directory:read")["access_token"]
    url = f"/api/v1/services/{service.id}"
    described = client.patch(
        url, headers=bearer(token), json={"description": "Now with evening hours"}
    )
    assert described.status_code == 200
    refused = client.patch(url, headers=bearer(token), json={"categories": ["medical"]})
    assert refused.status_code == 403
    assert refused.get_json()["errors"] == [
        {"field": "categories", "message": "Not yours to change."}
    ]
    other_admin = make_user(make_org(), roles=["org_admin"])
    other = user_tokens(app, other_admin, "directory:write")["access_token"]
    assert client.patch(url, headers=bearer(other), json={"description": "x"}).status_code == 403


def test_capacity_by_the_owners_system_with_history(client):
    organization = make_org()
    service = make_service(organization)
    client_id, secret = make_client(organization, ["directory:write", "directory:read"])
    token = client_token(client, client_id, secret, "directory:write directory:read")
    url = f"/api/v1/services/{service.id}/capacity"
    updated = client.patch(
        url, headers=bearer(token), json={"capacity_status": "waitlist", "places_free": 0}
    )
    assert updated.status_code == 200
    assert updated.get_json()["capacity"]["status"] == "waitlist"
    assert client.patch(url, headers=bearer(token), json={"places_free": -1}).status_code == 422
    assert client.patch(url, headers=bearer(token), json={}).status_code == 422
    history = client.get(
        f"/api/v1/services/{service.id}/history", headers=bearer(token)
    ).get_json()["items"]
    changed = {
        (h["field_name"], h["previous_value"], h["replacement_value"], h["updated_by"])
        for h in history
        if h["action"] == "capacity"
    }
    assert changed == {
        ("capacity_status", "available", "waitlist", f"client:{client_id}"),
        ("places_free", None, "0", f"client:{client_id}"),
    }
    stranger_id, stranger_secret = make_client(make_org(), ["directory:write"])
    stranger = client_token(client, stranger_id, stranger_secret, "directory:write")
    assert client.patch(url, headers=bearer(stranger), json={"places_free": 3}).status_code == 403


def test_a_suspended_organisation_leaves_search(app, client, partner):
    organization = make_org()
    make_service(organization, name="Soon gone")
    token = coordinator_token(app)
    assert "Soon gone" in names(search(client, partner["token"]))
    suspended = client.patch(
        f"/api/v1/organizations/{organization.id}",
        headers=bearer(token),
        json={"status": "suspended"},
    )
    assert suspended.get_json()["status"] == "suspended"
    assert "Soon gone" not in names(search(client, partner["token"]))


def test_unverified_services_raise_one_reminder_until_verified(app, client):
    service = make_service(make_org())
    token = coordinator_token(app)
    clock.freeze(clock.now() + timedelta(days=app.config["VERIFICATION_MAX_AGE_DAYS"] + 1))
    try:
        remind_unverified_services()
        remind_unverified_services()
    finally:
        clock.freeze(None)
    reminders = client.get("/api/v1/directory/reminders", headers=bearer(token)).get_json()["items"]
    assert [r["service_id"] for r in reminders] == [service.id]
    client.post(f"/api/v1/services/{service.id}/verify", headers=bearer(token))
    assert (
        client.get("/api/v1/directory/reminders", headers=bearer(token)).get_json()["items"] == []
    )


def test_a_caseworker_finds_detox_for_a_16_year_old_boy_in_the_seed_directory(client, partner):
    """The seed names no detox centre in Siem Reap; Kaliyan Mith's alcohol support groups are
    the harm-reduction answer there, and Water Lily House is the detox centre in Preah Sihanouk."""
    hsds.load_seed()
    db.session.commit()
    token = partner["token"]
    boy = {"age": 16, "sex": "male", "accepting": "true"}
    siem_reap = search(client, token, category="detox,harm_reduction", province=SIEM_REAP, **boy)
    assert names(siem_reap) == {"Alcohol support groups"}
    assert siem_reap["items"][0]["organization"]["name"] == "Kaliyan Mith"
    assert siem_reap["items"][0]["match"] == {
        "categories": ["harm_reduction"],
        "areas": [SIEM_REAP],
    }
    assert names(search(client, token, category="detox", province=SIEM_REAP, **boy)) == set()
    sihanouk = search(client, token, category="detox", district=a_district_of("18"), **boy)
    assert names(sihanouk) == {"Pteach Romchang (Water Lily House) detox and recovery centre"}


def test_a_cursor_only_works_for_the_list_that_made_it(client, partner):
    organization = make_org()
    for index in range(3):
        make_service(organization, name=f"S{index}")
    token = partner["token"]
    by_name = search(client, token, limit=1)["next_cursor"]
    near = search(client, token, limit=1, near="13,104")["next_cursor"]
    organizations = client.get(
        "/api/v1/organizations", headers=bearer(token), query_string={"limit": 1}
    )
    for params in (
        {"cursor": near},
        {"cursor": by_name, "near": "13,104"},
        {"cursor": near, "near": "12,104"},
        {"cursor": organizations.get_json()["next_cursor"]},
    ):
        response = client.get("/api/v1/services", headers=bearer(token), query_string=params)
        assert response.status_code == 422, params


def test_search_by_organisation(client, partner):
    ours, theirs = make_org(), make_org()
    make_service(ours, name="Ours")
    make_service(theirs, name="Theirs")
    assert names(search(client, partner["token"], organization_id=ours.id)) == {"Ours"}


def test_history_values_are_json_and_iso_dates(app, client):
    service = make_service(make_org(), categories=["detox"])
    token = coordinator_token(app)
    client.patch(
        f"/api/v1/services/{service.id}",
        headers=bearer(token),
        json={"categories": ["detox", "medical"]},
    )
    client.post(f"/api/v1/services/{service.id}/verify", headers=bearer(token))
    history = client.get(
        f"/api/v1/services/{service.id}/history", headers=bearer(token)
    ).get_json()["items"]
    categories = next(h for h in history if h["field_name"] == "categories")
    assert (
        categories["previous_value"] == '["detox"]'
        and categories["replacement_value"] == '["detox", "medical"]'
    )
    verified = next(h for h in history if h["action"] == "verify")
    assert "T" in verified["replacement_value"]


def test_names_are_trimmed_and_a_province_can_be_cleared(app, client):
    organization = make_org()
    token = coordinator_token(app)
    url = f"/api/v1/organizations/{organization.id}"
    renamed = client.patch(
        url, headers=bearer(token), json={"name": "  Damnok Toek  ", "province": None}
    )
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["name"] == "Damnok Toek" and renamed.get_json()["province"] is None
    too_long = client.patch(url, headers=bearer(token), json={"alternate_name": "x" * 201})
    assert too_long.status_code == 422
    newline = client.patch(url, headers=bearer(token), json={"province": "17\n"})
    assert newline.status_code == 422


def test_contacts_and_schedules(app, client):
    token = coordinator_token(app)
    body = {
        "organization_id": make_org().id,
        "name": "Drop-in",
        "categories": ["medical"],
        "areas": ["12"],
        "contacts": [{"name": "Nurse desk", "phone": "+855 12 345 678"}],
        "schedules": [{"byday": "MO,WE,FR", "opens_at": "07:30", "closes_at": "16:00"}],
    }
    created = client.post("/api/v1/services", headers=bearer(token), json=body).get_json()
    assert created["contacts"] == [
        {"name": "Nurse desk", "title": None, "email": None, "phone": "+855 12 345 678"}
    ]
    assert (
        created["schedules"][0]["byday"] == "MO,WE,FR"
        and created["schedules"][0]["freq"] == "WEEKLY"
    )
    for schedule in ({"byday": "Monday"}, {"byday": "MO", "opens_at": "25:00"}):
        response = client.patch(
            f"/api/v1/services/{created['id']}",
            headers=bearer(token),
            json={"schedules": [schedule]},
        )
        assert response.status_code == 422, schedule


def test_government_readers_never_get_safe_house_addresses(app, client, partner):
    organization = make_org()
    service = make_service(organization, name="Safe House")
    service.locations.append(
        Location(
            organization_id=organization.id,
            name="Shelter",
            address="Street 99",
            latitude=13.36,
            longitude=103.86,
            confidential=True,
        )
    )
    db.session.commit()
    focal = user_party(app, ["focal_point"], ["17"], "directory:read")
    for token, shown in ((partner["token"], True), (focal.token, False)):
        found = client.get(f"/api/v1/services/{service.id}", headers=bearer(token)).get_json()
        listed = search(client, token, q="Safe House")["items"][0]
        for item in (found, listed):
            assert (item["locations"][0]["address"] == "Street 99") is shown
            assert (item["locations"][0]["latitude"] is not None) is shown


def test_an_organisations_own_phones_are_set_and_replaced_apart_from_its_services(app, client):
    organization = make_org()
    desk = make_service(organization, phones=[{"number": "012 000 111"}])
    token = coordinator_token(app)
    url = f"/api/v1/organizations/{organization.id}"
    assert client.get(url, headers=bearer(token)).get_json()["phones"] == []
    phones = [{"number": "+855 63 111 222", "description": "Office hours"}]
    saved = client.patch(url, headers=bearer(token), json={"phones": phones})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["phones"] == [{**phones[0], "type": "voice"}]
    replaced = client.patch(url, headers=bearer(token), json={"phones": [{"number": "023 1"}]})
    assert [p["number"] for p in replaced.get_json()["phones"]] == ["023 1"]
    assert [p.number for p in directory_service.get_service(desk.id).phones] == ["012 000 111"]
    history, _next = directory_service.history(
        "organization", organization.id, {"limit": 9, "cursor": None}
    )
    assert "phones" in {change.field_name for change in history}
    refused = client.patch(url, headers=bearer(token), json={"phones": [{"number": "1"}]})
    assert refused.status_code == 422
