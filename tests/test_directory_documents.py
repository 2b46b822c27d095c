"""A service's document: every field and collection in its order, read in a fixed number of
statements whatever the page holds."""

from datetime import datetime

from referral_hub.directory import documents, search

from .factories import add_location, bearer, make_org, make_service

FULL = {
    "categories": ["legal_aid", "detox"],
    "areas": ["1710", "17"],
    "languages": ["km", "en"],
    "phones": [
        {"number": "+855 99 000 000", "type": "cell", "description": "night line"},
        {"number": "+855 12 000 000", "type": "voice"},
    ],
    "contacts": [{"name": "Intake desk", "phone": "+855 12 111 111"}, {"name": "Dara"}],
    "schedules": [
        {"byday": "SA", "opens_at": "08:00", "closes_at": "12:00"},
        {"byday": "MO,TU", "opens_at": "07:30", "closes_at": "17:00", "description": "office"},
    ],
    "minimum_age": 12,
    "maximum_age": 17,
    "eligibility_sex": "male",
    "eligibility_description": "Boys who use alcohol",
}


def test_a_document_holds_every_field_and_collection_in_order():
    organization = make_org(name="Kaliyan Mith test")
    made = make_service(organization, name="Detox for boys", **FULL)
    add_location(made, "Safe house", "Hidden street", confidential=True)
    add_location(made, "Office", "Street 6")

    document = documents.service_document(made.id, show_confidential=True)

    assert document["organization"] == {
        "id": organization.id,
        "name": "Kaliyan Mith test",
        "name_km": None,
    }
    assert (document["name_km"], document["description_km"]) == (None, None)
    assert document["categories"] == ["detox", "legal_aid"]
    assert [area["code"] for area in document["areas"]] == ["17", "1710"]
    assert document["areas"][0]["name_en"] == "Siem Reap"
    assert document["languages"] == ["en", "km"]
    assert document["phones"] == [
        {"number": "+855 12 000 000", "type": "voice", "description": None},
        {"number": "+855 99 000 000", "type": "cell", "description": "night line"},
    ]
    assert document["contacts"] == [
        {"name": "Dara", "title": None, "email": None, "phone": None},
        {"name": "Intake desk", "title": None, "email": None, "phone": "+855 12 111 111"},
    ]
    assert document["schedules"] == [
        {
            "freq": "WEEKLY",
            "byday": "MO,TU",
            "opens_at": "07:30",
            "closes_at": "17:00",
            "description": "office",
        },
        {
            "freq": "WEEKLY",
            "byday": "SA",
            "opens_at": "08:00",
            "closes_at": "12:00",
            "description": None,
        },
    ]
    assert document["eligibility"] == {
        "minimum_age": 12,
        "maximum_age": 17,
        "sex": "male",
        "description": "Boys who use alcohol",
    }
    assert document["capacity"]["status"] == "available"
    assert document["capacity"]["accepting_referrals"] is True
    assert [(p["name"], p["address"]) for p in document["locations"]] == [
        ("Office", "Street 6"),
        ("Safe house", "Hidden street"),
    ]
    assert document["created_at"] == made.created_at


def test_a_confidential_address_is_left_out_for_readers_who_may_not_see_it():
    made = make_service(make_org())
    add_location(made, "Safe house", "Hidden street", confidential=True)

    (location,) = documents.service_document(made.id, show_confidential=False)["locations"]

    assert location["name"] == "Safe house"
    assert location["confidential"] is True
    assert (location["address"], location["latitude"], location["longitude"]) == (None,) * 3


def test_a_search_page_costs_three_statements_however_full(statements):
    organization = make_org()
    add_location(make_service(organization), "Office", "Street 1")
    page = {"limit": 50, "cursor": None}
    statements.clear()
    hits, _cursor = search.search_services({"category": ["detox"]}, page)
    single = len(statements)
    for number in range(6):
        full = make_service(organization, name=f"Full {number}", **FULL)
        add_location(full, f"Office {number}", "Street 6")
    statements.clear()
    more, _cursor = search.search_services({"category": ["detox"]}, page)

    assert (len(hits), len(more)) == (1, 7)
    assert single == len(statements) == 3


def test_the_api_writes_khmer_as_utf8_and_times_in_iso_8601(client, partner):
    made = make_service(make_org(), name="សេវាកម្ម", categories=["detox"])

    response = client.get(f"/api/v1/services/{made.id}", headers=bearer(partner["token"]))

    assert "សេវាកម្ម".encode() in response.data
    body = response.get_json()
    assert datetime.fromisoformat(body["created_at"]) == made.created_at
    assert body["capacity"]["updated_at"] is None
