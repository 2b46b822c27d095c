"""The OAuth 2 authorization server: Authlib wired with the hub's stricter rules."""

from datetime import timedelta

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import current_app, g
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError

from .. import clock
from ..db_types import new_id
from ..errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, Unauthorized
from ..extensions import db
from . import revocation, tokens
from .credentials import digest, new_secret
from .models import AuthorizationCode, OAuthClient, RefreshToken, UsedAssertion, User

CONFIDENTIAL_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ALL_METHODS = [*CONFIDENTIAL_METHODS, "none"]


def query_client(client_id):
    if not isinstance(client_id, str):
        return None
    client = db.session.scalar(db.select(OAuthClient).filter_by(client_id=client_id))
    return client if client and client.revoked_at is None else None


def save_token(token, request):
    """Keep only refresh tokens (as digests); access tokens are self-contained JWTs."""
    if "refresh_token" not in token:
        return
    lifetime = current_app.config["REFRESH_TOKEN_LIFETIME"]
    db.session.add(
        RefreshToken(
            token_hash=digest(token["refresh_token"]),
            grant_id=g.oauth_grant_id,
            client_id=request.client.client_id,
            user_id=request.user.id,
            scope=token.get("scope", ""),
            expires_at=clock.now() + timedelta(seconds=lifetime),
        )
    )
    db.session.commit()


def revoke_grant(grant_id):
    """Void a whole grant: its refresh tokens and every access token issued from it."""
    revocation.revoke_refresh_tokens(RefreshToken.grant_id == grant_id)
    revocation.revoke(f"grant:{grant_id}")
    db.session.commit()


def spend(credential, *unspent):
    """Mark a one-time code or refresh token used, with one conditional UPDATE.

    Of two requests racing with the same credential exactly one changes the row; the other
    counts as a reuse and voids the whole grant, the winner's tokens included (they were
    saved before the winner spent the credential, so the revocation reaches them).
    """
    model = type(credential)
    spent = db.session.execute(
        db.update(model)
        .where(model.id == credential.id, model.used_at.is_(None), *unspent)
        .values(used_at=clock.now())
    )
    if spent.rowcount == 1:
        db.session.commit()
        return
    revoke_grant(credential.grant_id)
    raise InvalidGrantError("This grant was already used; all its tokens are revoked.")


def active_user(user_id):
    user = db.session.get(User, user_id)
    return user if user and user.active else None


class S256Required(CodeChallenge):
    """PKCE on every authorization request, with S256 only (RFC 9700)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Send 'code_challenge_method=S256'; 'plain' is not accepted.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS

    def save_authorization_code(self, code, request):
        lifetime = current_app.config["AUTHORIZATION_CODE_LIFETIME"]
        data = request.payload.data
        db.session.add(
            AuthorizationCode(
                code_hash=digest(code),
                client_id=request.client.client_id,
                user_id=request.user.id,
                grant_id=new_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                expires_at=clock.now() + timedelta(seconds=lifetime),
            )
        )
        db.session.commit()

    def query_authorization_code(self, code, client):
        row = db.session.scalar(
            db.select(AuthorizationCode).filter_by(
                code_hash=digest(code), client_id=client.client_id
            )
        )
        if row is None or row.expires_at <= clock.now():
            return None
        if row.used_at is not None:
            revoke_grant(row.grant_id)
            return None
        g.oauth_grant_id = row.grant_id
        return row

    def delete_authorization_code(self, authorization_code):
        """Mark the code used rather than delete it, so a second use can be detected."""
        spend(authorization_code)

    def authenticate_user(self, authorization_code):
        return active_user(authorization_code.user_id)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh tokens rotate; presenting a used one revokes the whole grant."""

    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        row = db.session.scalar(db.select(RefreshToken).filter_by(token_hash=digest(refresh_token)))
        if row is None or row.revoked_at is not None or row.expires_at <= clock.now():
            return None
        if row.used_at is not None:
            revoke_grant(row.grant_id)
            return None
        g.oauth_grant_id = row.grant_id
        return row

    def authenticate_user(self, refresh_token):
        return active_user(refresh_token.user_id)

    def revoke_old_credential(self, refresh_token):
        """Spend the old link; a grant revoked meanwhile also makes this refresh fail."""
        spend(refresh_token, RefreshToken.revoked_at.is_(None))


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_METHODS


