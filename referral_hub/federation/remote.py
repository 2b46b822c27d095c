"""Talking to a peer hub: its public API, with this hub's federation token there.

A peer's URL follows the callback targets' rules (https and public addresses in production;
plain http and loopback in development and tests), checked again at every connection."""

import threading
import time

import requests

from .. import crypto
from ..callbacks import targets

TOKEN_MARGIN_SECONDS = 30
_tokens = {}  # (peer id, client id) -> (token, monotonic expiry)
_lock = threading.Lock()


class PeerUnreachable(Exception):
    """No answer worth acting on: the peer is down, slow, refused or answered an error."""

    def __init__(self, message, status_code=None, body=None):
        super().__init__(message)
        self.status_code = status_code
        self.body = body or {}


def seal(peer_id, purpose, secret):
    return crypto.encrypt(secret, f"peer:{peer_id}:{purpose}")


def unseal(peer_id, purpose, envelope):
    return crypto.decrypt(envelope, f"peer:{peer_id}:{purpose}")


def metadata(url):
    """The peer's RFC 8414 authorization server metadata."""
    return _json(_send("GET", f"{url}/.well-known/oauth-authorization-server"))


def fetch_token(url, client_id, secret):
    """(token, lifetime) by client credentials at the peer's token endpoint."""
    response = _send(
        "POST",
        f"{url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    body = _json(response)
    if not isinstance(body.get("access_token"), str):
        raise PeerUnreachable("The peer's token endpoint gave no token.", response.status_code)
    lifetime = body.get("expires_in")
    return body["access_token"], lifetime if isinstance(lifetime, int) else 300


class Peer:
    """Requests to one added peer, with a cached token renewed once after a 401."""

    def __init__(self, peer):
        self.id, self.url, self.client_id = peer.id, peer.url, peer.remote_client_id
        self._secret_data = peer.remote_client_secret_data

    def _token(self, renew):
        key = (self.id, self.client_id)
        with _lock:
            cached = _tokens.get(key)
        if cached and not renew and cached[1] > time.monotonic():
            return cached[0]
        secret = unseal(self.id, "client", self._secret_data)
        token, lifetime = fetch_token(self.url, self.client_id, secret)
        with _lock:
            _tokens[key] = (token, time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, 1))
        return token

    def call(self, method, path, *, ok=(200,), **kwargs):
        """The JSON answer of the peer's API; PeerUnreachable unless its status is in `ok`."""
        headers = kwargs.pop("headers", {})
        for renew in (False, True):
            auth = {"Authorization": f"Bearer {self._token(renew)}"}
            response = _send(method, f"{self.url}{path}", headers=headers | auth, **kwargs)
            if response.status_code != 401:
                break
        body = _json(response, strict=False)
        if response.status_code not in ok:
            detail = body.get("detail") if isinstance(body, dict) else None
            raise PeerUnreachable(
                f"The peer answered {response.status_code}"
                + (f": {detail}" if isinstance(detail, str) else "."),
                response.status_code,
                body,
            )
        return body, response


def _send(method, url, **kwargs):
    try:
        targets.check_url(url)
        with targets.session() as http:
            return http.request(
                method, url, timeout=targets.timeouts(), allow_redirects=False, **kwargs
            )
    except targets.TargetRefused as exc:
        raise PeerUnreachable(f"Refused address: {exc}") from None
    except requests.RequestException as exc:
        raise PeerUnreachable(f"No answer from the peer ({type(exc).__name__}).") from None


def _json(response, strict=True):
    try:
        body = response.json()
    except ValueError:
        body = None
    if strict and (not response.ok or not isinstance(body, dict)):
        raise PeerUnreachable(f"The peer answered {response.status_code}.", response.status_code)
    return body if isinstance(body, dict) else {}
