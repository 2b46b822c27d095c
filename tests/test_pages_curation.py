"""Coordinators curate the directory on pages: organisations, services, verify, suspend, retire."""

from referral_hub.directory import service as directory
from referral_hub.directory.models import Organization, Service
from referral_hub.extensions import db

from .factories import csrf_from, make_org, make_service
from .pages import confirm, signed_in, submit, text

EN = {"Accept-Language": "en"}


def _coordinator(app):
    browser, user = signed_in(app, ["coordinator"])
    browser.set_cookie("hub_lang", "en")
    return browser, user


def test_only_coordinators_see_the_curation_pages(app):
    organization = make_org()
    found = make_service(organization)
    paths = (
        "/curation/organizations",
        f"/curation/organizations/{organization.id}",
        f"/curation/organizations/{organization.id}/services/new",
        f"/curation/services/{found.id}",
    )
    for roles in (["caseworker"], ["org_admin"], ["focal_point"]):
        browser, _ = signed_in(app, roles, organization=organization, provinces=["17"])
        for path in paths:
            response = browser.get(path)
            assert response.status_code == 403, path
            assert response.content_type.startswith("text/html")
        refused = submit(
            browser, "/login", f"/curation/services/{found.id}/status", status="defunct"
        )
        assert refused.status_code == 403
    assert db.session.get(Service, found.id).status == "active"
    coordinator, _ = _coordinator(app)
    for path in paths:
        assert coordinator.get(path).status_code == 200, path
    assert app.test_client().get(paths[0]).status_code == 302


def test_unknown_organisation_and_service_are_404_pages(app):
    coordinator, _ = _coordinator(app)
    for path in (
        "/curation/organizations/00000000-0000-0000-0000-000000000000",
        "/curation/services/00000000-0000-0000-0000-000000000000",
    ):
        response = coordinator.get(path)
        assert response.status_code == 404 and "<h1>" in text(response)


def test_create_an_organisation_and_refuse_a_duplicate_name(app):
    coordinator, _ = _coordinator(app)
    response = submit(
        coordinator,
        "/curation/organizations",
        name="Kaliyan Mith",
        description="Siem Reap",
        province="17",
    )
    assert response.status_code == 302
    created = db.session.scalar(db.select(Organization).filter_by(name="Kaliyan Mith"))
    assert created.province == "17"
    again = submit(coordinator, "/curation/organizations", name="Kaliyan Mith", description="typed")
    page = text(again)
    assert again.status_code == 422
    assert 'id="name-error"' in page and ">typed</textarea>" in page
    empty = submit(coordinator, "/curation/organizations", name="  ")
    assert empty.status_code == 422 and 'id="name-error"' in text(empty)


def test_csrf_is_required_for_every_curation_form(app):
    organization = make_org()
    found = make_service(organization)
    coordinator, _ = _coordinator(app)
    for path, data in (
        ("/curation/organizations", {"name": "No token"}),
        (f"/curation/organizations/{organization.id}", {"name": "Renamed"}),
        (f"/curation/organizations/{organization.id}/verify", {}),
        (f"/curation/organizations/{organization.id}/services", {"name": "X"}),
        (f"/curation/services/{found.id}", {"name": "Renamed"}),
        (f"/curation/services/{found.id}/verify", {}),
        (f"/curation/services/{found.id}/status", {"status": "defunct"}),
    ):
        assert coordinator.post(path, data=data).status_code == 403, path
    db.session.expire_all()
    assert db.session.get(Service, found.id).status == "active"
    assert db.session.get(Organization, organization.id).last_verified_at is None


def test_edit_and_verify_an_organisation(app):
    organization = make_org()
    coordinator, _ = _coordinator(app)
    page = f"/curation/organizations/{organization.id}"
    response = submit(
        coordinator,
        page,
        name="Mith Samlanh",
        description="Phnom Penh",
        email="info@example.org",
        website="https://example.org",
        province="12",
        status="active",
    )
    assert response.status_code == 302
    bad = submit(coordinator, page, name="Mith Samlanh", email="not an email", status="active")
    assert bad.status_code == 422
    assert 'id="email-error"' in text(bad) and 'value="not an email"' in text(bad)
    assert submit(coordinator, page, f"{page}/verify").status_code == 302
    db.session.expire_all()
    saved = db.session.get(Organization, organization.id)
    assert (saved.name, saved.province, saved.email) == ("Mith Samlanh", "12", "info@example.org")
    assert saved.last_verified_at is not None
    changes, _ = directory.history("organization", saved.id, {"limit": 50, "cursor": None})
    assert {"update", "verify"} <= {change.action for change in changes}


