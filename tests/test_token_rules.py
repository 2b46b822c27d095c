"""What makes a token signed with the hub's own key an access token the API accepts."""

import time

from referral_hub.auth import keys
from referral_hub.auth.tokens import MAX_TOKEN_LENGTH

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


def test_a_refused_token_is_told_why(app, client, partner):
    claims = claims_for(app, partner["org"].id, "directory:read")
    kid = keys.key_cache().signing_key().kid
    reasons = {
        "The token is too long to be an access token.": "e30." + "A" * 9000 + ".c2ln",
        "The token is not an access token.": signed(
            claims, header={"alg": "RS256", "typ": "JWT", "kid": kid}
        ),
        "The token does not name its signing key.": signed(
            claims, header={"alg": "RS256", "typ": "at+jwt"}
        ),
        "The access token is invalid or has expired.": signed(
            {**claims, "exp": int(time.time()) - 60}
        ),
    }
    for reason, token in reasons.items():
        assert client.get(API_ROUTE, headers=bearer(token)).get_json()["detail"] == reason
    at_the_limit = "e30." + "A" * (MAX_TOKEN_LENGTH - 9) + ".c2ln"  # not too long: unreadable
    assert len(at_the_limit) == MAX_TOKEN_LENGTH
    assert client.get(API_ROUTE, headers=bearer(at_the_limit)).get_json()["detail"] == (
        "The access token is invalid or has expired."
    )
    credentials = (partner["client_id"], partner["secret"])
    revoked = client.post("/oauth/revoke", data={"token": partner["token"]}, auth=credentials)
    assert revoked.status_code == 200
    refused = client.get(API_ROUTE, headers=bearer(partner["token"])).get_json()
    assert refused["detail"] == "The access token has been revoked."
