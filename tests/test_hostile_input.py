"""Input no database or encoder can hold answers a 4xx problem naming the field, never a 500:
page numbers past any page, NUL characters, lone surrogates, cursors with values of the wrong
type, JSON nested without end, and streamed bodies over MAX_CONTENT_LENGTH."""

import base64
import http.client
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from referral_hub.errors import PROBLEM_MEDIA_TYPE

from .conftest import _free_port
from .factories import bearer, make_org, make_service
from .referral_fixtures import client_party, referral_body, send

ROOT = Path(__file__).resolve().parent.parent
HUGE_PAGES = ("9223372036854775807", "9" * 40)
HSDS_LISTS = ("services", "organizations", "taxonomies", "taxonomy_terms")
TOO_LARGE = 1024 * 1024 + 10


def problem(response, status, field=None):
    """The problem document of a response, after checking its status and the field it names."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    body = response.get_json()
    if field is not None:
        assert field in [error["field"] for error in body.get("errors", [])], body
    return body


def cursor(*values):
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode()


@pytest.mark.parametrize("page", HUGE_PAGES)
@pytest.mark.parametrize("listing", HSDS_LISTS)
def test_a_page_number_past_any_page_is_refused_by_every_hsds_list(client, listing, page):
    problem(client.get(f"/hsds/{listing}?page={page}"), 422, "page")


def test_a_page_just_past_the_last_is_an_empty_page(client):
    body = client.get("/hsds/taxonomies?page=2").get_json()
    assert body["empty"] is True and body["page_number"] == 2


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/services?q=a%00b", "q"),
        ("/hsds/services?search=%00", "search"),
        ("/hsds/organizations?search=a%00", "search"),
        ("/hsds/services/a%00b", "service_id"),
        ("/hsds/organizations/%00", "organization_id"),
        ("/api/v1/organizations?cursor=%00", "cursor"),
    ],
)
def test_a_nul_character_in_a_parameter_is_refused_naming_it(client, partner, url, field):
    body = problem(client.get(url, headers=bearer(partner["token"])), 422, field)
    assert "NUL" in body["errors"][0]["message"]


def test_a_nul_character_in_a_callback_url_or_a_delivery_id_is_refused(client, partner):
    headers = bearer(partner["token"])
    url = "https://93.184.216.34/hook\x00"
    problem(client.post("/api/v1/subscriptions", json={"url": url}, headers=headers), 422, "url")
    created = client.post(
        "/api/v1/subscriptions", json={"url": "https://93.184.216.34/hook"}, headers=headers
    ).get_json()
    replay = f"/api/v1/subscriptions/{created['id']}/deliveries/msg_a%00b/replay"
    problem(client.post(replay, headers=headers), 422, "delivery_id")


def test_a_nul_character_in_a_form_field_is_refused_naming_it(client):
    response = client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": "a\x00"}
    )
    problem(response, 422, "client_id")


def test_a_page_with_a_nul_character_in_its_query_answers_an_error_page(client):
    response = client.get("/find?q=a%00b", headers={"Accept": "text/html"})
    assert response.status_code == 422 and response.mimetype == "text/html"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"url": "https://93.184.216.34/\\ud800"}', "url"),
        ('{"url": "https://93.184.216.34/hook", "event_types": ["\\udfff"]}', "event_types.0"),
        ('{"url": "https://93.184.216.34/hook", "\\ud800": 1}', "\\ud800"),
    ],
)
def test_a_lone_surrogate_in_a_json_string_or_key_is_refused_naming_it(
    client, partner, body, field
):
    headers = {**bearer(partner["token"]), "Content-Type": "application/json"}
    response = client.post("/api/v1/subscriptions", data=body, headers=headers)
    assert "surrogate" in problem(response, 422, field)["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 1000 + "]" * 1000,
        '{"name": ' + "[" * 1000 + "]" * 1000 + "}",
        '{"a":' * 40 + "1" + "}" * 40,
    ],
)
def test_json_nested_too_deep_is_a_malformed_body(client, partner, body):
    headers = {**bearer(partner["token"]), "Content-Type": "application/json"}
    response = client.post("/api/v1/subscriptions", data=body, headers=headers)
    assert "nests deeper" in problem(response, 400)["detail"]


@pytest.fixture
def paged(client, partner):
    """The lists a cursor pages through, each with something in it."""
    headers = bearer(partner["token"])
    client.post("/api/v1/subscriptions", json={"url": "https://93.184.216.34/h"}, headers=headers)
    subscription = client.get("/api/v1/subscriptions", headers=headers).get_json()["items"][0]
    send(client, client_party(client, partner["org"]), referral_body(make_service(make_org()).id))
    return {
        "services": ("/api/v1/services", "services.name"),
        "organizations": ("/api/v1/organizations", "organizations.name"),
        "referrals": ("/api/v1/referrals", "referrals.created_at"),
        "subscriptions": ("/api/v1/subscriptions", "subscriptions.id"),
        "deliveries": (
            f"/api/v1/subscriptions/{subscription['id']}/deliveries",
            "deliveries.event_id",
        ),
    }


WRONG_VALUES = (
    (5, 5),
    ("x", 7),
    (10**30, "id"),
    ("a\x00", "\ud800"),
    (1.5, [1]),
    (None, {"a": 1}),
)


@pytest.mark.parametrize(
    "listing", ["services", "organizations", "referrals", "subscriptions", "deliveries"]
)
def test_a_cursor_whose_values_have_the_wrong_types_is_refused(client, partner, paged, listing):
    url, ordering = paged[listing]
    for after, after_id in WRONG_VALUES:
        query = {"cursor": cursor(ordering, after, after_id)}
        response = client.get(url, query_string=query, headers=bearer(partner["token"]))
        problem(response, 422, "cursor")


def _json_headers(token):
    return {**bearer(token), "Content-Type": "application/json"}


def _subscription_body(size):
    return json.dumps({"url": "https://93.184.216.34/" + "a" * size}).encode()


def test_a_chunked_body_over_the_limit_is_413_from_the_test_client(client, partner):
    """A server that takes chunked bodies dechunks them and says so (wsgi.input_terminated)."""
    response = client.post(
        "/api/v1/subscriptions",
        input_stream=io.BytesIO(_subscription_body(TOO_LARGE)),
        headers={**_json_headers(partner["token"]), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    problem(response, 413)


def _chunked_post(base_url, path, body, headers):
    """POST with Transfer-Encoding: chunked (no Content-Length), 64 KiB a chunk."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    try:
        connection.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def test_a_chunked_body_over_the_limit_is_413_from_the_development_server(live_server, partner):
    headers = _json_headers(partner["token"])
    status, media_type, _ = _chunked_post(
        live_server, "/api/v1/subscriptions", _subscription_body(TOO_LARGE), headers
    )
    assert (status, media_type) == (413, PROBLEM_MEDIA_TYPE)
    status, _, body = _chunked_post(
        live_server, "/api/v1/subscriptions", json.dumps({"url": "x\x00"}).encode(), headers
    )
    assert status == 422 and b"url" in body  # a chunked body within the limit is read whole


