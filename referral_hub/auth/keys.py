"""Keys that sign access tokens, their rotation and the published JWKS."""

import math
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
    """Keys held in memory so verifying a token needs no database read.

    The keys are read again once RELOAD_SECONDS have passed, and a kid not seen yet (a key
    rotated by another process) may bring that forward at most once per RELOAD_SECONDS,
    whatever kids anyone invents. A key is decrypted once, when it first appears.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._keys = {}
        self._signing = None
        self._looked_for_kid_at = -math.inf
        self.clear()

    def clear(self):
        """Read the keys again at the next use (this process rotated them)."""
        self._loaded_at = -math.inf

    def _load(self):
        rows = _published_rows()
        active = [row for row in rows if row.retired_at is None]
        if not active:
            active = [create_key()]
            db.session.commit()
            rows = [*rows, *active]
        self._keys = {row.kid: self._keys.get(row.kid) or _to_jwk(row) for row in rows}
        self._signing = self._keys[active[-1].kid]
        self._loaded_at = time.monotonic()

    def _due(self, kid):
        moment = time.monotonic()
        if moment - self._loaded_at >= RELOAD_SECONDS:
            return True
        unseen = kid is not None and kid not in self._keys
        return unseen and moment - self._looked_for_kid_at >= RELOAD_SECONDS

    def _fresh(self, kid=None):
        """Read the keys when due; under the lock, concurrent callers read them once."""
        if not self._due(kid):
            return
        with self._lock:
            if not self._due(kid):
                return
            if kid is not None and kid not in self._keys:
                self._looked_for_kid_at = time.monotonic()
            self._load()

    def signing_key(self):
        self._fresh()
        return self._signing

    def publishes(self, kid):
        """Whether the key is still published (the keys read again when due)."""
        self._fresh()
        return kid in self._keys

    def verification_keys(self, kid=None):
        self._fresh(kid)
        return KeySet(list(self._keys.values()))


def key_cache():
    return current_app.extensions["hub_keys"]


def jwks():
    return {"keys": [key.as_dict(private=False) for key in key_cache().verification_keys().keys]}
