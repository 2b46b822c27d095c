"""The quick capacity page: an organisation's admins update their own services only."""

import re

import pytest

from referral_hub.directory.models import Service
from referral_hub.extensions import db

from .factories import make_org, make_service
from .pages import submit, text
from .test_pages_admin import signed_in


def stored(service_id):
    db.session.rollback()
    return db.session.get(Service, service_id)


@pytest.fixture
def admin(app):
    organization = make_org()
    browser, _me = signed_in(app, ("org_admin",), organization)
    shelter = make_service(organization, name="Shelter")
    counselling = make_service(organization, name="Counselling", places_free=3)
    theirs = make_service(make_org(), name="Their House")
    return {
        "browser": browser,
        "org": organization,
        "shelter": shelter,
        "counselling": counselling,
        "theirs": theirs,
    }


@pytest.mark.parametrize("roles", [("caseworker",), ("coordinator",)])
def test_only_org_admins_see_the_capacity_page(app, roles):
    browser, _user = signed_in(app, roles)
    response = browser.get("/capacity")
    assert response.status_code == 403 and "<h1>" in text(response)


def test_the_page_lists_my_services_only_with_one_labelled_form_each(admin):
    response = admin["browser"].get("/capacity")
    body = text(response)
    assert response.status_code == 200 and len(response.data) < 100_000
    assert "Shelter" in body and "Counselling" in body and "Their House" not in body
    assert body.index("Counselling") < body.index("Shelter")
    assert body.count('<form method="post" action="/capacity/') == 2
    ids = re.findall(r'<(?:select|input) id="([^"]+)"', body)
    assert len(ids) == len(set(ids)) == 6
    assert all(f'<label for="{control}">' in body for control in ids)
    assert "3 places free" in body and 'value="3"' in body


def test_an_admin_updates_capacity(admin):
    shelter = admin["shelter"]
    response = submit(
        admin["browser"],
        "/capacity",
        f"/capacity/{shelter.id}",
        capacity_status="waitlist",
        places_free="0",
        accepting_referrals="false",
    )
    assert response.status_code == 302
    found = stored(shelter.id)
    assert (found.capacity_status, found.places_free, found.accepting_referrals) == (
        "waitlist",
        0,
        False,
    )
    assert found.capacity_updated_at is not None
    assert "The capacity of Shelter is saved." in text(admin["browser"].get("/capacity"))
    submit(
        admin["browser"],
        "/capacity",
        f"/capacity/{shelter.id}",
        capacity_status="available",
        places_free="",
        accepting_referrals="true",
    )
    found = stored(shelter.id)
    assert (found.capacity_status, found.places_free, found.accepting_referrals) == (
        "available",
        None,
        True,
    )


def test_a_wrong_value_is_shown_at_its_field_with_what_was_typed(admin):
    counselling = admin["counselling"]
    response = submit(
        admin["browser"],
        "/capacity",
        f"/capacity/{counselling.id}",
        capacity_status="full",
        places_free="-4",
        accepting_referrals="true",
    )
    body = text(response)
    assert response.status_code == 422
    assert 'id="places_free-error"' in body and 'value="-4"' in body
    assert body.count('id="places_free-error"') == 1
    assert stored(counselling.id).places_free == 3
    assert stored(counselling.id).capacity_status == "available"


def test_another_organisations_service_is_not_found(admin):
    theirs = admin["theirs"]
    response = submit(
        admin["browser"],
        "/capacity",
        f"/capacity/{theirs.id}",
        capacity_status="full",
        places_free="0",
        accepting_referrals="false",
    )
    assert response.status_code == 404 and "<h1>" in text(response)
    assert stored(theirs.id).capacity_status == "available"


def test_the_capacity_form_without_csrf_token_is_refused(admin):
    shelter = admin["shelter"]
    response = admin["browser"].post(f"/capacity/{shelter.id}", data={"capacity_status": "full"})
    assert response.status_code == 403
    assert stored(shelter.id).capacity_status == "available"


def test_an_organisation_without_services_is_told_whom_to_ask(app):
    browser, _user = signed_in(app, ("org_admin",))
    body = text(browser.get("/capacity"))
    assert "Ask a network coordinator" in body and "/capacity/" not in body
