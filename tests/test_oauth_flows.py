"""OAuth 2 flows end to end with a real HTTP client against the hub served on 127.0.0.1."""

from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from referral_hub import clock
from referral_hub.auth.credentials import digest
from referral_hub.auth.models import OAuthClient
from referral_hub.cli import cli
from referral_hub.extensions import db

from .factories import (
    HTTP,
    PASSWORD,
    REDIRECT_URI,
    client_assertion,
    csrf_from,
    make_client,
    make_org,
    make_user,
    pkce_pair,
)


@pytest.fixture
def interactive(live_server):
    """An organisation with a user and a confidential authorization-code client."""
    organization = make_org()
    user = make_user(organization, roles=["org_admin", "caseworker"])
    client_id, secret = make_client(
        organization,
        ["directory:read", "admin"],
        ["authorization_code", "refresh_token"],
        redirect_uris=[REDIRECT_URI],
    )
    return {
        "org": organization,
        "user": user,
        "client_id": client_id,
        "secret": secret,
        "base": live_server,
    }


def browser_sign_in(base, email):
    browser = HTTP()
    page = browser.get(f"{base}/login")
    response = browser.post(
        f"{base}/login",
        allow_redirects=False,
        data={
            "csrf_token": csrf_from(page.text),
            "email": email,
            "password": PASSWORD,
        },
    )
    assert response.status_code == 302
    return browser


def authorize_query(client_id, challenge, **overrides):
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "directory:read admin",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return urlencode({k: v for k, v in params.items() if v is not None})


def approve(browser, base, query):
    page = browser.get(f"{base}/oauth/authorize?{query}")
    assert page.status_code == 200, page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    response = browser.post(
        f"{base}/oauth/authorize?{query}",
        allow_redirects=False,
        data={"csrf_token": csrf_from(page.text), "decision": "approve"},
    )
    assert response.status_code == 302
    return parse_qs(urlsplit(response.headers["Location"]).query)


def exchange(ctx, code, verifier, redirect_uri=REDIRECT_URI):
    return HTTP().post(
        f"{ctx['base']}/oauth/token",
        auth=(ctx["client_id"], ctx["secret"]),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )


def refresh(ctx, refresh_token):
    return HTTP().post(
        f"{ctx['base']}/oauth/token",
        auth=(ctx["client_id"], ctx["secret"]),
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
    )


def api_get(ctx, token):
    return HTTP().get(
        f"{ctx['base']}/api/v1/organizations/{ctx['org'].id}/users",
        headers={"Authorization": f"Bearer {token}"},
    )


def code_flow(ctx):
    browser = browser_sign_in(ctx["base"], ctx["user"].email)
    verifier, challenge = pkce_pair()
    params = approve(browser, ctx["base"], authorize_query(ctx["client_id"], challenge))
    return params["code"][0], verifier


def test_sign_in_is_required_before_the_approval_page(interactive):
    _, challenge = pkce_pair()
    query = authorize_query(interactive["client_id"], challenge)
    response = HTTP().get(f"{interactive['base']}/oauth/authorize?{query}", allow_redirects=False)
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]


def test_authorization_code_with_pkce_then_refresh_rotation(interactive):
    code, verifier = code_flow(interactive)
    tokens = exchange(interactive, code, verifier).json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 600
    claims = jwt.decode(tokens["access_token"], _jwks(interactive["base"])).claims
    assert claims["sub"] == interactive["user"].id and claims["org"] == interactive["org"].id
    assert set(claims["roles"]) == {"org_admin", "caseworker"}
    assert api_get(interactive, tokens["access_token"]).status_code == 200

    rotated = refresh(interactive, tokens["refresh_token"]).json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert api_get(interactive, rotated["access_token"]).status_code == 200


def test_a_users_token_speaks_for_the_users_organisation_not_the_clients(interactive):
    """A network's shared app, registered by one organisation, used by another's caseworker."""
    other = make_org()
    user = make_user(other, roles=["org_admin", "caseworker"])
    code, verifier = code_flow({**interactive, "user": user})
    tokens = exchange(interactive, code, verifier).json()
    claims = jwt.decode(tokens["access_token"], _jwks(interactive["base"])).claims
    assert (claims["sub"], claims["org"]) == (user.id, other.id)
    assert api_get({**interactive, "org": other}, tokens["access_token"]).status_code == 200


