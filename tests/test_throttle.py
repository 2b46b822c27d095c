"""Repeated failed sign-ins and token requests are slowed, then refused with 429."""

from .factories import PASSWORD, csrf_from, make_client, make_org, make_user


def test_failed_sign_ins_lock_the_account_for_a_while(app, client):
    user = make_user(make_org())
    token = csrf_from(client.get("/login").get_data(as_text=True))
    for _ in range(app.config["THROTTLE_MAX_FAILURES"]):
        wrong = client.post(
            "/login", data={"csrf_token": token, "email": user.email, "password": "wrong guess"}
        )
        assert wrong.status_code == 401
    locked = client.post(
        "/login", data={"csrf_token": token, "email": user.email, "password": PASSWORD}
    )
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    other = make_user(make_org())
    assert (
        client.post(
            "/login", data={"csrf_token": token, "email": other.email, "password": PASSWORD}
        ).status_code
        == 302
    )


def test_failed_token_requests_lock_the_client(app, client):
    client_id, secret = make_client(make_org())
    for _ in range(app.config["THROTTLE_MAX_FAILURES"]):
        assert (
            client.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "wrong")
            ).status_code
            == 401
        )
    locked = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert locked.status_code == 429
    assert locked.mimetype == "application/problem+json" and locked.headers["Retry-After"]


def test_failed_client_assertions_count_too(app, client):
    client_id, _ = make_client(
        make_org(),
        auth_method="private_key_jwt",
        jwks={"keys": [{"kty": "RSA", "kid": "k", "n": "sXch" * 64, "e": "AQAB"}]},
    )
    for _ in range(app.config["THROTTLE_MAX_FAILURES"]):
        client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "e30.e30.c2ln",
            },
        )
    locked = client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id}
    )
    assert locked.status_code == 429


def test_the_login_form_needs_its_csrf_token(client):
    user = make_user(make_org())
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 403
