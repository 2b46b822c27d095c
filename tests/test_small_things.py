"""A favicon and a logo, compressed answers over 1 KB, and HEAD answering as GET does."""

import gzip

from referral_hub.compression import COMPRESSED_TYPES

from .factories import bearer, coordinator_token, make_org, make_service
from .pages import signed_in, text

GZIP = {"Accept-Encoding": "gzip"}
ALREADY_COMPRESSED = ("image/png", "image/jpeg", "image/webp", "application/pdf", "font/woff2")


def test_the_hub_serves_its_favicon_and_logo(app, client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert len(icon.data) < 1024
    assert icon.data.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
    logo = client.get("/static/logo.svg")
    assert logo.status_code == 200 and logo.data == icon.data
    page = text(client.get("/login"))
    assert 'rel="icon" href="/static/logo.svg"' in page
    assert 'class="logo" src="/static/logo.svg" alt=""' in page


def test_a_page_over_1_kb_is_gzipped_for_a_browser_that_accepts_it(app):
    browser, _user = signed_in(app, language="en")
    plain = browser.get("/find")
    assert len(plain.data) > 1024 and "Content-Encoding" not in plain.headers
    packed = browser.get("/find", headers=GZIP)
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(plain.data)
    assert gzip.decompress(packed.data).decode().count("<form") == text(plain).count("<form")


def test_api_json_over_1_kb_is_gzipped_and_smaller_answers_are_not(app, client):
    organization = make_org()
    for number in range(6):
        make_service(organization, name=f"Service {number}", description="Care " * 30)
    token = coordinator_token(app)
    listing = client.get("/api/v1/services", headers={**bearer(token), **GZIP})
    assert listing.status_code == 200 and listing.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(listing.data).startswith(b"{")
    small = client.get("/healthz", headers=GZIP)
    assert len(small.data) < 1024 and "Content-Encoding" not in small.headers
    refused = client.get("/api/v1/services", headers=GZIP)  # no token: a short problem
    assert refused.status_code == 401 and "Content-Encoding" not in refused.headers


def test_only_text_types_are_compressed():
    assert not set(ALREADY_COMPRESSED) & set(COMPRESSED_TYPES)
    assert "application/json" in COMPRESSED_TYPES and "text/html" in COMPRESSED_TYPES


def _same_answer(browser, path, headers):
    got, head = browser.get(path, headers=headers), browser.head(path, headers=headers)
    assert head.status_code == got.status_code, path
    assert head.data == b"", path
    for name in ("Content-Type", "Content-Length", "Content-Encoding", "Location"):
        assert head.headers.get(name) == got.headers.get(name), (path, name)


def test_head_answers_as_get_does(app, client):
    browser, _user = signed_in(app, ("caseworker", "coordinator"), language="en")
    token = coordinator_token(app)
    for headers in ({}, GZIP):
        for path in ("/", "/login", "/home", "/find", "/audit", "/favicon.ico", "/nowhere"):
            _same_answer(browser, path, headers)
        for path in ("/healthz", "/openapi.yaml", "/api/v1/services", "/api/v1/nowhere"):
            _same_answer(client, path, {**headers, **bearer(token)})
