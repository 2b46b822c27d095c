"""Admin pages: an organisation's users and API clients, by role."""

import re

import pytest

from referral_hub.auth.models import OAuthClient, User
from referral_hub.extensions import db

from .factories import PASSWORD, make_client, make_org, make_user, sign_in
from .pages import confirm, submit, text
from .pages import signed_in as signed_in_as

SECRET_ON_PAGE = re.compile(r'<p class="secret">([^<]+)</p>')


def stored_user(email):
    db.session.rollback()
    return db.session.scalar(db.select(User).filter_by(email=email))


def stored_client(client_id):
    db.session.rollback()
    return db.session.scalar(db.select(OAuthClient).filter_by(client_id=client_id))


def signed_in(app, roles, organization=None, provinces=()):
    """Signed in, reading the pages in English: the tests read their words."""
    browser, user = signed_in_as(app, roles, organization, provinces)
    browser.set_cookie("hub_lang", "en")
    return browser, user


@pytest.fixture
def admin(app):
    """An org_admin signed in, with a colleague and a stranger in another organisation."""
    organization = make_org()
    browser, me = signed_in(app, ("org_admin",), organization)
    colleague = make_user(organization, roles=("caseworker",))
    stranger = make_user(make_org(), roles=("caseworker",))
    return {
        "browser": browser,
        "me": me,
        "org": organization,
        "colleague": colleague,
        "stranger": stranger,
    }


# Who may see the pages


@pytest.mark.parametrize("path", ["/admin/users", "/admin/clients"])
def test_caseworkers_and_focal_points_get_the_forbidden_page(app, path):
    for roles, provinces in ((("caseworker",), ()), (("focal_point",), ("17",))):
        browser, _user = signed_in(app, roles, provinces=provinces)
        response = browser.get(path)
        assert response.status_code == 403
        assert response.content_type.startswith("text/html") and "<h1>" in text(response)


