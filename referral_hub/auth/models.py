"""Users, their roles, OAuth clients and the credentials the hub issues."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import clock
from ..db_types import UTCDateTime, created_column, id_column
from ..extensions import db
from .credentials import matches

ROLES = ("caseworker", "org_admin", "coordinator", "focal_point")
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANT_TYPES = ("client_credentials", "authorization_code", "refresh_token")


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[str] = id_column()
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # How a partner calls them about a referral they sent or were assigned.
    phone: Mapped[str | None] = mapped_column(String(60))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = created_column()
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A web session carries the generation it began in; raising it ends every older session.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Sessions signed out one by one since then, refused even if someone kept a copy.
    ended_sessions: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    # The language of the pages they last chose, and of the notifications they receive.
    language: Mapped[str] = mapped_column(String(5), default="km", server_default="km")

    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def roles(self):
        return sorted(m.role for m in self.memberships)

    @property
    def provinces(self):
        return sorted({p for m in self.memberships for p in m.provinces or []})

    def get_user_id(self):
        return self.id

    def holds_session(self, generation, session_id):
        """Whether a web session from this generation, with this id, is still theirs."""
        return generation == self.session_generation and session_id not in self.ended_sessions


class Membership(db.Model):
    """A role a user holds in their organisation; focal points list their provinces."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    provinces: Mapped[list] = mapped_column(JSON, default=list)
    created_at = created_column()

    user: Mapped[User] = relationship(back_populates="memberships")


class OAuthClient(db.Model):
    __tablename__ = "oauth_clients"

    id: Mapped[str] = id_column()
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(30))
    grant_types: Mapped[list] = mapped_column(JSON)
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text)
    jwks: Mapped[dict | None] = mapped_column(JSON)
    created_at = created_column()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # The interface Authlib's grants and endpoints call.
    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        """All requested scopes must be allowed: refuse rather than silently drop."""
        allowed = set(self.scope.split())
        if not scope:
            return self.scope
        return scope if set(scope.split()) <= allowed else None

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return self.revoked_at is None and matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method, endpoint):
        return self.revoked_at is None and method == self.auth_method

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type):
        return self.revoked_at is None and grant_type in self.grant_types


class AuthorizationCode(db.Model):
    """A one-time code; the code itself is kept only as its SHA-256 digest."""

    __tablename__ = "authorization_codes"

    id: Mapped[str] = id_column()
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    grant_id: Mapped[str] = mapped_column(String(36))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at = created_column()

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope


class RefreshToken(db.Model):
    """One link of a rotating chain; every link of one grant shares grant_id."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = id_column()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    grant_id: Mapped[str] = mapped_column(String(36), index=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at = created_column()

    kind = "refresh_token"

    def check_client(self, client):
        return client.client_id == self.client_id

    def get_scope(self):
        return self.scope

    def is_expired(self):
        return self.expires_at <= clock.now()

    def is_revoked(self):
        return self.revoked_at is not None or self.used_at is not None


class SigningKey(db.Model):
    """An RSA key signing access tokens; a retired one stays published until its tokens expire."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at = created_column()
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TokenRevocation(db.Model):
    """Deny-list entry: a token, grant, client or user whose tokens issued so far are void."""

    __tablename__ = "token_revocations"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class UsedAssertion(db.Model):
    """jti of a private_key_jwt client assertion, kept until it expires so it cannot be replayed."""

    __tablename__ = "used_assertions"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class LoginThrottle(db.Model):
    """Failed sign-ins or token requests for one account or client."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
