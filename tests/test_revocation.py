"""Revoked tokens are refused at once where they were revoked, and soon everywhere else.

The hub runs with production's REVOCATION_CACHE_SECONDS here: each process keeps a copy of
the deny-list and reads it again every few seconds, and the process that revokes a token
adds it to its own copy at once.
"""

import threading
import time
from datetime import timedelta

import pytest

from referral_hub import clock, create_app
from referral_hub.auth import revocation
from referral_hub.auth.models import RefreshToken
from referral_hub.auth.revocation import deny_list
from referral_hub.auth.tokens import decode
from referral_hub.extensions import db

from .conftest import hub_config
from .factories import (
    bearer,
    client_token,
    make_client,
    make_org,
    make_user,
    user_grant,
    user_tokens,
)

API_ROUTE = "/api/v1/organizations"


@pytest.fixture(scope="module")
def other_process(app, database_url, live_port):
    """A second hub on the same database, with its own deny-list: another web process."""
    other = create_app(hub_config(database_url, live_port))
    yield other.test_client()
    with other.app_context():
        db.engine.dispose()


def revoke_access_token(app, client, organization):
    credentials = make_client(organization)
    token = client_token(client, *credentials, "directory:read")
    return token, lambda: client.post("/oauth/revoke", data={"token": token}, auth=credentials)


def revoke_grant(app, client, organization):
    credentials, issued = user_grant(app, make_user(organization), "directory:read")
    refresh_token = issued["refresh_token"]
    return issued["access_token"], lambda: client.post(
        "/oauth/revoke", data={"token": refresh_token}, auth=credentials
    )


def admin_token(app, organization):
    return user_tokens(app, make_user(organization, roles=["org_admin"]), "admin")["access_token"]


def deactivate_user(app, client, organization):
    user = make_user(organization)
    token = user_tokens(app, user, "directory:read")["access_token"]
    admin = admin_token(app, organization)
    return token, lambda: client.patch(
        f"/api/v1/organizations/{organization.id}/users/{user.id}",
        json={"active": False},
        headers=bearer(admin),
    )


def revoke_client(app, client, organization):
    client_id, secret = make_client(organization)
    token = client_token(client, client_id, secret, "directory:read")
    admin = admin_token(app, organization)
    return token, lambda: client.patch(
        f"/api/v1/organizations/{organization.id}/clients/{client_id}",
        json={"revoked": True},
        headers=bearer(admin),
    )


@pytest.mark.parametrize(
    "revoke", [revoke_access_token, revoke_grant, deactivate_user, revoke_client]
)
def test_a_revoked_token_is_refused_at_once_here_and_within_the_cache_period_elsewhere(
    app, client, other_process, revoke
):
    max_age = app.config["REVOCATION_CACHE_SECONDS"]
    assert max_age == 5  # production's setting, not 0
    token, revoke_it = revoke(app, client, make_org())
    # Both processes have just read the deny-list and accept the token.
    assert client.get(API_ROUTE, headers=bearer(token)).status_code == 200
    assert other_process.get(API_ROUTE, headers=bearer(token)).status_code == 200

    assert revoke_it().status_code == 200
    revoked_at = time.monotonic()
    refused = client.get(API_ROUTE, headers=bearer(token))
    assert refused.status_code == 401 and "revoked" in refused.get_json()["detail"]

    while other_process.get(API_ROUTE, headers=bearer(token)).status_code != 401:
        assert time.monotonic() - revoked_at < max_age + 1, "another process kept the token"
        time.sleep(0.2)


def test_a_revocation_is_kept_when_another_request_reads_the_deny_list_before_its_commit(
    app, client, partner
):
    """A request of this process reloading the deny-list between a revocation's flush and its
    commit does not see the row yet; the revoking process must still refuse the token."""
    claims = decode(partner["token"])
    assert client.get(API_ROUTE, headers=bearer(partner["token"])).status_code == 200
    revocation.revoke(f"jti:{claims['jti']}")  # flushed, not committed yet
    max_age, app.config["REVOCATION_CACHE_SECONDS"] = app.config["REVOCATION_CACHE_SECONDS"], 0
    try:
        seen = []

        def another_request():
            with app.app_context():
                seen.append(deny_list().is_revoked(claims))
                db.session.remove()

        thread = threading.Thread(target=another_request)
        thread.start()
        thread.join(30)
        db.session.commit()
        assert seen == [True]
        assert deny_list().is_revoked(claims)
    finally:
        app.config["REVOCATION_CACHE_SECONDS"] = max_age