def _jwks(base):
    return KeySet.import_key_set(HTTP().get(f"{base}/.well-known/jwks.json").json())


def test_reusing_a_refresh_token_revokes_the_whole_grant(interactive):
    code, verifier = code_flow(interactive)
    first = exchange(interactive, code, verifier).json()
    second = refresh(interactive, first["refresh_token"]).json()
    replay = refresh(interactive, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert refresh(interactive, second["refresh_token"]).status_code == 400
    assert api_get(interactive, second["access_token"]).status_code == 401
    assert api_get(interactive, first["access_token"]).status_code == 401


def test_an_authorization_code_works_once_and_reuse_revokes_its_tokens(interactive):
    code, verifier = code_flow(interactive)
    tokens = exchange(interactive, code, verifier).json()
    again = exchange(interactive, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert api_get(interactive, tokens["access_token"]).status_code == 401
    assert refresh(interactive, tokens["refresh_token"]).status_code == 400


def test_the_code_verifier_must_match(interactive):
    code, _ = code_flow(interactive)
    other_verifier, _ = pkce_pair()
    response = exchange(interactive, code, other_verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_an_authorization_code_expires_after_ten_minutes(interactive):
    code, verifier = code_flow(interactive)
    clock.freeze(clock.now() + timedelta(minutes=10, seconds=1))
    try:
        response = exchange(interactive, code, verifier)
    finally:
        clock.freeze(None)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},
    ],
)
def test_pkce_is_required_with_s256_only(interactive, overrides):
    browser = browser_sign_in(interactive["base"], interactive["user"].email)
    _, challenge = pkce_pair()
    query = authorize_query(interactive["client_id"], challenge, **overrides)
    response = browser.get(f"{interactive['base']}/oauth/authorize?{query}", allow_redirects=False)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI) and parse_qs(urlsplit(location).query)["error"] == [
        "invalid_request"
    ]


@pytest.mark.parametrize(
    "redirect_uri", [REDIRECT_URI + "/", REDIRECT_URI + "?x=1", "http://evil.example/cb"]
)
def test_redirect_uris_must_match_exactly(interactive, redirect_uri):
    browser = browser_sign_in(interactive["base"], interactive["user"].email)
    _, challenge = pkce_pair()
    query = authorize_query(interactive["client_id"], challenge, redirect_uri=redirect_uri)
    response = browser.get(f"{interactive['base']}/oauth/authorize?{query}", allow_redirects=False)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_denying_the_request_redirects_with_access_denied(interactive):
    browser = browser_sign_in(interactive["base"], interactive["user"].email)
    _, challenge = pkce_pair()
    query = authorize_query(interactive["client_id"], challenge)
    page = browser.get(f"{interactive['base']}/oauth/authorize?{query}")
    response = browser.post(
        f"{interactive['base']}/oauth/authorize?{query}",
        allow_redirects=False,
        data={"csrf_token": csrf_from(page.text), "decision": "deny"},
    )
    assert parse_qs(urlsplit(response.headers["Location"]).query)["error"] == ["access_denied"]


def test_the_approval_form_needs_its_csrf_token(interactive):
    browser = browser_sign_in(interactive["base"], interactive["user"].email)
    _, challenge = pkce_pair()
    query = authorize_query(interactive["client_id"], challenge)
    response = browser.post(
        f"{interactive['base']}/oauth/authorize?{query}",
        allow_redirects=False,
        data={"decision": "approve"},
    )
    assert response.status_code == 403


@pytest.mark.parametrize("response_type", ['code"', "c\u00f6de", "code\\"])
def test_a_malformed_authorization_request_gets_a_page_not_a_crash(interactive, response_type):
    browser = browser_sign_in(interactive["base"], interactive["user"].email)
    _, challenge = pkce_pair()
    query = authorize_query(interactive["client_id"], challenge, response_type=response_type)
    response = browser.get(f"{interactive['base']}/oauth/authorize?{query}", allow_redirects=False)
    assert response.status_code in (302, 400)
    assert "access_token" not in response.headers.get("Location", "")


