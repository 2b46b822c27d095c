"""Personal data encrypted at rest with AES-GCM, under keys named in the configuration.

Each value is stored as an envelope {"kid", "nonce", "ct"}, so keys can rotate: new values use
the current key, old ones stay readable while their key is configured, and
`referral-hub keys rotate-data` re-encrypts them under the current key.
"""

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app


class DecryptionError(Exception):
    """A stored value cannot be read with the configured keys."""


def _b64(data):
    return base64.b64encode(data).decode()


def parse_keys(text):
    """'kid:base64key,kid2:base64key' into {kid: key}; each key 32 bytes (AES-256)."""
    keys = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kid, _, encoded = item.partition(":")
        key = base64.b64decode(encoded)
        if not kid or len(key) != 32:
            raise ValueError(f"data key {kid!r} must be 32 bytes, base64-encoded")
        keys[kid] = key
    return keys


def derived_development_key(secret_key):
    """A key for development and tests only, derived from SECRET_KEY."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"referral-hub data key")
    return hkdf.derive(secret_key.encode())


def _keys():
    return current_app.extensions["hub_data_keys"]


def current_key_id():
    return current_app.config["DATA_ENCRYPTION_KEY_ID"]


def encrypt(value, context):
    """Encrypt a JSON-serialisable value, bound to its context (e.g. 'referral-id:identity')."""
    kid = current_key_id()
    nonce = os.urandom(12)
    plaintext = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    ciphertext = AESGCM(_keys()[kid]).encrypt(nonce, plaintext, context.encode())
    return json.dumps({"kid": kid, "nonce": _b64(nonce), "ct": _b64(ciphertext)})


def decrypt(envelope, context):
    try:
        parts = json.loads(envelope)
        key = _keys()[parts["kid"]]
        nonce, ciphertext = base64.b64decode(parts["nonce"]), base64.b64decode(parts["ct"])
        return json.loads(AESGCM(key).decrypt(nonce, ciphertext, context.encode()))
    except (KeyError, ValueError, TypeError, InvalidTag) as exc:
        raise DecryptionError(f"cannot decrypt a value for {context.split(':')[-1]}") from exc


def key_id_of(envelope):
    return json.loads(envelope)["kid"]


def configure(app):
    """Load the key ring; development and tests may derive one from SECRET_KEY."""
    text = app.config.get("DATA_ENCRYPTION_KEYS") or ""
    keys = parse_keys(text)
    if not keys:
        keys = {"dev": derived_development_key(app.config["SECRET_KEY"])}
    app.config.setdefault("DATA_ENCRYPTION_KEY_ID", None)
    if app.config["DATA_ENCRYPTION_KEY_ID"] not in keys:
        app.config["DATA_ENCRYPTION_KEY_ID"] = list(keys)[-1]
    app.extensions["hub_data_keys"] = keys
