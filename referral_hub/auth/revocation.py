"""Deny-list of access tokens: by token, grant, client or user, until the tokens expire."""

import threading
import time
from datetime import timedelta

from flask import current_app

from .. import clock
from ..extensions import db
from .models import RefreshToken, TokenRevocation

OWN_SECONDS = 60  # far longer than a request takes to commit


def revoke(key, lifetime=None):
    """Void every token matching key ("jti:…", "grant:…", "client:…", "user:…") issued until now."""
    moment = clock.now()
    lifetime = lifetime or current_app.config["ACCESS_TOKEN_LIFETIME"] + 120
    row = db.session.get(TokenRevocation, key)
    if row is None:
        row = TokenRevocation(key=key)
        db.session.add(row)
    row.revoked_at = moment
    row.expires_at = moment + timedelta(seconds=lifetime)
    db.session.flush()
    deny_list().remember(key, moment.timestamp())


def revoke_refresh_tokens(*conditions):
    """Void the refresh tokens matching the conditions (a grant, a user, a client)."""
    db.session.execute(
        db.update(RefreshToken)
        .where(RefreshToken.revoked_at.is_(None), *conditions)
        .values(revoked_at=clock.now())
    )


def purge_expired():
    db.session.execute(db.delete(TokenRevocation).where(TokenRevocation.expires_at < clock.now()))


class DenyList:
    """In-memory copy of the revocations, reloaded every few seconds from the database.

    This process's own revocations count at once, and survive reloads for OWN_SECONDS: a
    reload by another request may read the table before the revoking request commits.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def remember(self, key, revoked_at):
        with self._lock:
            self._entries[key] = revoked_at
            self._own[key] = (revoked_at, time.monotonic())

    def clear(self):
        with self._lock:
            self._entries, self._own, self._loaded_at = {}, {}, None

    def _refresh(self):
        max_age = current_app.config["REVOCATION_CACHE_SECONDS"]
        with self._lock:
            moment = time.monotonic()
            if self._loaded_at is not None and moment - self._loaded_at < max_age:
                return
            rows = db.session.execute(
                db.select(TokenRevocation.key, TokenRevocation.revoked_at).where(
                    TokenRevocation.expires_at >= clock.now()
                )
            )
            entries = {key: revoked_at.timestamp() for key, revoked_at in rows}
            self._own = {k: v for k, v in self._own.items() if moment - v[1] < OWN_SECONDS}
            for key, (revoked_at, _) in self._own.items():
                entries[key] = max(revoked_at, entries.get(key, revoked_at))
            self._entries = entries
            self._loaded_at = moment

    def is_revoked(self, claims):
        self._refresh()
        keys = [f"jti:{claims['jti']}", f"client:{claims['client_id']}", f"user:{claims['sub']}"]
        if claims.get("gid"):
            keys.append(f"grant:{claims['gid']}")
        issued_at = claims["iat"]
        return any(key in self._entries and issued_at <= self._entries[key] for key in keys)


def deny_list():
    return current_app.extensions["hub_deny_list"]
