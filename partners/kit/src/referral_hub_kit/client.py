"""A small client for the hub's API, so partners do not hand-roll OAuth and error handling."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

import requests

TOKEN_MARGIN = 30  # seconds: renew a token this long before the hub says it expires
DEFAULT_EXPIRES_IN = 300  # when the token response omits expires_in (RFC 6749 allows it)


class HubError(Exception):
    """The hub answered with an error; ``problem`` is its RFC 9457 document (or OAuth error)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        title = problem.get("title") or problem.get("error") or "error"
        detail = problem.get("detail") or problem.get("error_description") or ""
        super().__init__(f"{status} {title}" + (f": {detail}" if detail else ""))

    @classmethod
    def from_response(cls, response: requests.Response) -> HubError:
        """Build the error from the hub's problem+json, or a stand-in if the body is not JSON."""
        try:
            problem = response.json()
        except ValueError:
            problem = None
        if not isinstance(problem, dict):
            problem = {
                "title": response.reason or "error",
                "status": response.status_code,
                "detail": response.text[:500],
            }
        return cls(response.status_code, problem)


def _json(response: requests.Response) -> dict[str, Any]:
    """The JSON object a successful call returned ({} for an empty answer)."""
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise HubError(response.status_code, {"title": "answer is not JSON"}) from None
    if not isinstance(body, dict):
        raise HubError(response.status_code, {"title": "answer is not a JSON object"})
    return body


def _query(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters as the hub reads them: None left out, booleans as true/false."""
    return {
        key: str(value).lower() if isinstance(value, bool) else value
        for key, value in params.items()
        if value is not None
    }


def _etag_version(etag: str | None) -> int | None:
    """The referral version carried by an ETag such as ``"3"`` or ``W/"3"``."""
    value = (etag or "").removeprefix("W/").strip('"')
    return int(value) if value.isascii() and value.isdigit() else None


class HubClient:
    """Calls the hub's API with a client-credentials token that it fetches, caches and renews.

    Thread-safe for the token; the secret and tokens never appear in repr, errors or logs.
    Network failures surface as ``requests`` exceptions, error answers as HubError.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        timeout: float = 15,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.timeout = timeout
        self.session = session or requests.Session()
        self._token: str | None = None
        self._token_expires = 0.0  # time.monotonic() deadline
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HubClient({self.base_url!r}, client_id={self.client_id!r})"

    def _fetch_token(self) -> str:
        """Ask the hub's token endpoint for a new access token (client_secret_basic)."""
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        # RFC 6749 2.3.1: form-encode the credentials before they go into Basic auth.
        auth = (quote(self.client_id, safe=""), quote(self._client_secret, safe=""))
        response = self.session.post(
            f"{self.base_url}/oauth/token",
            data=data,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=self.timeout,
            allow_redirects=False,
        )
        if not 200 <= response.status_code < 300:
            raise HubError.from_response(response)
        body = _json(response)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise HubError(response.status_code, {"title": "token answer has no access_token"})
        try:
            expires_in = float(body.get("expires_in", DEFAULT_EXPIRES_IN))
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        self._token = token
        self._token_expires = time.monotonic() + expires_in - TOKEN_MARGIN
        return token

    def _access_token(self, rejected: str | None = None) -> str:
        """A valid token, fetched anew if none is cached, it is near expiry or it was rejected."""
        with self._lock:
            if (
                self._token is None
                or self._token == rejected
                or time.monotonic() >= self._token_expires
            ):
                return self._fetch_token()
            return self._token

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Call ``path`` on the hub with a bearer token, renewing it once if the hub answers 401."""
        if not path.startswith("/"):
            raise ValueError("path must start with '/': the token is only sent to the hub")
        rejected = None
        for _attempt in range(2):
            token = self._access_token(rejected)
            response = self.session.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                headers={
                    "Accept": "application/json, application/problem+json",
                    **(headers or {}),
                    "Authorization": f"Bearer {token}",
                },
                timeout=self.timeout,
                allow_redirects=False,
            )
            if response.status_code != 401:
                break
            rejected = token
        if not 200 <= response.status_code < 300:
            raise HubError.from_response(response)
        return response

    def create_referral(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict:
        """Send a referral; the same ``idempotency_key`` makes a retried POST create only one."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return _json(self.request("POST", "/api/v1/referrals", json=body, headers=headers))

    def get_referral(self, referral_id: str) -> dict:
        """One referral as this organisation may see it, with ``version`` for later changes."""
        response = self.request("GET", f"/api/v1/referrals/{quote(str(referral_id), safe='')}")
        body = _json(response)
        version = _etag_version(response.headers.get("ETag"))
        if "version" not in body and version is not None:
            body["version"] = version
        return body

    def list_referrals(self, **params: Any) -> Iterator[dict]:
        """Every referral matching ``params`` (role, status...), following the cursor pages."""
        params = _query(params)
        while True:
            page = _json(self.request("GET", "/api/v1/referrals", params=params))
            yield from page.get("items") or []
            cursor = page.get("next_cursor")
            if not cursor:
                return
            params["cursor"] = cursor

    def change_status(self, referral_id: str, status: str, version: int, **fields: Any) -> dict:
        """Move a referral to ``status``; the hub refuses (409/412) if ``version`` is stale."""
        return _json(
            self.request(
                "POST",
                f"/api/v1/referrals/{quote(str(referral_id), safe='')}/status",
                json={"status": status, **fields},
                headers={"If-Match": f'"{version}"'},
            )
        )

    def withdraw_consent(self, referral_id: str, erase: bool = False) -> dict:
        """Record that consent was withdrawn; ``erase`` also asks the hub to erase personal data."""
        path = f"/api/v1/referrals/{quote(str(referral_id), safe='')}/consent/withdraw"
        return _json(self.request("POST", path, json={"erase": erase}))

    def subscribe(
        self, url: str, event_types: Iterable[str], oauth: dict[str, Any] | None = None
    ) -> dict:
        """Register a callback URL; the answer carries the ``whsec_`` secret to verify with."""
        body: dict[str, Any] = {"url": url, "event_types": list(event_types)}
        if oauth is not None:
            body["oauth"] = oauth
        return _json(self.request("POST", "/api/v1/subscriptions", json=body))

    def search_services(self, **params: Any) -> dict:
        """One page of the service directory (category, province, age, accepting, q, cursor...)."""
        params = _query(params)
        return _json(self.request("GET", "/api/v1/services", params=params))
