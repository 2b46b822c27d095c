"""Issue and verify RFC 9068 JWT access tokens without a database read."""

import threading
import time
from collections import OrderedDict

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
VERIFIED_TOKENS_KEPT = 4096  # about 8 MB at most


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


class VerifiedTokens:
    """The claims of access tokens this process has verified, kept until the tokens expire.

    Checking a token's RS256 signature and claims again on every request was about 170 µs, a
    fifth of a service read's Python time. A verified token stays valid until its exp unless
    its signing key stops being published, which each use checks again. Revocation is not kept
    here: verify() asks the deny list on every request, as before.
    """

    def __init__(self, size=VERIFIED_TOKENS_KEPT):
        self._size = size
        self._lock = threading.Lock()
        self._entries = OrderedDict()  # token -> (kid, claims), least recently used first

    def get(self, token_string):
        """A copy of the token's claims if it was verified and still holds, else None."""
        with self._lock:
            entry = self._entries.get(token_string)
            if entry is not None:
                self._entries.move_to_end(token_string)
        if entry is None:
            return None
        kid, claims = entry
        if claims["exp"] <= time.time() or not keys.key_cache().publishes(kid):
            return None
        return dict(claims)

    def put(self, token_string, kid, claims):
        with self._lock:
            self._entries[token_string] = (kid, dict(claims))
            self._entries.move_to_end(token_string)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


def decode(token_string):
    """Return the claims of a token this hub signed for its API, or raise Unauthorized."""
    verified = current_app.extensions["hub_verified_tokens"]
    claims = verified.get(token_string)
    if claims is not None:
        return claims
    config = current_app.config
    try:
        kid = _key_id(token_string)
        keyset = keys.key_cache().verification_keys(kid=kid)
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
    claims = dict(token.claims)
    verified.put(token_string, kid, claims)
    return claims


def verify(token_string):
    """Decode a bearer token and refuse it when revoked."""
    claims = decode(token_string)
    if deny_list().is_revoked(claims):
        raise Unauthorized("The access token has been revoked.")
    return claims
