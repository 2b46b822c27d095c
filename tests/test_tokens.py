"""Tokens are verified from memory; retired keys leave the JWKS once their tokens expire."""

from datetime import timedelta

import pytest

from referral_hub import clock
from referral_hub.auth import keys, tokens
from referral_hub.errors import Unauthorized

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


def _partner_token(client):
    client_id, secret = make_client(make_org())
    return client_token(client, client_id, secret, "directory:read")


def test_a_verified_token_is_not_checked_again_until_it_expires(app, client, monkeypatch):
    token = _partner_token(client)
    checked = []
    check = tokens.jwt.decode
    monkeypatch.setattr(
        tokens.jwt, "decode", lambda *args, **kw: checked.append(1) or check(*args, **kw)
    )
    first, again = tokens.verify(token), tokens.verify(token)
    assert first == again and checked == [1]
    again["org"] = "changed by a caller"
    assert tokens.verify(token)["org"] == first["org"]
    later = first["exp"] + 31  # past the leeway
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    with pytest.raises(Unauthorized):
        tokens.verify(token)


def test_a_verified_token_whose_key_is_no_longer_published_is_refused(app, client):
    token = _partner_token(client)
    tokens.verify(token)
    keys.rotate()
    lifetime = timedelta(seconds=app.config["ACCESS_TOKEN_LIFETIME"] + 1)
    clock.freeze(clock.now() + lifetime + keys.PUBLISH_LEEWAY)
    try:
        keys.key_cache().clear()
        with pytest.raises(Unauthorized):
            tokens.verify(token)
    finally:
        clock.freeze(None)
        keys.key_cache().clear()


def test_the_verified_tokens_kept_are_bounded():
    kept = tokens.VerifiedTokens(size=2)
    for name in ("a", "b", "c"):
        kept.put(name, "kid", {"exp": 1})
    assert list(kept._entries) == ["b", "c"]
