"""How the hub stores credentials: argon2id for passwords, SHA-256 for random secrets."""

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app


def _hasher():
    config = current_app.config
    return PasswordHasher(
        time_cost=config["PASSWORD_HASH_TIME_COST"], memory_cost=config["PASSWORD_HASH_MEMORY_KIB"]
    )


def hash_password(password):
    return _hasher().hash(password)


def verify_password(password_hash, password):
    """Check a password; a missing hash still costs one hash so timing reveals nothing."""
    hasher = _hasher()
    if not password_hash:
        hasher.hash(password)
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_secret(nbytes=32):
    return secrets.token_urlsafe(nbytes)


def digest(secret):
    """Digest of a high-entropy random secret (client secret, code, refresh token).

    These carry 256 bits of randomness, so a fast hash is as safe as a slow one and keeps
    the token endpoint quick.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret, secret_digest):
    return bool(secret_digest) and hmac.compare_digest(digest(secret), secret_digest)