@pytest.fixture
def gunicorn(database_url, tmp_path):
    """The production server running the hub on the tests' database."""
    port = _free_port()
    env = {
        **os.environ,
        "HUB_ENV": "development",
        "DATABASE_URL": database_url,
        "HUB_INSTANCE_PATH": str(tmp_path),
    }
    command = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        [*command, "referral_hub.wsgi:app"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base_url}/healthz", timeout=10)
                break
            except requests.RequestException:
                time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_chunked_body_over_the_limit_is_413_from_gunicorn(gunicorn):
    form = ("grant_type=client_credentials&scope=" + "a" * TOO_LARGE).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, _ = _chunked_post(gunicorn, "/oauth/token", form, headers)
    assert status == 413
    status, _, body = _chunked_post(gunicorn, "/oauth/token", b"client_id=a%00", headers)
    assert status == 422 and b"client_id" in body  # read whole when within the limit


def test_a_referrals_cursor_with_a_time_without_its_offset_is_refused(client, partner):
    query = {"cursor": cursor("referrals.created_at", "2020-01-01T10:00:00", "id")}
    response = client.get("/api/v1/referrals", query_string=query, headers=bearer(partner["token"]))
    problem(response, 422, "cursor")


def test_a_sign_in_link_with_a_nul_character_is_refused_not_followed(client):
    page = client.get("/login?next=/%00/evil.example", headers={"Accept": "text/html"})
    assert page.status_code == 422 and page.mimetype == "text/html"
    form = {"email": "someone@example.org", "password": "x", "next": "/\x00/evil.example"}
    posted = client.post("/login", data=form, headers={"Accept": "text/html"})
    assert posted.status_code == 422 and "Location" not in posted.headers
