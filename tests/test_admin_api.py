"""Organisations, users and API clients through the admin API."""

import pytest

from referral_hub.auth.models import User
from referral_hub.extensions import db

from .factories import bearer, client_token, make_org, make_user, user_tokens


@pytest.fixture
def admin(app):
    organization = make_org()
    user = make_user(organization, roles=["org_admin"])
    return {
        "org": organization,
        "user": user,
        "token": user_tokens(app, user, "admin")["access_token"],
    }


def users_url(organization):
    return f"/api/v1/organizations/{organization.id}/users"


def clients_url(organization):
    return f"/api/v1/organizations/{organization.id}/clients"


def test_an_org_admin_adds_lists_and_changes_users(client, admin):
    created = client.post(
        users_url(admin["org"]),
        headers=bearer(admin["token"]),
        json={
            "email": "Dara.Sok@Example.org",
            "name": "Dara",
            "roles": ["caseworker"],
            "password": "a long passphrase 1",
        },
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["email"] == "dara.sok@example.org" and body["roles"] == ["caseworker"]
    assert "password" not in body and "password_hash" not in body
    listed = client.get(users_url(admin["org"]), headers=bearer(admin["token"])).get_json()["items"]
    assert {u["email"] for u in listed} == {admin["user"].email, "dara.sok@example.org"}
    changed = client.patch(
        f"{users_url(admin['org'])}/{body['id']}",
        headers=bearer(admin["token"]),
        json={"roles": ["caseworker", "org_admin"], "name": "Dara Sok"},
    )
    assert changed.get_json()["roles"] == ["caseworker", "org_admin"]
    duplicate = client.post(
        users_url(admin["org"]),
        headers=bearer(admin["token"]),
        json={"email": "dara.sok@example.org", "roles": ["caseworker"]},
    )
    assert duplicate.status_code == 409


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"email": "not-an-email", "roles": ["caseworker"]}, {"email"}),
        ({"email": "a@example.org", "roles": ["king"]}, {"roles.0"}),
        ({"email": "a@example.org", "roles": []}, {"roles"}),
        ({"email": "a@example.org", "roles": ["caseworker"], "password": "short"}, {"password"}),
        (
            {"email": "a@example.org", "roles": ["caseworker"], "is_superuser": True},
            {"is_superuser"},
        ),
        ({"email": "a@example.org", "roles": ["caseworker"], "phone": "call me"}, {"phone"}),
    ],
)
def test_bad_user_input_names_the_fields_and_writes_nothing(client, admin, payload, fields):
    response = client.post(users_url(admin["org"]), headers=bearer(admin["token"]), json=payload)
    assert response.status_code == 422
    assert {e["field"] for e in response.get_json()["errors"]} == fields
    listed = client.get(users_url(admin["org"]), headers=bearer(admin["token"])).get_json()["items"]
    assert len(listed) == 1


def test_only_coordinators_grant_coordinator_and_focal_point(app, client, admin):
    for roles, provinces in ((["coordinator"], []), (["focal_point"], ["17"])):
        response = client.post(
            users_url(admin["org"]),
            headers=bearer(admin["token"]),
            json={"email": f"{roles[0]}@example.org", "roles": roles, "provinces": provinces},
        )
        assert response.status_code == 403
    coordinator = make_user(make_org(), roles=["coordinator"])
    token = user_tokens(app, coordinator, "admin")["access_token"]
    missing = client.post(
        users_url(admin["org"]),
        headers=bearer(token),
        json={"email": "fp@example.org", "roles": ["focal_point"]},
    )
    assert missing.status_code == 422 and missing.get_json()["errors"][0]["field"] == "provinces"
    granted = client.post(
        users_url(admin["org"]),
        headers=bearer(token),
        json={"email": "fp@example.org", "roles": ["focal_point"], "provinces": ["17", "02"]},
    )
    assert granted.status_code == 201 and granted.get_json()["provinces"] == ["02", "17"]


def test_a_caseworker_cannot_administer_even_with_the_admin_scope(app, client):
    organization = make_org()
    caseworker = make_user(organization, roles=["caseworker"])
    token = user_tokens(app, caseworker, "admin")["access_token"]
    assert client.get(users_url(organization), headers=bearer(token)).status_code == 403


def test_disabling_a_user_voids_their_tokens(app, client, admin):
    colleague = make_user(admin["org"], roles=["org_admin"])
    tokens = user_tokens(app, colleague, "admin")
    assert (
        client.get(users_url(admin["org"]), headers=bearer(tokens["access_token"])).status_code
        == 200
    )
    disabled = client.patch(
        f"{users_url(admin['org'])}/{colleague.id}",
        headers=bearer(admin["token"]),
        json={"active": False},
    )
    assert disabled.get_json()["active"] is False
    assert (
        client.get(users_url(admin["org"]), headers=bearer(tokens["access_token"])).status_code
        == 401
    )
    refreshed = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert refreshed.status_code in (400, 401)


