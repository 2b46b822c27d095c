"""What every page shares: sign-in, language, errors, CSRF, the menu by role."""

import re

from referral_hub.audit.models import AuditEntry
from referral_hub.extensions import db

from .factories import PASSWORD, make_org, make_user, sign_in
from .pages import signed_in, submit, text


def test_pages_need_signing_in(client):
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 302
    follow = client.get(response.headers["Location"], headers={"Accept": "text/html"})
    assert "/login" in follow.request.path or follow.status_code in (200, 302)


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


def _page_routes(app):
    """Every page a GET without parameters opens: the rules of the page blueprints."""
    from referral_hub.web import error_pages

    pages = {
        name for name, funcs in app.before_request_funcs.items() if error_pages._mark_page in funcs
    }
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in pages
        and "GET" in rule.methods
        and not rule.arguments
        and rule.rule != "/oauth/authorize"  # needs an OAuth request: tests/test_oauth_flows.py
    )


def test_every_page_is_light_labelled_and_in_the_readers_language(app):
    browser, _user = signed_in(
        app, roles=("caseworker", "org_admin", "coordinator", "focal_point"), provinces=("17",)
    )
    routes = _page_routes(app)
    assert {"/home", "/find", "/reports", "/admin/users", "/audit"} <= set(routes)
    for language in ("en", "km"):
        browser.set_cookie("hub_lang", language)
        for route in routes:
            response = browser.get(route)
            if response.status_code == 302:
                continue
            page = text(response)
            assert response.status_code == 200, route
            assert len(response.data) < 100_000, (route, len(response.data))
            if not response.content_type.startswith("text/html"):
                continue
            assert f'<html lang="{language}">' in page, route
            controls = re.findall(r"<(?:input|select|textarea)\b[^>]*>", page)
            for control in controls:
                if 'type="hidden"' in control or 'type="submit"' in control:
                    continue
                found = re.search(r'\bid="([^"]+)"', control)
                assert found, (route, control)
                wrapped = re.search(
                    r"<label[^>]*>(?:(?!</label>).)*" + re.escape(found.group(0)), page, re.S
                )
                assert f'for="{found.group(1)}"' in page or wrapped, (route, control)


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
    actions = [e.action for e in db.session.scalars(db.select(AuditEntry))]
    assert "user.password_changed" in actions


def test_the_password_page_needs_signing_in_and_a_csrf_token(app):
    assert app.test_client().get("/account/password").status_code == 302
    browser, _user = signed_in(app)
    response = browser.post("/account/password", data={"current_password": PASSWORD})
    assert response.status_code == 403
