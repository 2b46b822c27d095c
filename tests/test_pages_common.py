"""What every page shares: sign-in, language, errors, CSRF, the menu by role."""

import re
import uuid
from urllib.parse import parse_qs, urlsplit

from referral_hub.audit.models import PendingAuditEntry
from referral_hub.extensions import db

from .factories import (
    PASSWORD,
    add_location,
    make_client,
    make_org,
    make_service,
    make_user,
    sign_in,
)
from .pages import referral_id_of, save_draft, send_referral, signed_in, submit, text
from .test_pages_callbacks import add_subscription, delivery

PUBLIC_PAGES = {"/login"}


def test_pages_need_signing_in(app, client):
    routes = _page_routes(app, with_arguments=True)
    assert {"/home", "/referrals/<uuid:referral_id>", "/admin/users"} <= set(routes)
    for route in routes:
        if route in PUBLIC_PAGES:
            continue
        path = re.sub(r"<uuid:\w+>", str(uuid.uuid4()), route)
        response = client.get(path, headers={"Accept": "text/html"})
        assert response.status_code == 302, route
        target = urlsplit(response.headers["Location"])
        assert target.path == "/login" and parse_qs(target.query) == {"next": [path]}, route


def test_language_is_chosen_remembered_and_used(app):
    browser, _user = signed_in(app)
    assert 'lang="km"' in text(browser.get("/login", headers={"Accept-Language": "km"}))
    response = submit(browser, "/login", "/language", lang="en", next="/login")
    assert response.status_code == 302
    assert "hub_lang=en" in response.headers["Set-Cookie"]
    assert "HttpOnly" in response.headers["Set-Cookie"]
    page = text(browser.get("/login", headers={"Accept-Language": "km"}))
    assert '<html lang="en">' in page
    submit(browser, "/login", "/language", lang="km", next="/login")
    assert '<html lang="km">' in text(browser.get("/login"))


def test_language_change_never_redirects_off_site(app):
    browser, _user = signed_in(app)
    response = submit(browser, "/login", "/language", lang="en", next="//evil.example/")
    assert response.headers["Location"] == "/"


def test_forms_without_csrf_token_are_refused_with_a_page(app):
    browser, _user = signed_in(app)
    response = browser.post("/language", data={"lang": "en"})
    assert response.status_code == 403
    assert response.content_type.startswith("text/html")
    assert "<h1>" in text(response)


