"""Bearer tokens and client credentials that anyone can send without signing in.

Malformed tokens are a plain 401, unknown key ids cost no key reload, and the token,
revocation and introspection endpoints give one answer for an unknown client and for a
known one with wrong credentials, so client ids cannot be enumerated.
"""

import base64
import json
import math
import time
import uuid

import pytest
from joserfc import jws, jwt

from referral_hub import create_app
from referral_hub.auth import keys
from referral_hub.extensions import db

from . import tokens
from .conftest import hub_config
from .factories import bearer, client_assertion, client_token, make_client, make_org

API_ROUTE = "/api/v1/organizations"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64(data):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_with(header, claims):
    """A token whose header says what the test wants, with a signature nobody checks first."""
    return f"{b64(header)}.{b64(claims)}.{b64(b'not a signature')}"


def malformed_tokens(app, organization_id):
    claims = tokens.claims_for(app, organization_id, "directory:read")
    kid = keys.key_cache().signing_key().kid
    good_header = {"alg": "RS256", "typ": "at+jwt", "kid": kid}
    signing_key = keys.key_cache().signing_key()
    return {
        "bad base64": "!!!.@@@.###",
        "header not JSON": f"{b64(b'not json')}.{b64(claims)}.c2ln",
        "header a list": unsigned_with([1, 2], claims),
        "header a string": unsigned_with("at+jwt", claims),
        "typ an integer": unsigned_with({**good_header, "typ": 1}, claims),
        "typ a list": unsigned_with({**good_header, "typ": ["at+jwt"]}, claims),
        "typ null": unsigned_with({**good_header, "typ": None}, claims),
        "alg none": tokens.unsigned(claims),
        "alg an integer": unsigned_with({**good_header, "alg": 1}, claims),
        "kid an integer": unsigned_with({**good_header, "kid": 1}, claims),
        "kid a list": unsigned_with({**good_header, "kid": [kid]}, claims),
        "kid an object": unsigned_with({**good_header, "kid": {"kid": kid}}, claims),
        "kid huge": unsigned_with({**good_header, "kid": "k" * 5000}, claims),
        "claims a list": jws.serialize_compact(good_header, b"[1, 2]", signing_key),
        "claims not JSON": jws.serialize_compact(good_header, b"claims", signing_key),
        "one part": b64(good_header),
        "two parts": f"{b64(good_header)}.{b64(claims)}",
        "four parts": tokens.signed(claims) + ".extra",
        "five parts (JWE)": "a.b.c.d.e",
        "empty parts": "..",
        "huge": f"{b64(good_header)}.{'A' * 200_000}.c2ln",
        "NUL": tokens.signed(claims)[:40] + "\x00" + tokens.signed(claims)[41:],
        "non-ASCII": f"{b64(good_header)}.{b64(claims)}.s\u00efgn\u00e9",
        "non-ASCII header": "\u00e9\u00e9\u00e9.\u00e9\u00e9\u00e9.\u00e9\u00e9\u00e9",
    }


def test_every_malformed_bearer_token_is_a_plain_401(app, client, partner):
    for name, token in malformed_tokens(app, partner["org"].id).items():
        response = client.get(API_ROUTE, headers=bearer(token))
        assert response.status_code == 401, (name, response.get_json())
        assert response.mimetype == "application/problem+json", name
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], name


def test_introspection_and_revocation_of_a_malformed_token_answer_without_error(
    app, client, partner
):
    auth = (partner["client_id"], partner["secret"])
    for name, token in malformed_tokens(app, partner["org"].id).items():
        for hint in (None, "access_token", "refresh_token"):
            data = {"token": token, **({"token_type_hint": hint} if hint else {})}
            introspected = client.post("/oauth/introspect", data=data, auth=auth)
            assert introspected.status_code == 200, (name, hint, introspected.get_json())
            assert introspected.get_json() == {"active": False}, (name, hint)
            revoked = client.post("/oauth/revoke", data=data, auth=auth)
            assert revoked.status_code == 200, (name, hint, revoked.get_json())


def signing_key_reads(statements):
    return [s for s in statements if "signing_keys" in s]


def test_unknown_key_ids_cost_at_most_one_key_reload(app, client, partner, statements, monkeypatch):
    """Anyone can name a kid; inventing them must not make the hub reload and decrypt keys."""
    claims = tokens.claims_for(app, partner["org"].id, "directory:read")
    stranger = tokens.stranger_key()
    assert client.get(API_ROUTE, headers=bearer(partner["token"])).status_code == 200
    decrypted = []
    to_jwk = keys._to_jwk

    def counting_to_jwk(row):
        decrypted.append(row.kid)
        return to_jwk(row)

    monkeypatch.setattr(keys, "_to_jwk", counting_to_jwk)
    statements.clear()
    for _ in range(25):
        header = {"alg": "RS256", "typ": "at+jwt", "kid": uuid.uuid4().hex}
        response = client.get(API_ROUTE, headers=bearer(tokens.signed(claims, stranger, header)))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert len([sql for sql in statements if "signing_keys" in sql]) <= 1
    assert decrypted == []
    assert client.get(API_ROUTE, headers=bearer(partner["token"])).status_code == 200


def _rotated_by_another_process(partner, database_url, live_port):
    """Another hub process on this database rotates the signing key and issues a token with it:
    (the new kid, that token)."""
    other = create_app(hub_config(database_url, live_port))
    with other.app_context():
        new_kid = keys.rotate().kid
        token = client_token(
            other.test_client(), partner["client_id"], partner["secret"], "directory:read"
        )
        db.engine.dispose()
    assert jws.extract_compact(token.encode()).headers()["kid"] == new_kid
    return new_kid, token


