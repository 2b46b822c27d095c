"""Every protected route refuses every kind of bad token with the right problem."""

import time
import uuid

import pytest

from . import tokens
from .factories import bearer, client_token, make_client, make_org, make_user, user_tokens

PROTECTED_METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}


def protected_routes(app):
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "required_scope", None), f"{rule.rule} is not protected"
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<uuid:{argument}>", str(uuid.uuid4())).replace(
                f"<{argument}>", "x"
            )
        for method in sorted(rule.methods & PROTECTED_METHODS):
            routes.append((method, path, view.required_scope))
    return routes


def bad_tokens(app, organization_id, real_token, scope):
    claims = tokens.claims_for(app, organization_id, scope)
    now = int(time.time())
    return {
        "malformed": "not-a-token",
        "expired": tokens.signed({**claims, "iat": now - 900, "exp": now - 600}),
        "unknown_key": tokens.signed(claims, key=tokens.stranger_key()),
        "alg_none": tokens.unsigned(claims),
        "wrong_audience": tokens.signed({**claims, "aud": "https://another-hub.example/api"}),
        "wrong_issuer": tokens.signed({**claims, "iss": "https://another-hub.example"}),
        "not_an_access_token": tokens.signed(claims, header={"alg": "RS256", "typ": "JWT"}),
        "revoked": real_token,
    }


def test_every_api_route_refuses_bad_tokens(app, client, partner):
    every_scope = " ".join(app.config["SCOPES"])
    revoked = client.post(
        "/oauth/revoke",
        data={"token": partner["token"]},
        auth=(partner["client_id"], partner["secret"]),
    )
    assert revoked.status_code == 200
    cases = bad_tokens(app, partner["org"].id, partner["token"], every_scope)
    routes = protected_routes(app)
    assert len(routes) >= 9
    for method, path, _scope in routes:
        response = client.open(path, method=method)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        for name, token in cases.items():
            response = client.open(path, method=method, headers=bearer(token), json={})
            assert response.status_code == 401, (name, method, path, response.get_json())
            assert response.mimetype == "application/problem+json"
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], name


def test_every_api_route_refuses_a_token_without_its_scope(app, client):
    organization = make_org()
    tokens_without = {}
    for scope in app.config["SCOPES"]:
        others = [s for s in app.config["SCOPES"] if s != scope]
        client_id, secret = make_client(organization, others)
        tokens_without[scope] = client_token(client, client_id, secret, " ".join(others))
    for method, path, scope in protected_routes(app):
        response = client.open(path, method=method, headers=bearer(tokens_without[scope]), json={})
        assert response.status_code == 403, (method, path)
        assert response.get_json()["required_scope"] == scope
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path", ["/users", "/clients"])
def test_another_organisations_admin_gets_404(app, client, path):
    ours, theirs = make_org(), make_org()
    admin = make_user(ours, roles=["org_admin"])
    token = user_tokens(app, admin, "admin")["access_token"]
    assert (
        client.get(f"/api/v1/organizations/{ours.id}{path}", headers=bearer(token)).status_code
        == 200
    )
    response = client.get(f"/api/v1/organizations/{theirs.id}{path}", headers=bearer(token))
    assert response.status_code == 404
    assert theirs.name not in response.get_data(as_text=True)
