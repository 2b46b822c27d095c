"""The app factory, health checks, problem+json errors and security headers."""

import base64
import gc
import importlib

import pytest

from referral_hub import create_app
from referral_hub.config import DEFAULT_SECRET_KEY, ConfigError
from referral_hub.errors import PROBLEM_MEDIA_TYPE

from .conftest import hub_config


@pytest.mark.parametrize("secret", [DEFAULT_SECRET_KEY, "", "short-secret"])
def test_production_refuses_a_default_missing_or_short_secret(database_url, live_port, secret):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app(hub_config(database_url, live_port, HUB_ENV="production", SECRET_KEY=secret))


DATA_KEY = "k1:" + base64.b64encode(b"k" * 32).decode()


def test_production_refuses_to_start_without_data_encryption_keys(database_url, live_port):
    with pytest.raises(ConfigError, match="DATA_ENCRYPTION_KEYS"):
        create_app(hub_config(database_url, live_port, HUB_ENV="production", SECRET_KEY="x" * 40))


def test_production_with_a_real_secret_starts_with_hsts_and_secure_cookies(database_url, live_port):
    config = hub_config(
        database_url,
        live_port,
        HUB_ENV="production",
        SECRET_KEY="x" * 40,
        DATA_ENCRYPTION_KEYS=DATA_KEY,
    )
    hub = create_app(config)
    assert hub.config["SESSION_COOKIE_SECURE"] is True
    response = hub.test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_the_production_entry_point_freezes_the_app_out_of_the_collector(
    database_url, tmp_path, monkeypatch
):
    """gunicorn referral_hub.wsgi:app: what the app built stays out of full collections."""
    monkeypatch.setenv("HUB_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("HUB_ENV", "development")
    monkeypatch.setenv("DATABASE_URL", database_url)
    gc.unfreeze()
    try:
        wsgi = importlib.import_module("referral_hub.wsgi")
        assert wsgi.app.config["SQLALCHEMY_DATABASE_URI"] == database_url
        assert gc.get_freeze_count() > 10000
    finally:
        gc.unfreeze()


def test_development_keeps_a_random_secret_in_the_instance_folder(
    database_url, live_port, tmp_path, monkeypatch
):
    monkeypatch.setenv("HUB_INSTANCE_PATH", str(tmp_path))
    config = hub_config(database_url, live_port, HUB_ENV="development")
    del config["SECRET_KEY"]
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first, second = create_app(config), create_app(config)
    assert (
        first.config["SECRET_KEY"]
        == second.config["SECRET_KEY"]
        == (tmp_path / "secret_key").read_text()
    )
    assert len(first.config["SECRET_KEY"]) >= 48


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {
        "status": "ok",
        "database": "ok",
        "schema": "current",
    }


def test_readyz_says_unavailable_when_the_schema_is_behind(live_port, tmp_path):
    empty = create_app(hub_config(f"sqlite:///{tmp_path}/empty.sqlite", live_port))
    response = empty.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["schema"] == "behind"


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_MEDIA_TYPE
    body = response.get_json()
    assert body["status"] == status
    assert body["type"].startswith("urn:referral-hub:problem:")
    assert body["title"] and body["detail"]
    return body


def test_unknown_route_is_a_problem(client):
    assert_problem(client.get("/api/v1/nothing-here"), 404)


def test_wrong_method_is_a_problem_with_allow(client):
    response = client.delete("/healthz")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_malformed_json_wrong_type_huge_body_and_bad_fields(client, partner):
    headers = {"Authorization": f"Bearer {partner['token']}", "Content-Type": "application/json"}
    url = "/api/v1/organizations"
    assert_problem(client.post(url, data="{not json", headers=headers), 400)
    assert_problem(
        client.post(url, data="name=x", headers={**headers, "Content-Type": "text/plain"}), 415
    )
    huge = '{"name": "' + "x" * (1024 * 1024 + 10) + '"}'
    assert_problem(client.post(url, data=huge, headers=headers), 413)
    body = assert_problem(client.post(url, json={"name": 7, "colour": "red"}, headers=headers), 422)
    assert {e["field"] for e in body["errors"]} == {"name", "colour"}
    body = assert_problem(client.post(url, json=["a list"], headers=headers), 422)


def test_unexpected_error_is_a_500_problem_without_internals(database_url, live_port):
    hub = create_app(hub_config(database_url, live_port))

    @hub.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail at /srv/app.py line 3")

    response = hub.test_client().get("/boom")
    body = assert_problem(response, 500)
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_security_headers_on_api_and_pages(client):
    api = client.get("/healthz")
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in api.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in api.headers
    page = client.get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"


def test_request_id_is_echoed_or_made(client):
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-12345678"}).headers["X-Request-ID"]
        == "abc-12345678"
    )
    made = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"}).headers[
        "X-Request-ID"
    ]
    assert len(made) == 24 and "<" not in made


def test_openapi_file_is_served(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert b"openapi: 3.1" in response.data


def test_a_retry_schedule_in_fractions_of_a_second_is_read_from_the_environment(
    database_url, live_port, monkeypatch
):
    monkeypatch.setenv("CALLBACK_RETRY_SCHEDULE", "0,0.2,1.5")
    hub = create_app(hub_config(database_url, live_port))
    assert hub.config["CALLBACK_RETRY_SCHEDULE"] == [0, 0.2, 1.5]