def test_a_key_rotated_by_another_process_is_used_within_the_reload_period(
    app, client, partner, database_url, live_port, monkeypatch
):
    """Even right after an unknown kid was refused, a new key is picked up within the period."""
    monkeypatch.setattr(keys, "RELOAD_SECONDS", 1)
    claims = tokens.claims_for(app, partner["org"].id, "directory:read")
    header = {"alg": "RS256", "typ": "at+jwt", "kid": "no-such-kid"}
    forged = tokens.signed(claims, key=tokens.stranger_key(), header=header)
    assert client.get(API_ROUTE, headers=bearer(forged)).status_code == 401
    new_kid, token = _rotated_by_another_process(partner, database_url, live_port)
    deadline = time.monotonic() + 2 * keys.RELOAD_SECONDS + 1
    while client.get(API_ROUTE, headers=bearer(token)).status_code != 200:
        assert time.monotonic() < deadline, "the rotated key was not picked up in time"
        time.sleep(0.1)
    assert keys.key_cache().signing_key().kid == new_kid


def test_a_key_rotated_by_another_process_is_used_at_once(
    app, client, partner, database_url, live_port, monkeypatch
):
    """The first token naming a key this process has not read makes it read the keys again,
    when no unknown kid has been looked for within the reload period."""
    assert client.get(API_ROUTE, headers=bearer(partner["token"])).status_code == 200
    monkeypatch.setattr(keys.key_cache(), "_looked_for_kid_at", -math.inf)
    _, token = _rotated_by_another_process(partner, database_url, live_port)
    assert client.get(API_ROUTE, headers=bearer(token)).status_code == 200


VOLATILE_HEADERS = {"Date", "X-Request-ID"}
CLIENT_ENDPOINTS = {
    "/oauth/token": {"grant_type": "client_credentials"},
    "/oauth/revoke": {"token": "some-token"},
    "/oauth/introspect": {"token": "some-token"},
}


def token_endpoint(app):
    return f"{app.config['HUB_ISSUER']}/oauth/token"


def credentials(app, method, client_id):
    """Form fields and Basic auth a client sends with `method`, its secret always wrong."""
    if method == "client_secret_basic":
        return {}, (client_id, "wrong-secret")
    if method == "client_secret_post":
        return {"client_id": client_id, "client_secret": "wrong-secret"}, None
    if method == "private_key_jwt":
        signed = client_assertion(client_id, token_endpoint(app), tokens.stranger_key())
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}, None
    return {"client_id": client_id}, None


def answer(response):
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    return response.status_code, response.get_json(), headers


@pytest.mark.parametrize(
    "method", ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
)
@pytest.mark.parametrize("endpoint", sorted(CLIENT_ENDPOINTS))
def test_an_unknown_client_and_a_wrong_credential_get_the_same_answer(
    app, client, endpoint, method
):
    registered_as = "client_secret_basic" if method == "none" else method
    jwks = {"keys": [tokens.stranger_key().as_dict(private=False)]}
    known, _ = make_client(
        make_org(),
        auth_method=registered_as,
        jwks=jwks if registered_as == "private_key_jwt" else None,
    )
    answers = []
    for client_id in (known, f"unknown-{uuid.uuid4().hex[:12]}"):
        form, auth = credentials(app, method, client_id)
        response = client.post(endpoint, data={**CLIENT_ENDPOINTS[endpoint], **form}, auth=auth)
        answers.append(answer(response))
    assert answers[0] == answers[1]
    status, body, headers = answers[0]
    assert status == 401 and body["error"] == "invalid_client"
    assert headers["WWW-Authenticate"].startswith("Basic ")


def malformed_assertions(app, client_id, key):
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint(app),
        "exp": int(time.time()) + 60,
        "jti": uuid.uuid4().hex,
    }
    header = {"alg": "RS256", "kid": key.kid}
    return {
        "bad base64": "!!!.@@@.###",
        "header a list": unsigned_with([1], claims),
        "claims a list": unsigned_with(header, [1]),
        "sub a list": unsigned_with(header, {**claims, "sub": [client_id]}),
        "alg with a quote": unsigned_with({**header, "alg": 'RS"256'}, claims),
        "alg non-ASCII": unsigned_with({**header, "alg": "RS\u00e9"}, claims),
        "crit with a quote": unsigned_with({**header, "crit": ['x"y'], 'x"y': 1}, claims),
        "kid a list": unsigned_with({**header, "kid": [key.kid]}, claims),
        "exp a string": jwt.encode(header, {**claims, "exp": "soon"}, key),
        "wrong audience": jwt.encode(header, {**claims, "aud": 'https://"elsewhere'}, key),
        "two parts": f"{b64(header)}.{b64(claims)}",
    }


def test_every_malformed_client_assertion_is_invalid_client(app, client):
    key = tokens.stranger_key()
    jwks = {"keys": [key.as_dict(private=False)]}
    for name in malformed_assertions(app, "any", key):
        # a client each: five failures would lock one client out (429)
        client_id, _ = make_client(make_org(), auth_method="private_key_jwt", jwks=jwks)
        assertion = malformed_assertions(app, client_id, key)[name]
        for endpoint, form in CLIENT_ENDPOINTS.items():
            data = {**form, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
            response = client.post(endpoint, data=data)
            assert response.status_code == 401, (name, endpoint, response.get_json())
            assert response.get_json()["error"] == "invalid_client", (name, endpoint)
