"""Logs are JSON lines with a request id and never carry a credential."""

import json

from referral_hub.logs import scrub

from .factories import PASSWORD, bearer, csrf_from, make_client, make_org, make_user


def test_scrub_removes_credentials():
    line = (
        "Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2ln client_secret=s3cr3t&password=hunter2 "
        "refresh_token=abc whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    )
    cleaned = scrub(line)
    for secret in ("eyJhbGciOi", "s3cr3t", "hunter2", "abc", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"):
        assert secret not in cleaned


def test_no_token_secret_or_password_reaches_the_logs(app, client, log_lines):
    user = make_user(make_org())
    client_id, secret = make_client(make_org())
    token_response = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    token = token_response.get_json()["access_token"]
    client.get("/api/v1/organizations", headers=bearer(token))
    client.get("/api/v1/organizations", headers=bearer(token + "tampered"))
    page = client.get("/login").get_data(as_text=True)
    client.post(
        "/login",
        data={"csrf_token": csrf_from(page), "email": user.email, "password": PASSWORD + "x"},
    )
    app.logger.info(
        "debugging a request with Authorization: Bearer %s and secret=%s", token, secret
    )
    logged = log_lines.getvalue()
    assert len(logged.splitlines()) >= 2, "expected the hub and Authlib to log"
    for value in (token, secret, PASSWORD, token.split(".")[1]):
        assert value not in logged
    for line in logged.splitlines():
        entry = json.loads(line)
        assert entry["level"] and "message" in entry
