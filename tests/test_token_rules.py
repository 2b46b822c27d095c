"""What makes a token signed with the hub's own key an access token the API accepts."""

import time

from referral_hub.auth import keys

from .factories import bearer
from .tokens import claims_for, signed

API_ROUTE = "/api/v1/organizations"
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti", "sub", "client_id", "org")


def _status(client, claims, typ="at+jwt"):
    header = {"alg": "RS256", "typ": typ, "kid": keys.key_cache().signing_key().kid}
    return client.get(API_ROUTE, headers=bearer(signed(claims, header=header))).status_code


def test_a_token_lacking_any_required_claim_is_refused(app, client, partner):
    claims = claims_for(app, partner["org"].id, "directory:read")
    assert _status(client, claims) == 200
    for claim in REQUIRED_CLAIMS:
        lacking = {name: value for name, value in claims.items() if name != claim}
        assert _status(client, lacking) == 401, claim


def test_the_token_type_is_at_jwt_in_either_spelling_and_any_case(app, client, partner):
    """RFC 9068 names the type at+jwt or application/at+jwt; media types ignore case."""
    claims = claims_for(app, partner["org"].id, "directory:read")
    for typ in ("at+jwt", "application/at+jwt", "AT+JWT", "Application/AT+JWT"):
        assert _status(client, claims, typ) == 200, typ
    for typ in ("JWT", "jwt", "application/jwt", "at+jwt+x"):
        assert _status(client, claims, typ) == 401, typ


def test_an_expired_token_is_accepted_for_thirty_seconds_of_clock_skew_only(app, client, partner):
    """Web processes on several machines check tokens against their own clocks."""
    now = int(time.time())
    claims = claims_for(app, partner["org"].id, "directory:read", iat=now - 600)
    assert _status(client, {**claims, "exp": now - 20}) == 200
    assert _status(client, {**claims, "exp": now - 40}) == 401