class PrivateKeyJWT(JWTBearerClientAssertion):
    """Client authentication with a signed assertion against the client's registered keys."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self):
        issuer = current_app.config["HUB_ISSUER"]
        return [f"{issuer}/oauth/token", issuer]

    def validate_jti(self, claims, jti):
        expires = clock.now() + timedelta(
            seconds=max(int(claims["exp"] - clock.now().timestamp()), 0) + 60
        )
        db.session.add(UsedAssertion(key=f"{claims['sub']}:{jti}"[:200], expires_at=expires))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return False
        return True

    def resolve_client_public_key(self, client):
        return KeySet.import_key_set(client.jwks or {"keys": []})

    def process_assertion_claims(self, assertion, resolve_key):
        """Authlib quotes JOSE's message in its error; one quoting the sender's header (an
        alg with a '"') is not a valid OAuth error description and made a 500."""
        try:
            return super().process_assertion_claims(assertion, resolve_key)
        except ValueError as error:
            raise InvalidClientError(description="Invalid client assertion.") from error


def _query_token(token_string, token_type_hint):
    """Find an access token (a JWT this hub signed) or a refresh token (by digest)."""
    if token_type_hint != "refresh_token" and token_string.count(".") == 2:
        try:
            return tokens.AccessToken(tokens.decode(token_string))
        except Unauthorized:
            return None
    if token_type_hint == "access_token":
        return None
    return db.session.scalar(db.select(RefreshToken).filter_by(token_hash=digest(token_string)))


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ALL_METHODS

    def query_token(self, token_string, token_type_hint):
        return _query_token(token_string, token_type_hint)

    def revoke_token(self, token, request):
        if token.kind == "access_token":
            revocation.revoke(f"jti:{token.claims['jti']}")
            db.session.commit()
        else:
            revoke_grant(token.grant_id)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_METHODS

    def query_token(self, token_string, token_type_hint):
        return _query_token(token_string, token_type_hint)

    def check_permission(self, token, client, request):
        """A client may introspect tokens of its own organisation only."""
        if token.kind == "access_token":
            return token.claims["org"] == client.organization_id
        owner = db.session.get(User, token.user_id)
        return owner is not None and owner.organization_id == client.organization_id

    def introspect_token(self, token):
        if token.kind == "refresh_token":
            return {
                "client_id": token.client_id,
                "scope": token.scope,
                "token_type": "refresh_token",
                "sub": token.user_id,
                "exp": int(token.expires_at.timestamp()),
            }
        keep = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "org", "roles")
        return {"token_type": "Bearer", **{k: v for k, v in token.claims.items() if k in keep}}


class HubAuthorizationServer(AuthorizationServer):
    """Authlib's server whose JSON errors are also RFC 9457 problem documents."""

    def authenticate_client(self, request, methods, endpoint="token"):
        """One answer for an unknown client and for wrong credentials, so ids can't be probed.

        Either way the work is one indexed read of the client: secrets are SHA-256 digests
        (see credentials.digest), so comparing one costs nothing measurable.
        """
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            raise InvalidClientError(
                status_code=401, description="Client authentication failed."
            ) from error

    def handle_error_response(self, request, error):
        status, body, headers = error(self.get_error_uri(request, error))
        if not isinstance(body, dict) or not body:
            return self.handle_response(status, body, headers)
        problem = {
            "type": f"{PROBLEM_TYPE_BASE}oauth-{body['error']}",
            "title": body["error"].replace("_", " ").capitalize(),
            "status": status,
            "detail": body.get("error_description") or body["error"],
            **body,
        }
        response = self.handle_response(status, problem, headers)
        response.content_type = PROBLEM_MEDIA_TYPE
        return response


def create_server(app):
    """Build the one authorization server of the app."""
    server = HubAuthorizationServer()
    server.init_app(app, query_client=query_client, save_token=save_token)
    server.scopes_supported = list(app.config["SCOPES"])
    server.register_token_generator(
        "default",
        tokens.AccessTokenGenerator(
            issuer=app.config["HUB_ISSUER"],
            alg="RS256",
            refresh_token_generator=lambda **_: new_secret(48),
            expires_generator=lambda client, grant_type: app.config["ACCESS_TOKEN_LIFETIME"],
        ),
    )
    server.register_client_auth_method("private_key_jwt", PrivateKeyJWT())
    server.register_grant(AuthorizationCodeGrant, [S256Required(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    return server
