"""Test data made through the hub's own service functions and endpoints."""

import base64
import hashlib
import re
import secrets
import time
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from joserfc import jwt

from referral_hub.auth import service as auth_service
from referral_hub.directory import service as directory_service
from referral_hub.directory.models import Location, ServiceAtLocation
from referral_hub.extensions import db

PASSWORD = "correct horse battery staple"
REDIRECT_URI = "http://127.0.0.1:8765/callback"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class HTTP(requests.Session):
    """requests with a timeout on every call: a stuck server fails a test, never hangs it."""

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", 15)
        return super().request(*args, **kwargs)


def make_org(name=None, province="17"):
    organization = directory_service.create_organization(
        None, name or f"NGO {uuid.uuid4().hex[:8]}", province=province
    )
    db.session.commit()
    return organization


def make_user(organization, roles=("caseworker",), provinces=(), email=None):
    email = email or f"{uuid.uuid4().hex[:10]}@example.org"
    user = auth_service.create_user(
        None, organization.id, email, list(roles), provinces=list(provinces), password=PASSWORD
    )
    db.session.commit()
    return user


def make_client(
    organization,
    scopes=("directory:read",),
    grant_types=("client_credentials",),
    auth_method="client_secret_basic",
    redirect_uris=(),
    jwks=None,
):
    client, secret = auth_service.create_client(
        None,
        organization.id,
        "Test client",
        list(scopes),
        list(grant_types),
        auth_method,
        list(redirect_uris),
        jwks,
    )
    db.session.commit()
    return client.client_id, secret


def client_token(http, client_id, secret, scope):
    """An access token from the hub's own token endpoint (client credentials)."""
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id, secret),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def client_assertion(client_id, audience, key):
    """A private_key_jwt client assertion (RFC 7523) signed with key, for one minute."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def csrf_from(html):
    return CSRF.search(html).group(1)


def sign_in(http, email, password=PASSWORD):
    """Sign in through the login page, as a browser would."""
    token = csrf_from(http.get("/login").get_data(as_text=True))
    return http.post("/login", data={"csrf_token": token, "email": email, "password": password})


def authorization_code(http, client_id, scope, challenge, redirect_uri=REDIRECT_URI, state="xyz"):
    """Approve a PKCE authorization request on the approval page and return the code."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    page = http.get(f"/oauth/authorize?{query}")
    assert page.status_code == 200, page.get_data(as_text=True)
    approved = http.post(
        f"/oauth/authorize?{query}",
        data={"csrf_token": csrf_from(page.get_data(as_text=True)), "decision": "approve"},
    )
    assert approved.status_code == 302, approved.get_data(as_text=True)
    params = parse_qs(urlsplit(approved.headers["Location"]).query)
    assert params["state"] == [state]
    return params["code"][0]


def user_tokens(app, user, scope):
    """Access and refresh token for a user, through login, approval and the token endpoint."""
    return user_grant(app, user, scope)[1]


def user_grant(app, user, scope):
    """The client (id, secret) a user approves, and the tokens it then gets for the user."""
    owner = directory_service.get_organization(user.organization_id)
    client_id, secret = make_client(
        owner, scope.split(), ("authorization_code", "refresh_token"), redirect_uris=[REDIRECT_URI]
    )
    http = app.test_client()
    sign_in(http, user.email)
    verifier, challenge = pkce_pair()
    code = authorization_code(http, client_id, scope, challenge)
    response = http.post(
        "/oauth/token",
        auth=(client_id, secret),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.get_json()
    return (client_id, secret), response.get_json()


def make_service(organization, **values):
    """A service through the same rule the coordinators' API uses."""
    values = {
        "name": f"Service {uuid.uuid4().hex[:8]}",
        "categories": ["detox"],
        "areas": ["17"],
        **values,
    }
    service = directory_service.create_service(None, organization.id, values)
    db.session.commit()
    return service


def report_capacity(service, **changes):
    """What the service's organisation says is free now (until then its capacity is unknown)."""
    directory_service.update_capacity(None, service.id, changes)
    db.session.commit()
    return service


def add_location(service, name, address, confidential=False):
    """A place where `service` is given; a confidential one is a safe house."""
    location = Location(
        organization_id=service.organization_id,
        name=name,
        address=address,
        confidential=confidential,
    )
    db.session.add(location)
    db.session.flush()
    db.session.add(ServiceAtLocation(service_id=service.id, location_id=location.id))
    db.session.commit()
    return location


def coordinator_token(app, scope="directory:read directory:write"):
    coordinator = make_user(make_org(), roles=["coordinator"])
    return user_tokens(app, coordinator, scope)["access_token"]
