"""Issue and verify RFC 9068 JWT access tokens without a database read."""

import time

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import current_app, g
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..errors import Unauthorized
from . import keys
from .revocation import deny_list

TOKEN_TYPE = "at+jwt"
TOKEN_TYPES = {TOKEN_TYPE, f"application/{TOKEN_TYPE}"}
MAX_TOKEN_LENGTH = 8192  # the hub's own tokens are about 1 KB


class AccessTokenGenerator(JWTBearerTokenGenerator):
    """Authlib's generator with our key, audience and organisation claims."""

    def get_jwks(self):
        return KeySet([keys.key_cache().signing_key()])

    def get_audiences(self, client, user, scope):
        return current_app.config["HUB_AUDIENCE"]

    def get_extra_claims(self, client, grant_type, user, scope):
        claims = {"org": user.organization_id if user else client.organization_id}
        if user:
            claims["roles"] = user.roles
            if user.provinces:
                claims["provinces"] = user.provinces
        if g.get("oauth_grant_id"):
            claims["gid"] = g.oauth_grant_id
        return claims


class AccessToken:
    """A verified access token, in the shape Authlib's revocation and introspection expect."""

    kind = "access_token"

    def __init__(self, claims):
        self.claims = claims

    def check_client(self, client):
        return client.client_id == self.claims["client_id"]

    def is_expired(self):
        return self.claims["exp"] <= time.time()

    def is_revoked(self):
        return deny_list().is_revoked(self.claims)


def _key_id(token_string):
    """The kid of a token whose header says it is an access token, or raise Unauthorized."""
    if len(token_string) > MAX_TOKEN_LENGTH:
        raise Unauthorized("The token is too long to be an access token.")
    header = jws.extract_compact(token_string.encode()).headers()
    typ, kid = header.get("typ"), header.get("kid")
    if not isinstance(typ, str) or typ.lower() not in TOKEN_TYPES:
        raise Unauthorized("The token is not an access token.")
    if not isinstance(kid, str):
        raise Unauthorized("The token does not name its signing key.")
    return kid


def decode(token_string):
    """Return the claims of a token this hub signed for its API, or raise Unauthorized."""
    config = current_app.config
    try:
        keyset = keys.key_cache().verification_keys(kid=_key_id(token_string))
        token = jwt.decode(token_string, keyset, algorithms=[keys.ALGORITHM])
        registry = jwt.JWTClaimsRegistry(
            leeway=30,
            iss={"essential": True, "value": config["HUB_ISSUER"]},
            aud={"essential": True, "value": config["HUB_AUDIENCE"]},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
            sub={"essential": True},
            client_id={"essential": True},
            org={"essential": True},
        )
        registry.validate(token.claims)
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise Unauthorized("The access token is invalid or has expired.") from exc
    return dict(token.claims)


def verify(token_string):
    """Decode a bearer token and refuse it when revoked."""
    claims = decode(token_string)
    if deny_list().is_revoked(claims):
        raise Unauthorized("The access token has been revoked.")
    return claims
