"""Tokens from a partner's own OAuth server (client credentials), cached until they expire."""

import threading
import time

import requests

from . import secrets_store, targets

_cache = {}
_lock = threading.Lock()
MARGIN_SECONDS = 30


class TokenError(Exception):
    """The partner's token endpoint did not give a token."""


def token_for(subscription, renew=False):
    """A bearer token for this subscription's endpoint; renew after the partner answered 401."""
    key = (subscription.id, subscription.oauth_token_url, subscription.oauth_client_id)
    with _lock:
        cached = _cache.get(key)
    if cached and not renew and cached[1] > time.monotonic():
        return cached[0]
    token, lifetime = _fetch(subscription)
    with _lock:
        _cache[key] = (token, time.monotonic() + max(lifetime - MARGIN_SECONDS, 1))
    return token


def _fetch(subscription):
    targets.check_url(subscription.oauth_token_url)
    secret = secrets_store.unseal(subscription.id, "oauth", subscription.oauth_client_secret_data)
    data = {"grant_type": "client_credentials"}
    if subscription.oauth_scope:
        data["scope"] = subscription.oauth_scope
    try:
        with targets.session() as http:
            response = http.post(
                subscription.oauth_token_url,
                data=data,
                auth=(subscription.oauth_client_id, secret),
                timeout=targets.timeouts(),
                allow_redirects=False,
            )
        body = response.json() if response.ok else {}
        if not isinstance(body, dict):
            body = {}
    except (requests.RequestException, ValueError) as exc:
        raise TokenError(f"token request failed: {type(exc).__name__}") from exc
    if not response.ok or not isinstance(body.get("access_token"), str):
        raise TokenError(f"token endpoint answered {response.status_code}")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)  # some servers send it as a string
    return body["access_token"], expires_in if isinstance(expires_in, int) else 300