def test_no_implicit_and_no_password_grant(interactive):
    browser = browser_sign_in(interactive["base"], interactive["user"].email)
    _, challenge = pkce_pair()
    query = authorize_query(interactive["client_id"], challenge, response_type="token")
    implicit = browser.get(f"{interactive['base']}/oauth/authorize?{query}", allow_redirects=False)
    assert implicit.status_code in (302, 400)
    assert "access_token" not in implicit.headers.get("Location", "") + implicit.text
    password = HTTP().post(
        f"{interactive['base']}/oauth/token",
        auth=(interactive["client_id"], interactive["secret"]),
        data={
            "grant_type": "password",
            "username": interactive["user"].email,
            "password": PASSWORD,
        },
    )
    assert password.status_code == 400 and password.json()["error"] == "unsupported_grant_type"


def test_client_credentials_scopes_not_allowed_are_refused_not_dropped(live_server):
    organization = make_org()
    client_id, secret = make_client(organization, ["directory:read"])
    response = HTTP().post(
        f"{live_server}/oauth/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "scope": "directory:read referrals:write"},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    assert response.headers["Content-Type"] == "application/problem+json"


def test_client_secrets_are_stored_hashed(live_server):
    organization = make_org()
    client_id, secret = make_client(organization)
    row = db.session.scalar(db.select(OAuthClient).filter_by(client_id=client_id))
    assert row.secret_hash == digest(secret) and secret not in row.secret_hash


def test_revocation_and_introspection(live_server):
    organization = make_org()
    client_id, secret = make_client(organization)
    other_id, other_secret = make_client(make_org())
    token = (
        HTTP()
        .post(
            f"{live_server}/oauth/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials"},
        )
        .json()["access_token"]
    )

    def introspect(auth):
        return (
            HTTP().post(f"{live_server}/oauth/introspect", auth=auth, data={"token": token}).json()
        )

    active = introspect((client_id, secret))
    assert (
        active["active"] is True
        and active["client_id"] == client_id
        and active["org"] == organization.id
    )
    assert introspect((other_id, other_secret)) == {"active": False}
    revoked = HTTP().post(
        f"{live_server}/oauth/revoke", auth=(client_id, secret), data={"token": token}
    )
    assert revoked.status_code == 200
    assert introspect((client_id, secret)) == {"active": False}
    api = HTTP().get(
        f"{live_server}/api/v1/organizations", headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code == 401


def test_metadata_and_jwks(live_server):
    metadata = HTTP().get(f"{live_server}/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == live_server
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "password" not in metadata["grant_types_supported"]
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    keys = HTTP().get(metadata["jwks_uri"]).json()["keys"]
    assert keys and all("d" not in key and key["kty"] == "RSA" for key in keys)


def test_key_rotation_keeps_old_tokens_valid_and_publishes_both_keys(app, live_server):
    organization = make_org()
    client_id, secret = make_client(organization)

    def token():
        return (
            HTTP()
            .post(
                f"{live_server}/oauth/token",
                auth=(client_id, secret),
                data={"grant_type": "client_credentials"},
            )
            .json()["access_token"]
        )

    before = token()
    result = CliRunner().invoke(cli, ["keys", "rotate"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    after = token()
    kids = {key["kid"] for key in HTTP().get(f"{live_server}/.well-known/jwks.json").json()["keys"]}
    header_kid = jwt.decode(after, _jwks(live_server)).header["kid"]
    assert header_kid in kids and len(kids) >= 2
    assert jwt.decode(before, _jwks(live_server)).header["kid"] != header_kid
    for access_token in (before, after):
        api = HTTP().get(
            f"{live_server}/api/v1/organizations",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        assert api.status_code == 200


def test_private_key_jwt_client_authentication(live_server):
    organization = make_org()
    key = RSAKey.generate_key(2048, private=True, parameters={"kid": "partner-1", "alg": "RS256"})
    client_id, secret = make_client(
        organization, auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]}
    )
    assert secret is None

    def request_token(signed):
        return HTTP().post(
            f"{live_server}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": signed,
            },
        )

    signed = client_assertion(client_id, f"{live_server}/oauth/token", key)
    assert request_token(signed).status_code == 200
    replay = request_token(signed)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"
    stranger = RSAKey.generate_key(2048, private=True, parameters={"kid": "partner-1"})
    forged = client_assertion(client_id, f"{live_server}/oauth/token", stranger)
    assert request_token(forged).json()["error"] == "invalid_client"
