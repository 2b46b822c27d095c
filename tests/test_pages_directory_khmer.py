"""An honest directory: unknown capacity and unverified entries said so, and the entries'
own names and descriptions in Khmer, written in the curation forms and the API."""

import re

from referral_hub.directory.models import Organization, Service
from referral_hub.extensions import db

from .factories import bearer, coordinator_token, make_org, make_service, report_capacity
from .pages import signed_in, submit, text

CARD = re.compile(r'<li class="card">(.*?)</li>', re.S)
KHMER_NAME = "មណ្ឌលព្យាបាលកុមារ"
KHMER_ORGANIZATION = "អង្គការមិត្តភាព"
KHMER_DESCRIPTION = "សេវាព្យាបាលសម្រាប់ក្មេងប្រុស"


def _card(browser, query="category=detox"):
    page = text(browser.get(f"/find?{query}"))
    (card,) = CARD.findall(page.split('id="result-count"', 1)[1])
    return card


def test_capacity_never_reported_is_unknown_not_available(app):
    found = make_service(make_org(), name="Quiet Shelter", categories=["detox"])
    browser, _ = signed_in(app, language="en")
    card = _card(browser)
    assert '<span class="badge unknown">Capacity unknown</span>' in card
    assert "Places available" not in card and 'badge available">Places' not in card
    report_capacity(found, capacity_status="available", places_free=2)
    card = _card(browser)
    assert "Capacity unknown" not in card
    assert '<span class="badge available">Places available</span>' in card
    assert "2 places free" in card


def test_last_verified_is_a_date_or_not_yet_in_a_neutral_hint(app):
    found = make_service(make_org(), name="Quiet Shelter", categories=["detox"])
    browser, _ = signed_in(app, language="en")
    assert '<p class="hint verified">Not yet verified</p>' in _card(browser)
    assert "Not yet verified" in text(browser.get(f"/services/{found.id}"))
    coordinator, _ = signed_in(app, ["coordinator"], language="en")
    curation = f"/curation/services/{found.id}"
    assert '<span class="hint">Not yet verified</span>' in text(coordinator.get(curation))
    submit(coordinator, curation, f"{curation}/verify")
    card = _card(browser)
    assert re.search(r'<p class="hint verified">Last verified [^<]*20\d\d</p>', card)
    assert "Not yet verified" not in card


def test_khmer_pages_show_khmer_names_and_mark_english_ones(app):
    translated = make_org(name="Friendship Org")
    make_service(translated, name="Child Care Centre", categories=["detox"])
    db.session.get(Organization, translated.id).name_km = KHMER_ORGANIZATION
    service = db.session.scalar(db.select(Service).filter_by(name="Child Care Centre"))
    service.name_km, service.description_km = KHMER_NAME, KHMER_DESCRIPTION
    service.description = "Care for boys"
    db.session.commit()
    untranslated = make_service(make_org(), name="Legal Desk", categories=["legal_aid"])

    khmer, _ = signed_in(app, language="km")
    card = _card(khmer)
    assert f">{KHMER_NAME}</a>" in card and KHMER_ORGANIZATION in card
    assert "Child Care Centre" not in card
    page = text(khmer.get(f"/services/{service.id}"))
    assert KHMER_DESCRIPTION in page and "Care for boys" not in page
    assert f"<title>{KHMER_NAME} ·" in page
    english_only = _card(khmer, "category=legal_aid")
    assert '<span lang="en">Legal Desk</span>' in english_only
    assert f"<title>{untranslated.name} ·" in text(khmer.get(f"/services/{untranslated.id}"))

    english, _ = signed_in(app, language="en")
    card = _card(english)
    assert ">Child Care Centre</a>" in card and KHMER_NAME not in card
    assert 'lang="en"' not in card


def test_the_curation_forms_write_the_khmer_and_empty_means_not_written(app):
    coordinator, _ = signed_in(app, ["coordinator"], language="en")
    created = submit(
        coordinator,
        "/curation/organizations",
        name="Friendship Org",
        name_km=KHMER_ORGANIZATION,
        description_km="",
    )
    assert created.status_code == 302
    organization = db.session.scalar(db.select(Organization).filter_by(name="Friendship Org"))
    assert (organization.name_km, organization.description_km) == (KHMER_ORGANIZATION, None)
    found = make_service(organization, name="Child Care Centre")
    page = f"/curation/services/{found.id}"
    assert 'id="name_km"' in text(coordinator.get(page))
    fields = {"name": found.name, "categories": "detox", "areas": "17", "status": "active"}
    response = submit(coordinator, page, page, **fields, name_km=KHMER_NAME, description_km="")
    assert response.status_code == 302, text(response)
    db.session.expire_all()
    saved = db.session.get(Service, found.id)
    assert (saved.name_km, saved.description_km) == (KHMER_NAME, None)
    assert f'value="{KHMER_NAME}"' in text(coordinator.get(page))
    khmer_search = text(coordinator.get(f"/find?q={KHMER_NAME}&include_mine=yes"))
    assert "Child Care Centre" in khmer_search  # the Khmer name is searched too


def test_the_api_writes_and_reads_the_khmer(app, client):
    token = coordinator_token(app)
    organization = client.post(
        "/api/v1/organizations",
        json={"name": "Friendship Org", "name_km": KHMER_ORGANIZATION},
        headers=bearer(token),
    )
    assert organization.status_code == 201, organization.get_json()
    assert organization.get_json()["name_km"] == KHMER_ORGANIZATION
    assert organization.get_json()["description_km"] is None
    body = {
        "organization_id": organization.get_json()["id"],
        "name": "Child Care Centre",
        "name_km": KHMER_NAME,
        "description_km": KHMER_DESCRIPTION,
        "categories": ["detox"],
        "areas": ["17"],
    }
    created = client.post("/api/v1/services", json=body, headers=bearer(token))
    assert created.status_code == 201, created.get_json()
    document = created.get_json()
    assert (document["name_km"], document["description_km"]) == (KHMER_NAME, KHMER_DESCRIPTION)
    assert document["organization"]["name_km"] == KHMER_ORGANIZATION
    changed = client.patch(
        f"/api/v1/services/{document['id']}", json={"name_km": None}, headers=bearer(token)
    )
    assert changed.status_code == 200 and changed.get_json()["name_km"] is None
    too_long = client.patch(
        f"/api/v1/services/{document['id']}", json={"name_km": "ក" * 201}, headers=bearer(token)
    )
    assert too_long.status_code == 422
    assert too_long.get_json()["errors"][0]["field"] == "name_km"
