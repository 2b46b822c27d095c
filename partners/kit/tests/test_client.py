"""HubClient against a tiny fake hub served on 127.0.0.1."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from referral_hub_kit import HubClient, HubError

CLIENT_ID = "partner:one"
CLIENT_SECRET = "s3cret with spaces:and%colons"
PROBLEM = {
    "type": "https://hub.example/problems/validation",
    "title": "Invalid referral",
    "status": 422,
    "detail": "consent is required",
    "errors": {"consent": ["Missing data for required field."]},
}
PAGES = {None: (["r1", "r2"], "c2"), "c2": (["r3"], "c3"), "c3": ([], None)}


class FakeHub(ThreadingHTTPServer):
    """Just enough of the hub: a token endpoint and a few protected routes."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FakeHubHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.expires_in = 600
        self.token_forms = []  # form of every token request
        self.valid_tokens = set()
        self.calls = []  # (method, path, query, headers, json body) of every API call


class FakeHubHandler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args):
        pass

    def answer(self, status, body=None, content_type="application/json", headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        hub = self.server
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path == "/oauth/token":
            return self.token(raw)
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in hub.valid_tokens:
            problem = {"title": "Unauthorized", "status": 401}
            return self.answer(401, problem, "application/problem+json")
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        body = json.loads(raw) if raw else None
        hub.calls.append((method, url.path, query, dict(self.headers), body))
        if (method, url.path) == ("GET", "/api/v1/referrals"):
            items, cursor = PAGES[query.get("cursor")]
            return self.answer(200, {"items": [{"id": i} for i in items], "next_cursor": cursor})
        if (method, url.path) == ("GET", "/api/v1/referrals/r1"):
            return self.answer(200, {"id": "r1", "status": "received"}, headers=[("ETag", '"3"')])
        if (method, url.path) == ("POST", "/api/v1/referrals/r1/status"):
            if self.headers.get("If-Match") != '"3"':
                stale = {"title": "Precondition Failed", "status": 412, "detail": "stale version"}
                return self.answer(412, stale, "application/problem+json")
            return self.answer(200, {"id": "r1", "version": 4, **body})
        if (method, url.path) == ("POST", "/api/v1/referrals"):
            return self.answer(422, PROBLEM, "application/problem+json")
        if url.path == "/api/v1/html":
            return self.answer(502, b"<html>bad gateway</html>", "text/html")
        return self.answer(200 if method == "GET" else 201, {"path": url.path, "echo": body})

    def token(self, raw):
        hub = self.server
        form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
        hub.token_forms.append(form)
        scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
        client_id, _, secret = base64.b64decode(credentials).decode().partition(":")
        if scheme != "Basic" or (unquote(client_id), unquote(secret)) != (
            CLIENT_ID,
            CLIENT_SECRET,
        ):
            return self.answer(401, {"error": "invalid_client"})
        token = f"token-{len(hub.token_forms)}"
        hub.valid_tokens.add(token)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": hub.expires_in}
        return self.answer(200, body)


@pytest.fixture
def hub():
    server = FakeHub()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def client(hub):
    return HubClient(
        hub.url + "/", CLIENT_ID, CLIENT_SECRET, scope="referrals:read referrals:write"
    )


def test_token_is_fetched_with_client_credentials_and_cached(hub, client):
    client.get_referral("r1")
    client.get_referral("r1")
    assert hub.token_forms == [
        {"grant_type": "client_credentials", "scope": "referrals:read referrals:write"}
    ]
    assert [call[3]["Authorization"] for call in hub.calls] == ["Bearer token-1"] * 2


@pytest.mark.parametrize(("expires_in", "fetches"), [(30, 2), (33, 1)])
def test_token_is_renewed_30_seconds_before_it_expires(hub, client, expires_in, fetches):
    """A token with 30 s left is renewed; 33 s left is not (3 s of slack)."""
    hub.expires_in = expires_in
    client.get_referral("r1")
    client.get_referral("r1")
    assert len(hub.token_forms) == fetches


def test_a_401_renews_the_token_once_and_retries(hub, client):
    client.get_referral("r1")
    hub.valid_tokens.clear()  # the hub rotated its keys: the cached token is refused
    assert client.get_referral("r1")["id"] == "r1"
    assert len(hub.token_forms) == 2
    assert hub.calls[-1][3]["Authorization"] == "Bearer token-2"


class NeverValid(set):
    def __contains__(self, token):
        return False


def test_a_second_401_is_an_error_not_a_loop(hub, client):
    hub.valid_tokens = NeverValid()
    with pytest.raises(HubError) as info:
        client.get_referral("r1")
    assert info.value.status == 401
    assert len(hub.token_forms) == 2


def test_wrong_credentials_raise_without_showing_the_secret(hub):
    client = HubClient(hub.url, CLIENT_ID, "wrong-secret")
    with pytest.raises(HubError) as info:
        client.get_referral("r1")
    assert info.value.status == 401 and info.value.problem == {"error": "invalid_client"}
    assert "wrong-secret" not in str(info.value) + repr(client)


def test_problem_json_becomes_a_hub_error(client):
    with pytest.raises(HubError) as info:
        client.create_referral({"service_id": "s1"})
    assert info.value.status == 422
    assert info.value.problem == PROBLEM
    assert "Invalid referral" in str(info.value)


def test_an_error_that_is_not_json_still_becomes_a_hub_error(client):
    with pytest.raises(HubError) as info:
        client.request("GET", "/api/v1/html")
    assert info.value.status == 502
    assert info.value.problem["detail"] == "<html>bad gateway</html>"


def test_list_referrals_follows_the_cursor(hub, client):
    assert [item["id"] for item in client.list_referrals(role="received")] == ["r1", "r2", "r3"]
    queries = [call[2] for call in hub.calls]
    assert queries == [
        {"role": "received"},
        {"role": "received", "cursor": "c2"},
        {"role": "received", "cursor": "c3"},
    ]


def test_get_referral_takes_the_version_from_the_etag(client):
    assert client.get_referral("r1") == {"id": "r1", "status": "received", "version": 3}


def test_change_status_sends_if_match(hub, client):
    changed = client.change_status("r1", "declined", 3, reason="no_capacity")
    assert changed == {"id": "r1", "version": 4, "status": "declined", "reason": "no_capacity"}
    with pytest.raises(HubError) as info:
        client.change_status("r1", "accepted", 2)
    assert info.value.status == 412


def test_create_referral_sends_the_idempotency_key(hub, client):
    with pytest.raises(HubError):
        client.create_referral({"service_id": "s1"}, idempotency_key="7b1e")
    method, path, _, headers, body = hub.calls[-1]
    assert (method, path, headers["Idempotency-Key"], body) == (
        "POST",
        "/api/v1/referrals",
        "7b1e",
        {"service_id": "s1"},
    )


def test_other_calls_hit_the_documented_routes(hub, client):
    withdrawn = client.withdraw_consent("r/../2", erase=True)
    assert withdrawn == {
        "path": "/api/v1/referrals/r%2F..%2F2/consent/withdraw",
        "echo": {"erase": True},
    }
    oauth = {"token_url": "https://partner.example/token", "client_id": "hub"}
    subscribed = client.subscribe("https://partner.example/cb", ("referral.created",), oauth)
    assert subscribed["echo"] == {
        "url": "https://partner.example/cb",
        "event_types": ["referral.created"],
        "oauth": oauth,
    }
    assert (
        client.search_services(province="17", accepting=True, q=None)["path"] == "/api/v1/services"
    )
    assert hub.calls[-1][2] == {"province": "17", "accepting": "true"}


def test_paths_must_stay_on_the_hub(client):
    with pytest.raises(ValueError):
        client.request("GET", "https://elsewhere.example/steal-my-token")