def test_create_a_service_with_validation_kept_next_to_the_fields(app):
    organization = make_org()
    coordinator, _ = _coordinator(app)
    new = f"/curation/organizations/{organization.id}/services/new"
    action = f"/curation/organizations/{organization.id}/services"
    refused = submit(
        coordinator,
        new,
        action,
        name="Green House",
        minimum_age="18",
        maximum_age="10",
        areas="17",
        status="active",
    )
    page = text(refused)
    assert refused.status_code == 422
    assert 'id="categories-error"' in page and 'value="Green House"' in page
    wrong_ages = submit(
        coordinator,
        new,
        action,
        name="Green House",
        categories="detox",
        areas="1701",
        minimum_age="18",
        maximum_age="10",
        status="active",
    )
    assert wrong_ages.status_code == 422 and 'id="minimum_age-error"' in text(wrong_ages)
    created = coordinator.post(
        action,
        data={
            "csrf_token": _token(coordinator, new),
            "name": "Green House",
            "categories": ["detox", "harm_reduction"],
            "areas": ["17", "1201"],
            "languages": ["km", "en"],
            "minimum_age": "12",
            "eligibility_sex": "male",
            "accepting": "yes",
            "status": "active",
            "phone": "+855 12 345 678, 023 111 222",
        },
    )
    assert created.status_code == 302
    found = db.session.scalar(db.select(Service).filter_by(name="Green House"))
    assert found.category_codes == ["detox", "harm_reduction"]
    assert found.area_codes == ["1201", "17"] and found.language_codes == ["en", "km"]
    assert (found.minimum_age, found.eligibility_sex, found.accepting_referrals) == (
        12,
        "male",
        True,
    )
    assert sorted(p.number for p in found.phones) == ["+855 12 345 678", "023 111 222"]


def _token(browser, path):
    return csrf_from(text(browser.get(path)))


def test_edit_a_service_keeps_what_the_form_does_not_show(app):
    organization = make_org()
    found = make_service(
        organization,
        phones=[{"number": "012 000 111", "type": "cell", "description": "Night line"}],
        contacts=[{"name": "Ms Dara"}],
    )
    coordinator, _ = _coordinator(app)
    page = f"/curation/services/{found.id}"
    html = text(coordinator.get(page))
    assert 'value="012 000 111"' in html and "Drug and alcohol" in html
    assert len(html.encode()) < 100_000 and "<script" not in html
    response = coordinator.post(
        page,
        data={
            "csrf_token": _token(coordinator, page),
            "name": "Renamed service",
            "description": "New words",
            "categories": ["detox"],
            "areas": ["17"],
            "phone": "012 000 111",
            "status": "active",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    saved = db.session.get(Service, found.id)
    assert saved.name == "Renamed service" and saved.description == "New words"
    assert [(p.number, p.description) for p in saved.phones] == [("012 000 111", "Night line")]
    assert [c.name for c in saved.contacts] == ["Ms Dara"]
    assert saved.accepting_referrals is False
    assert "Renamed service" in text(coordinator.get(page))


def test_verify_suspend_retire_and_reopen_a_service(app):
    found = make_service(make_org())
    coordinator, _ = _coordinator(app)
    page = f"/curation/services/{found.id}"
    assert submit(coordinator, page, f"{page}/verify").status_code == 302
    for status in ("inactive", "temporarily closed", "defunct", "active"):
        response = submit(coordinator, page, f"{page}/status", status=status)
        if status == "defunct":
            response = confirm(coordinator, response)
        assert response.status_code == 302
        db.session.expire_all()
        assert db.session.get(Service, found.id).status == status
    assert db.session.get(Service, found.id).last_verified_at is not None
    bad = submit(coordinator, page, f"{page}/status", status="deleted")
    assert bad.status_code == 422
    followed = coordinator.get(page)
    assert "Retire" in text(followed)


def test_organisation_page_lists_its_services_in_khmer(app):
    organization = make_org()
    make_service(organization, name="Water Lily House")
    browser, _ = signed_in(app, ["coordinator"])
    page = text(
        browser.get(f"/curation/organizations/{organization.id}", headers={"Accept-Language": "km"})
    )
    assert "Water Lily House" in page and '<html lang="km">' in page
    listing = text(browser.get("/curation/organizations", headers={"Accept-Language": "km"}))
    assert organization.name in listing and "សៀមរាប" in listing