@pytest.mark.parametrize("path", ["/admin/users", "/admin/clients"])
def test_signing_in_comes_first(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_user_list_shows_my_organisation_only_without_password_hashes(admin):
    page = admin["browser"].get("/admin/users")
    body = text(page)
    assert page.status_code == 200 and len(page.data) < 100_000 and '<html lang="en">' in body
    assert admin["colleague"].email in body and admin["me"].email in body
    assert admin["stranger"].email not in body
    assert "argon2" not in body and admin["colleague"].password_hash not in body
    assert 'href="/admin/users"' in body and 'href="/admin/clients"' in body  # in the menu


def test_a_coordinator_manages_their_own_organisation_on_the_page(app):
    organization = make_org()
    browser, _me = signed_in(app, ("coordinator",), organization)
    colleague = make_user(organization)
    body = text(browser.get("/admin/users"))
    assert colleague.email in body and 'value="focal_point"' in body


def test_an_org_admin_is_not_offered_the_coordinators_roles(admin):
    body = text(admin["browser"].get("/admin/users"))
    assert 'value="org_admin"' in body and 'value="caseworker"' in body
    assert 'value="coordinator"' not in body and 'value="focal_point"' not in body


# Inviting


def test_invite_shows_a_temporary_password_once_that_signs_in(app, admin):
    response = submit(
        admin["browser"],
        "/admin/users",
        email="New.Person@Example.org",
        name="Sokha",
        roles=["caseworker", "org_admin"],
    )
    assert response.status_code == 200, text(response)
    assert response.headers["Cache-Control"] == "no-store"
    password = SECRET_ON_PAGE.search(text(response)).group(1)
    user = stored_user("new.person@example.org")
    assert user.organization_id == admin["org"].id and user.name == "Sokha"
    assert user.roles == ["caseworker", "org_admin"]
    assert password not in text(admin["browser"].get("/admin/users"))
    assert password not in text(admin["browser"].get(f"/admin/users/{user.id}"))
    assert sign_in(app.test_client(), user.email, password).status_code == 302


def test_invite_errors_are_shown_at_the_field_and_keep_what_was_typed(admin):
    response = submit(admin["browser"], "/admin/users", email="not-an-email", name="Dara", roles=[])
    body = text(response)
    assert response.status_code == 422
    assert 'id="email-error"' in body and 'value="not-an-email"' in body
    assert 'value="Dara"' in body and 'id="roles"' in body and "field-error" in body
    assert stored_user("not-an-email") is None


def test_inviting_an_existing_email_says_so_at_the_email(admin):
    response = submit(
        admin["browser"], "/admin/users", email=admin["stranger"].email, roles=["caseworker"]
    )
    assert response.status_code == 422
    assert 'id="email-error"' in text(response) and "exists already" in text(response)


def test_an_org_admin_cannot_grant_coordinator_by_editing_the_form(admin):
    response = submit(
        admin["browser"], "/admin/users", email="sneaky@example.org", roles=["coordinator"]
    )
    assert response.status_code == 403 and "<h1>" in text(response)
    assert stored_user("sneaky@example.org") is None


def test_a_coordinator_invites_a_focal_point_with_provinces(app):
    browser, _me = signed_in(app, ("coordinator",))
    response = submit(
        browser, "/admin/users", email="fp@example.org", roles=["focal_point"], provinces="12, 17"
    )
    assert response.status_code == 200, text(response)
    assert stored_user("fp@example.org").provinces == ["12", "17"]
    missing = submit(browser, "/admin/users", email="fp2@example.org", roles=["focal_point"])
    assert missing.status_code == 422 and 'id="provinces-error"' in text(missing)


# Changing roles, disabling


def test_an_admin_changes_a_colleagues_roles(admin):
    colleague = admin["colleague"]
    page = f"/admin/users/{colleague.id}"
    assert admin["browser"].get(page).status_code == 200
    response = submit(admin["browser"], page, f"{page}/roles", roles=["org_admin"])
    assert response.status_code == 302
    assert stored_user(colleague.email).roles == ["org_admin"]
    assert "org_admin" in text(admin["browser"].get(page))


def test_roles_cannot_be_emptied(admin):
    page = f"/admin/users/{admin['colleague'].id}"
    response = submit(admin["browser"], page, f"{page}/roles")
    assert response.status_code == 422 and 'id="roles-error"' in text(response)
    assert stored_user(admin["colleague"].email).roles == ["caseworker"]


def test_a_user_holding_a_coordinators_role_is_left_to_coordinators(admin):
    focal = make_user(admin["org"], roles=("focal_point",), provinces=("17",))
    body = text(admin["browser"].get(f"/admin/users/{focal.id}"))
    assert "Ask a network coordinator" in body and "/roles" not in body


def test_disable_then_enable_a_colleague(app, admin):
    colleague = admin["colleague"]
    page = f"/admin/users/{colleague.id}"
    asked = submit(admin["browser"], page, f"{page}/active", active="false")
    assert stored_user(colleague.email).active is True  # not before the page asking once more
    response = confirm(admin["browser"], asked)
    assert response.status_code == 302
    assert stored_user(colleague.email).active is False
    assert sign_in(app.test_client(), colleague.email, PASSWORD).status_code == 401
    assert "Enable this user" in text(admin["browser"].get(page))
    submit(admin["browser"], page, f"{page}/active", active="true")
    assert stored_user(colleague.email).active is True


def test_an_admin_cannot_disable_themselves(admin):
    page = f"/admin/users/{admin['me'].id}"
    assert "Disable this user" not in text(admin["browser"].get(page))
    response = submit(admin["browser"], page, f"{page}/active", active="false", confirmed="yes")
    assert response.status_code == 302
    assert stored_user(admin["me"].email).active is True
    assert "cannot disable your own account" in text(admin["browser"].get(page))


def test_another_organisations_user_is_not_found(admin):
    stranger = admin["stranger"]
    page = f"/admin/users/{stranger.id}"
    assert admin["browser"].get(page).status_code == 404
    response = submit(
        admin["browser"], "/admin/users", f"{page}/active", active="false", confirmed="yes"
    )
    assert response.status_code == 404
    assert stored_user(stranger.email).active is True


def test_user_forms_without_csrf_token_are_refused(admin):
    colleague = admin["colleague"]
    browser = admin["browser"]
    refused = [
        browser.post("/admin/users", data={"email": "x@example.org", "roles": "caseworker"}),
        browser.post(f"/admin/users/{colleague.id}/roles", data={"roles": "org_admin"}),
        browser.post(f"/admin/users/{colleague.id}/active", data={"active": "false"}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert stored_user("x@example.org") is None
    user = stored_user(colleague.email)
    assert user.active and user.roles == ["caseworker"]


# API clients


def test_the_client_list_shows_my_organisations_clients_only(admin):
    mine, _secret = make_client(admin["org"])
    theirs, _secret = make_client(make_org())
    response = admin["browser"].get("/admin/clients")
    assert response.status_code == 200 and len(response.data) < 100_000
    assert mine in text(response) and theirs not in text(response)
    assert stored_client(mine).secret_hash not in text(response)


def test_a_new_clients_secret_is_shown_once_and_works(admin):
    response = submit(
        admin["browser"],
        "/admin/clients",
        name="Case system",
        scopes=["referrals:read", "referrals:write"],
        grant_types=["client_credentials"],
        auth_method="client_secret_basic",
    )
    assert response.status_code == 200, text(response)
    assert response.headers["Cache-Control"] == "no-store"
    secret = SECRET_ON_PAGE.search(text(response)).group(1)
    client = db.session.scalar(db.select(OAuthClient).filter_by(name="Case system"))
    assert client.organization_id == admin["org"].id
    assert client.scope == "referrals:read referrals:write"
    assert client.check_client_secret(secret) and secret not in (client.secret_hash or "")
    assert secret not in text(admin["browser"].get("/admin/clients"))


def test_client_errors_are_shown_at_their_fields_and_keep_what_was_typed(admin):
    response = submit(
        admin["browser"],
        "/admin/clients",
        name="Phone app",
        scopes=[],
        grant_types=["authorization_code"],
        auth_method="none",
    )
    assert response.status_code == 422
    assert 'id="scopes-error"' in text(response) and 'value="Phone app"' in text(response)
    response = submit(
        admin["browser"],
        "/admin/clients",
        name="Phone app",
        scopes=["referrals:read"],
        grant_types=["authorization_code"],
        auth_method="none",
    )
    assert response.status_code == 422 and 'id="redirect_uris-error"' in text(response)
    assert 'value="referrals:read" checked' in re.sub(r"\s+", " ", text(response))
    response = submit(
        admin["browser"],
        "/admin/clients",
        name="Signed",
        scopes=["referrals:read"],
        grant_types=["client_credentials"],
        auth_method="private_key_jwt",
        jwks="{not json",
    )
    assert response.status_code == 422 and 'id="jwks-error"' in text(response)
    assert "{not json" in text(response)
    assert db.session.scalar(db.select(db.func.count(OAuthClient.id))) == 0


def test_a_public_client_gets_no_secret(admin):
    response = submit(
        admin["browser"],
        "/admin/clients",
        name="Phone app",
        scopes=["referrals:read"],
        grant_types=["authorization_code", "refresh_token"],
        auth_method="none",
        redirect_uris="https://app.example.org/done",
    )
    assert response.status_code == 200, text(response)
    assert SECRET_ON_PAGE.search(text(response)) is None
    assert stored_client(
        db.session.scalar(db.select(OAuthClient.client_id).filter_by(name="Phone app"))
    ).redirect_uris == ["https://app.example.org/done"]


def test_revoking_a_client_voids_it_and_the_button_goes(admin):
    client_id, secret = make_client(admin["org"])
    asked = submit(admin["browser"], "/admin/clients", f"/admin/clients/{client_id}/revoke")
    assert stored_client(client_id).revoked_at is None  # not before the page asking once more
    response = confirm(admin["browser"], asked)
    assert response.status_code == 302
    client = stored_client(client_id)
    assert client.revoked_at is not None and not client.check_client_secret(secret)
    assert f"/admin/clients/{client_id}/revoke" not in text(admin["browser"].get("/admin/clients"))


def test_another_organisations_client_cannot_be_revoked(admin):
    client_id, _secret = make_client(make_org())
    response = submit(
        admin["browser"], "/admin/clients", f"/admin/clients/{client_id}/revoke", confirmed="yes"
    )
    assert response.status_code == 404
    assert stored_client(client_id).revoked_at is None


def test_client_forms_without_csrf_token_are_refused(admin):
    client_id, _secret = make_client(admin["org"])
    browser = admin["browser"]
    created = browser.post("/admin/clients", data={"name": "X", "scopes": "referrals:read"})
    revoked = browser.post(f"/admin/clients/{client_id}/revoke")
    assert created.status_code == 403 and revoked.status_code == 403
    assert stored_client(client_id).revoked_at is None
    assert db.session.scalar(db.select(db.func.count(OAuthClient.id))) == 1


def test_a_caseworker_cannot_post_the_admin_forms(app):
    organization = make_org()
    browser, _user = signed_in(app, ("caseworker",), organization)
    colleague = make_user(organization)
    client_id, _secret = make_client(organization)
    page = "/login"  # any page of theirs carries the CSRF token
    responses = [
        submit(browser, page, "/admin/users", email="y@example.org", roles=["caseworker"]),
        submit(browser, page, f"/admin/users/{colleague.id}/active", active="false"),
        submit(browser, page, f"/admin/clients/{client_id}/revoke"),
    ]
    assert [r.status_code for r in responses] == [403, 403, 403]
    assert stored_user(colleague.email).active and stored_client(client_id).revoked_at is None