def test_unknown_page_gets_an_error_page_and_api_keeps_problem_json(client):
    page = client.get("/no-such-page", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 404 and page.content_type.startswith("text/html")
    api = client.get("/api/v1/no-such-thing", headers={"Accept": "text/html"})
    assert api.status_code == 404 and api.content_type == "application/problem+json"


def test_login_keeps_the_email_and_says_what_went_wrong(app):
    organization = make_org()
    user = make_user(organization)
    browser = app.test_client()
    response = submit(browser, "/login", email=user.email, password=PASSWORD + "x")
    assert response.status_code == 401
    assert f'value="{user.email}"' in text(response)
    assert 'role="alert"' in text(response)


def test_session_cookie_is_httponly_and_samesite(app):
    organization = make_org()
    user = make_user(organization)
    browser = app.test_client()
    response = submit(browser, "/login", email=user.email, password=PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def _page_routes(app, with_arguments=False):
    """The rules of the page blueprints a GET opens; those with arguments only if asked."""
    from referral_hub.web import error_pages

    pages = {
        name for name, funcs in app.before_request_funcs.items() if error_pages._mark_page in funcs
    }
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in pages
        and "GET" in rule.methods
        and (with_arguments or not rule.arguments)
        and rule.rule != "/oauth/authorize"  # needs an OAuth request: tests/test_oauth_flows.py
    )


def _assert_light_labelled_and_in(language, browser, route):
    """The page weighs under 100 KB, is in `language`, and every control has a label."""
    response = browser.get(route)
    if response.status_code == 302:
        return
    assert response.status_code == 200, route
    assert len(response.data) < 100_000, (route, len(response.data))
    if not response.content_type.startswith("text/html"):
        return  # a CSV or PDF download
    page = text(response)
    assert f'<html lang="{language}">' in page, route
    controls = re.findall(r"<(?:input|select|textarea)\b[^>]*>", page)
    for control in controls:
        if 'type="hidden"' in control or 'type="submit"' in control:
            continue
        found = re.search(r'\bid="([^"]+)"', control)
        by_for = found and f'for="{found.group(1)}"' in page
        wrapped = re.search(r"<label[^>]*>(?:(?!</label>).)*" + re.escape(control), page, re.S)
        assert by_for or wrapped, (route, control)


def _everyone(app, organization=None):
    return signed_in(
        app,
        roles=("caseworker", "org_admin", "coordinator", "focal_point"),
        organization=organization,
        provinces=("17",),
    )


def test_every_page_is_light_labelled_and_in_the_readers_language(app):
    browser, _user = _everyone(app)
    routes = _page_routes(app)
    assert {"/home", "/find", "/reports", "/admin/users", "/audit"} <= set(routes)
    for language in ("en", "km"):
        browser.set_cookie("hub_lang", language)
        for route in routes:
            _assert_light_labelled_and_in(language, browser, route)


def test_pages_about_one_record_are_light_and_labelled_with_data(app):
    """The send-referral form, a referral, a service, a subscription and curation pages."""
    mine = make_org()
    browser, _user = _everyone(app, mine)
    colleague = make_user(mine)
    receiver = make_org()
    service = make_service(
        receiver,
        categories=["detox", "legal_aid"],
        minimum_age=12,
        maximum_age=18,
        languages=["km", "en"],
        phones=[{"number": "+855 12 345 678", "description": "intake"}],
        email="intake@example.org",
    )
    add_location(service, "Siem Reap centre", "Street 60, Siem Reap")
    referral_id = referral_id_of(send_referral(browser, service))
    draft_id = save_draft(browser, service)
    subscription, _secret, _page = add_subscription(browser)
    delivery(subscription, "failed", 1, attempts=[(500, None, 120), (None, "timeout", 5000)])
    client_id, _client_secret = make_client(mine)
    routes = [
        f"/services/{service.id}",
        f"/services/{service.id}/refer",
        f"/referrals/{referral_id}",
        f"/drafts/{draft_id}",
        f"/callbacks/{subscription.id}",
        f"/admin/users/{colleague.id}",
        f"/curation/organizations/{receiver.id}",
        f"/curation/organizations/{receiver.id}/services/new",
        f"/curation/services/{service.id}",
        # the pages asking once more before a drastic action
        f"/referrals/{referral_id}/status?status=withdrawn",
        f"/referrals/{referral_id}/consent/withdraw?erase=yes",
        f"/admin/users/{colleague.id}/active",
        f"/admin/clients/{client_id}/revoke",
        f"/curation/services/{service.id}/status?status=defunct",
    ]
    argument_routes = [r for r in _page_routes(app, with_arguments=True) if "<" in r]
    assert len(routes) == len(argument_routes), argument_routes  # a new page joins this list
    for language in ("en", "km"):
        browser.set_cookie("hub_lang", language)
        for route in routes:
            assert browser.get(route).status_code == 200, route
            _assert_light_labelled_and_in(language, browser, route)


def test_a_person_changes_their_own_password(app):
    browser, user = signed_in(app, language="en")
    url = "/account/password"
    wrong = submit(
        browser, url, current_password="nope", new_password="x" * 12, repeat_password="x" * 12
    )
    assert wrong.status_code == 422 and 'id="current_password-error"' in text(wrong)
    short = submit(
        browser, url, current_password=PASSWORD, new_password="short", repeat_password="short"
    )
    assert short.status_code == 422 and 'id="new_password-error"' in text(short)
    differ = submit(
        browser, url, current_password=PASSWORD, new_password="a" * 12, repeat_password="b" * 12
    )
    assert differ.status_code == 422 and 'id="repeat_password-error"' in text(differ)
    new = "a new password only I know"
    done = submit(browser, url, current_password=PASSWORD, new_password=new, repeat_password=new)
    assert done.status_code == 302
    assert sign_in(app.test_client(), user.email).status_code == 401
    assert sign_in(app.test_client(), user.email, new).status_code == 302
    actions = [e.action for e in db.session.scalars(db.select(PendingAuditEntry))]
    assert "user.password_changed" in actions


def test_the_password_page_needs_signing_in_and_a_csrf_token(app):
    assert app.test_client().get("/account/password").status_code == 302
    browser, _user = signed_in(app)
    response = browser.post("/account/password", data={"current_password": PASSWORD})
    assert response.status_code == 403
