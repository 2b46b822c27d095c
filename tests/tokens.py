"""Tokens forged with the hub's own key or another, for the tests that must refuse them."""

import base64
import json
import time
import uuid

from joserfc import jwt
from joserfc.jwk import RSAKey

from referral_hub.auth import keys


def claims_for(app, organization_id, scope, **overrides):
    now = int(time.time())
    claims = {
        "iss": app.config["HUB_ISSUER"],
        "aud": app.config["HUB_AUDIENCE"],
        "sub": "forged-client",
        "client_id": "forged-client",
        "org": organization_id,
        "scope": scope,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def signed(claims, key=None, header=None):
    key = key or keys.key_cache().signing_key()
    return jwt.encode(header or {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}, claims, key)


def unsigned(claims):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part(claims)}."


def stranger_key():
    return RSAKey.generate_key(2048, private=True, parameters={"kid": "stranger"})
