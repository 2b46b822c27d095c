"""Keys that sign access tokens, their rotation and the published JWKS."""

import threading
import time
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from flask import current_app
from joserfc.jwk import KeySet, RSAKey

from .. import clock
from ..extensions import db
from .models import SigningKey

ALGORITHM = "RS256"
RELOAD_SECONDS = 60
PUBLISH_LEEWAY = timedelta(seconds=120)


def _password():
    return current_app.config["SECRET_KEY"].encode()


def _to_jwk(row):
    private = serialization.load_pem_private_key(row.private_pem.encode(), password=_password())
    return RSAKey.import_key(private, parameters={"kid": row.kid, "use": "sig", "alg": ALGORITHM})


def create_key():
    """Add a new signing key; it signs every token from now on."""
    key = RSAKey.generate_key(2048, private=True)
    kid = key.thumbprint()
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(_password()),
    ).decode()
    row = SigningKey(kid=kid, private_pem=pem, created_at=clock.now())
    db.session.add(row)
    db.session.flush()
    return row


def rotate():
    """Retire the signing keys in use and start a new one; retired keys stay published."""
    moment = clock.now()
    for row in db.session.scalars(db.select(SigningKey).where(SigningKey.retired_at.is_(None))):
        row.retired_at = moment
    row = create_key()
    db.session.commit()
    key_cache().clear()
    return row


def _published_rows():
    lifetime = timedelta(seconds=current_app.config["ACCESS_TOKEN_LIFETIME"])
    oldest = clock.now() - lifetime - PUBLISH_LEEWAY
    query = db.select(SigningKey).where(
        (SigningKey.retired_at.is_(None)) | (SigningKey.retired_at > oldest)
    )
    return db.session.scalars(query.order_by(SigningKey.created_at)).all()


class KeyCache:
    """Keys held in memory so verifying a token needs no database read."""

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        self._loaded_at = 0.0
        self._signing = None
        self._published = {}

    def _load(self):
        rows = _published_rows()
        active = [row for row in rows if row.retired_at is None]
        if not active:
            active = [create_key()]
            db.session.commit()
            rows = [*rows, *active]
        self._published = {row.kid: _to_jwk(row) for row in rows}
        self._signing = self._published[active[-1].kid]
        self._loaded_at = time.monotonic()

    def _fresh(self, unknown_kid=None):
        with self._lock:
            stale = time.monotonic() - self._loaded_at > RELOAD_SECONDS
            if (
                self._signing is None
                or stale
                or (unknown_kid and unknown_kid not in self._published)
            ):
                self._load()

    def signing_key(self):
        self._fresh()
        return self._signing

    def verification_keys(self, kid=None):
        self._fresh(unknown_kid=kid)
        return KeySet(list(self._published.values()))


def key_cache():
    return current_app.extensions["hub_keys"]


def jwks():
    return {"keys": [key.as_dict(private=False) for key in key_cache().verification_keys().keys]}
