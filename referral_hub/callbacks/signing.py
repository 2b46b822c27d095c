"""Standard Webhooks signatures: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">."""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def new_secret():
    """whsec_ + base64 of 32 random bytes (the specification asks for at least 24)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_in_force, msg_id, timestamp, body):
    """One signature per secret in force, space-separated, as during a rotation."""
    return " ".join(signature(secret, msg_id, timestamp, body) for secret in secrets_in_force)
