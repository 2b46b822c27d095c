"""OAuth 2 endpoints for machines: token, revocation, introspection and discovery."""

import json

from flask import Blueprint, current_app, jsonify, request
from joserfc import jws
from joserfc.errors import JoseError

from . import keys, throttle
from .oauth_server import ALL_METHODS, CONFIDENTIAL_METHODS

bp = Blueprint("oauth", __name__)


def server():
    return current_app.extensions["hub_oauth_server"]


def _claimed_client_id():
    """The client a token request claims to be, for throttling only (nothing is trusted)."""
    client_id = request.authorization.username if request.authorization else None
    client_id = client_id or request.form.get("client_id")
    assertion = request.form.get("client_assertion")
    if not client_id and assertion:
        try:
            client_id = json.loads(jws.extract_compact(assertion.encode()).payload).get("sub")
        except (JoseError, ValueError, AttributeError):
            client_id = None
    return client_id if isinstance(client_id, str) else None


@bp.post("/oauth/token")
def issue_token():
    client_id, address = _claimed_client_id(), request.remote_addr
    throttle.check("client", client_id, address)
    response = server().create_token_response()
    if (response.get_json(silent=True) or {}).get("error") == "invalid_client":
        throttle.record_failure("client", client_id, address)
    elif response.status_code == 200:
        throttle.record_success("client", client_id, address)
    return response


@bp.post("/oauth/revoke")
def revoke_token():
    return server().create_endpoint_response("revocation")


@bp.post("/oauth/introspect")
def introspect_token():
    return server().create_endpoint_response("introspection")


@bp.get("/.well-known/oauth-authorization-server")
def metadata():
    issuer = current_app.config["HUB_ISSUER"]
    signing_algs = ["RS256", "ES256"]
    return jsonify(
        issuer=issuer,
        authorization_endpoint=f"{issuer}/oauth/authorize",
        token_endpoint=f"{issuer}/oauth/token",
        revocation_endpoint=f"{issuer}/oauth/revoke",
        introspection_endpoint=f"{issuer}/oauth/introspect",
        jwks_uri=f"{issuer}/.well-known/jwks.json",
        scopes_supported=list(current_app.config["SCOPES"]),
        response_types_supported=["code"],
        response_modes_supported=["query"],
        grant_types_supported=["authorization_code", "refresh_token", "client_credentials"],
        code_challenge_methods_supported=["S256"],
        token_endpoint_auth_methods_supported=ALL_METHODS,
        token_endpoint_auth_signing_alg_values_supported=signing_algs,
        revocation_endpoint_auth_methods_supported=ALL_METHODS,
        introspection_endpoint_auth_methods_supported=CONFIDENTIAL_METHODS,
        service_documentation=f"{issuer}/openapi.yaml",
    )


@bp.get("/.well-known/jwks.json")
def jwks():
    response = jsonify(keys.jwks())
    response.headers["Cache-Control"] = "public, max-age=60"
    return response
