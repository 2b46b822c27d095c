"""Tokens are verified from memory; retired keys leave the JWKS once their tokens expire."""

from datetime import timedelta

from referral_hub import clock
from referral_hub.auth import keys, tokens

from .factories import client_token, make_client, make_org


def test_a_token_is_verified_without_a_database_read(app, client, statements):
    client_id, secret = make_client(make_org())
    token = client_token(client, client_id, secret, "directory:read")
    tokens.verify(token)
    statements.clear()
    claims = tokens.verify(token)
    assert claims["client_id"] == client_id
    assert statements == []


def test_a_retired_key_leaves_the_jwks_after_its_tokens_expire(app):
    retired = keys.key_cache().signing_key().kid
    keys.rotate()
    assert retired in {key["kid"] for key in keys.jwks()["keys"]}
    lifetime = timedelta(seconds=app.config["ACCESS_TOKEN_LIFETIME"] + 1)
    clock.freeze(clock.now() + lifetime + keys.PUBLISH_LEEWAY)
    try:
        keys.key_cache().clear()
        published = {key["kid"] for key in keys.jwks()["keys"]}
    finally:
        clock.freeze(None)
        keys.key_cache().clear()
    assert retired not in published and len(published) == 1