def _reloaded(other_process):
    """The other process's next request reads the deny-list from the database afresh."""
    other_process.application.extensions["hub_deny_list"].clear()
    return other_process


def test_a_revocation_outlives_the_tokens_it_voids(app, client, other_process):
    """Read from the database, a revoked token stays refused until it would have expired,
    clock skew included."""
    token, revoke_it = revoke_access_token(app, client, make_org())
    assert revoke_it().status_code == 200
    lifetime = timedelta(seconds=app.config["ACCESS_TOKEN_LIFETIME"] + 30)
    clock.freeze(clock.now() + lifetime)
    try:
        assert _reloaded(other_process).get(API_ROUTE, headers=bearer(token)).status_code == 401
    finally:
        clock.freeze(None)


def test_a_second_revocation_voids_the_tokens_issued_since_the_first(app, client, other_process):
    """Each change to a user's roles voids their tokens issued until then, everywhere."""
    organization = make_org()
    user = make_user(organization)
    admin = admin_token(app, organization)
    path = f"/api/v1/organizations/{organization.id}/users/{user.id}"

    def change_roles():
        response = client.patch(path, json={"roles": ["caseworker"]}, headers=bearer(admin))
        assert response.status_code == 200, response.get_json()

    change_roles()
    time.sleep(1.1)  # token times are whole seconds; one of the same second is void too
    token = user_tokens(app, user, "directory:read")["access_token"]
    assert _reloaded(other_process).get(API_ROUTE, headers=bearer(token)).status_code == 200
    change_roles()
    assert _reloaded(other_process).get(API_ROUTE, headers=bearer(token)).status_code == 401


def test_deactivating_a_user_voids_their_refresh_tokens_and_no_one_elses(app, client):
    """Void for good: they stay refused when the user is active again."""
    organization = make_org()
    leaving, staying = make_user(organization), make_user(organization)
    grants = [
        (user_grant(app, user, "directory:read"), status)
        for user, status in ((leaving, 400), (staying, 200))
    ]
    admin = admin_token(app, organization)
    for active in (False, True):
        response = client.patch(
            f"/api/v1/organizations/{organization.id}/users/{leaving.id}",
            json={"active": active},
            headers=bearer(admin),
        )
        assert response.status_code == 200, response.get_json()
    for (credentials, issued), status in grants:
        data = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
        assert client.post("/oauth/token", data=data, auth=credentials).status_code == status


def test_a_later_revocation_by_another_process_outranks_this_ones_own(
    app, client, other_process, monkeypatch
):
    """This process revoked a user's tokens; another revokes them again later. The later
    one counts here too, though this process still holds its own earlier one."""
    user = make_user(make_org())
    revocation.revoke(f"user:{user.id}")
    db.session.commit()
    time.sleep(1.1)  # token times are whole seconds
    token = user_tokens(app, user, "directory:read")["access_token"]
    with other_process.application.app_context():
        revocation.revoke(f"user:{user.id}")
        db.session.commit()
    monkeypatch.setitem(app.config, "REVOCATION_CACHE_SECONDS", 0)
    assert client.get(API_ROUTE, headers=bearer(token)).status_code == 401


def test_a_refresh_token_keeps_the_moment_it_was_first_revoked(app, moved_clock):
    """A second revocation (the user disabled again) does not move the first one's moment,
    which says since when the token has been void."""
    user = make_user(make_org())
    user_tokens(app, user, "directory:read")
    revocation.revoke_refresh_tokens(RefreshToken.user_id == user.id)
    first = db.session.scalar(db.select(RefreshToken.revoked_at))
    moved_clock(3600)
    revocation.revoke_refresh_tokens(RefreshToken.user_id == user.id)
    assert db.session.scalar(db.select(RefreshToken.revoked_at)) == first