def test_an_admin_cannot_disable_themself(client, admin):
    response = client.patch(
        f"{users_url(admin['org'])}/{admin['user'].id}",
        headers=bearer(admin["token"]),
        json={"active": False},
    )
    assert response.status_code == 409
    db.session.expire_all()
    assert db.session.get(User, admin["user"].id).active
    assert client.get(users_url(admin["org"]), headers=bearer(admin["token"])).status_code == 200


def test_api_clients_secret_shown_once_and_revocation_voids_tokens(client, admin):
    created = client.post(
        clients_url(admin["org"]),
        headers=bearer(admin["token"]),
        json={"name": "Case system", "scopes": ["directory:read", "referrals:read"]},
    )
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    body = created.get_json()
    assert body["client_secret"] and body["grant_types"] == ["client_credentials"]
    listed = client.get(clients_url(admin["org"]), headers=bearer(admin["token"])).get_json()[
        "items"
    ]
    assert all("client_secret" not in item for item in listed)
    token = client_token(client, body["client_id"], body["client_secret"], "directory:read")
    assert client.get("/api/v1/organizations", headers=bearer(token)).status_code == 200
    revoked = client.patch(
        f"{clients_url(admin['org'])}/{body['client_id']}",
        headers=bearer(admin["token"]),
        json={"revoked": True},
    )
    assert revoked.get_json()["revoked_at"]
    assert client.get("/api/v1/organizations", headers=bearer(token)).status_code == 401
    again = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(body["client_id"], body["client_secret"]),
    )
    assert again.status_code == 401


def test_inconsistent_client_registrations_are_refused(client, admin):
    url, headers = clients_url(admin["org"]), bearer(admin["token"])
    no_redirect = client.post(
        url,
        headers=headers,
        json={"name": "App", "scopes": ["directory:read"], "grant_types": ["authorization_code"]},
    )
    assert (
        no_redirect.status_code == 422
        and no_redirect.get_json()["errors"][0]["field"] == "redirect_uris"
    )
    bad_scope = client.post(url, headers=headers, json={"name": "App", "scopes": ["everything"]})
    assert bad_scope.status_code == 422
    no_keys = client.post(
        url,
        headers=headers,
        json={"name": "App", "scopes": ["directory:read"], "auth_method": "private_key_jwt"},
    )
    assert no_keys.status_code == 422 and no_keys.get_json()["errors"][0]["field"] == "jwks"


def test_coordinators_admit_organisations_and_others_cannot(app, client, partner):
    coordinator = make_user(make_org(), roles=["coordinator"])
    token = user_tokens(app, coordinator, "directory:write directory:read")["access_token"]
    created = client.post(
        "/api/v1/organizations",
        headers=bearer(token),
        json={"name": "Krousar Thmey", "province": "17", "description": "Education"},
    )
    assert created.status_code == 201
    organization_id = created.get_json()["id"]
    assert (
        client.get(f"/api/v1/organizations/{organization_id}", headers=bearer(token)).status_code
        == 200
    )
    duplicate = client.post(
        "/api/v1/organizations", headers=bearer(token), json={"name": "Krousar Thmey"}
    )
    assert duplicate.status_code == 409
    blank = client.post("/api/v1/organizations", headers=bearer(token), json={"name": "   "})
    assert blank.status_code == 422 and blank.get_json()["errors"][0]["field"] == "name"
    bad_province = client.post(
        "/api/v1/organizations", headers=bearer(token), json={"name": "X", "province": "99"}
    )
    assert bad_province.status_code == 422
    refused = client.post(
        "/api/v1/organizations", headers=bearer(partner["token"]), json={"name": "Y"}
    )
    assert refused.status_code == 403


def test_organisations_are_listed_by_name_with_cursor_pages(client, partner):
    for name in ("Alpha", "Bravo", "Charlie"):
        make_org(name)
    names, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(
            "/api/v1/organizations", headers=bearer(partner["token"]), query_string=params
        ).get_json()
        names += [o["name"] for o in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == sorted(names) and {"Alpha", "Bravo", "Charlie"} <= set(names)
    assert len(names) == len(set(names)) == 4
    bad = client.get(
        "/api/v1/organizations", headers=bearer(partner["token"]), query_string={"cursor": "junk"}
    )
    assert bad.status_code == 422
    too_many = client.get(
        "/api/v1/organizations", headers=bearer(partner["token"]), query_string={"limit": 500}
    )
    assert too_many.status_code == 422


def test_a_users_work_phone_is_given_changed_and_cleared(client, admin):
    created = client.post(
        users_url(admin["org"]),
        headers=bearer(admin["token"]),
        json={"email": "vanna@example.org", "roles": ["caseworker"], "phone": "+855 12 345 678"},
    )
    assert created.get_json()["phone"] == "+855 12 345 678"
    url = f"{users_url(admin['org'])}/{created.get_json()['id']}"
    changed = client.patch(url, headers=bearer(admin["token"]), json={"phone": "012 000 111"})
    assert changed.get_json()["phone"] == "012 000 111"
    cleared = client.patch(url, headers=bearer(admin["token"]), json={"phone": None})
    assert cleared.get_json()["phone"] is None
