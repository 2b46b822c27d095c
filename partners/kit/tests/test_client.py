"""HubClient against a tiny fake hub served on 127.0.0.1, for what the real hub cannot be made
to do on cue: refuse a token it just issued, expire tokens on a chosen schedule, answer an error
page that is not JSON. Every call against the real hub is tested in the hub's
tests/test_partner_kit.py."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from referral_hub_kit import HubClient, HubError

CLIENT_ID = "partner:one"
CLIENT_SECRET = "s3cret with spaces:and%colons"


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
        hub.calls.append((method, url.path, dict(self.headers)))
        if url.path == "/api/v1/html":
            return self.answer(502, b"<html>bad gateway</html>", "text/html")
        return self.answer(200, {"id": url.path.rsplit("/", 1)[-1]})

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
    assert [call[2]["Authorization"] for call in hub.calls] == ["Bearer token-1"] * 2


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
    assert hub.calls[-1][2]["Authorization"] == "Bearer token-2"


class NeverValid(set):
    def __contains__(self, token):
        return False


def test_a_second_401_is_an_error_not_a_loop(hub, client):
    hub.valid_tokens = NeverValid()
    with pytest.raises(HubError) as info:
        client.get_referral("r1")
    assert info.value.status == 401
    assert len(hub.token_forms) == 2


def test_an_error_that_is_not_json_still_becomes_a_hub_error(client):
    with pytest.raises(HubError) as info:
        client.request("GET", "/api/v1/html")
    assert info.value.status == 502
    assert info.value.problem["detail"] == "<html>bad gateway</html>"


def test_paths_must_stay_on_the_hub(client):
    with pytest.raises(ValueError):
        client.request("GET", "https://elsewhere.example/steal-my-token")
