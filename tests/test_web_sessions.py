"""Web sessions: where signing in may send a browser, when a session cookie stops working,
what browsers may keep of a page, and HEAD and OPTIONS on every route."""

import html
import re
import uuid
from urllib.parse import unquote

import pytest
from flask.testing import FlaskClient

from referral_hub.auth.models import RefreshToken, User
from referral_hub.directory.models import Organization
from referral_hub.extensions import db

from .factories import PASSWORD, bearer, csrf_from, make_org, make_user, sign_in, user_tokens
from .pages import referral_id_of, send_referral, signed_in, submit, text, two_partners
from .referral_fixtures import GIVEN_NAME

COOKIE = "hub_session"
LOGIN_NEXT = re.compile(r'action="/login".*?name="next" value="([^"]*)"', re.S)

# `next` as it stands in a link's query string: each one must land on the home page.
HOSTILE_NEXT = [
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d/evil.example",
    "/%0d%0a/evil.example",
    "/%0d%0aSet-Cookie:%20hub_session=x",
    "/%0b/evil.example",
    "/%0c/evil.example",
    "/%1f/evil.example",
    "/%7f/evil.example",
    "%09//evil.example",
    "%20//evil.example",
    "/%20/evil.example",
    "/%5C/evil.example",
    "/%5Cevil.example",
    "%5C%5Cevil.example",
    "%5C/evil.example",
    "//evil.example",
    "///evil.example",
    "////evil.example",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "//",
    "///",
    "http:",
    "http://evil.example/",
    "https:evil.example",
    "http:/evil.example",
    "HTTPS://evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,hi",
    "evil.example",
    "",
    "/%C2%A0/evil.example",  # no-break space
    "/%E3%80%80/evil.example",  # ideographic space
    "/%E2%80%8B/evil.example",  # zero-width space
    "/%E2%80%A8/evil.example",  # line separator
    "/%E1%9A%80/evil.example",  # ogham space mark
    "/%EF%BB%BF/evil.example",  # byte order mark
    "%EF%BC%8F%EF%BC%8Fevil.example",  # fullwidth solidus
    "/%E1%9E%80",  # a Khmer letter: printable, but not how a browser writes a path
]


def _sign_in_with_next(app, raw_next):
    """Open the login page from a link carrying `next` and send its form; and send the form
    with `next` put in by hand."""
    user = make_user(make_org())
    browser = app.test_client()
    page = browser.get(f"/login?next={raw_next}")
    assert page.status_code == 200
    kept = html.unescape(LOGIN_NEXT.search(text(page))[1])
    form = {"csrf_token": csrf_from(text(page)), "email": user.email, "password": PASSWORD}
    through_page = browser.post("/login", data={**form, "next": kept})
    direct = app.test_client()
    token = csrf_from(text(direct.get("/login")))
    posted = direct.post("/login", data={**form, "csrf_token": token, "next": unquote(raw_next)})
    return through_page, posted


@pytest.mark.parametrize("raw_next", HOSTILE_NEXT)
def test_signing_in_never_sends_the_browser_off_site(app, raw_next):
    for response in _sign_in_with_next(app, raw_next):
        assert response.status_code == 302
        assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    "raw_next", ["/home", "/referrals/1b7c?tab=events", "/find%3Fq%3D%25E1%259E%2580%26age%3D9"]
)
def test_signing_in_goes_on_to_the_page_asked_for(app, raw_next):
    for response in _sign_in_with_next(app, raw_next):
        assert response.status_code == 302
        assert response.headers["Location"] == unquote(raw_next)


def test_choosing_a_language_never_sends_the_browser_off_site(app):
    browser, _user = signed_in(app)
    response = submit(browser, "/login", "/language", lang="en", next="/\t/evil.example")
    assert response.headers["Location"] == "/"


# Sessions end


def _copy(browser):
    """Another browser holding a copy of `browser`'s session cookie, as a thief would."""
    thief = browser.application.test_client()
    thief.set_cookie(COOKIE, browser.get_cookie(COOKIE).value)
    return thief


def _signed_out(browser, url="/home"):
    response = browser.get(url)
    return response.status_code == 302 and "/login" in response.headers["Location"]


def _press(browser, page_url, action_url):
    return browser.post(action_url, data={"csrf_token": csrf_from(text(browser.get(page_url)))})


def test_a_copied_cookie_is_refused_once_its_session_signed_out(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    url = f"/referrals/{referral_id}"
    copy = _copy(receiver)
    assert GIVEN_NAME in text(copy.get(url))
    assert _press(receiver, "/home", "/logout").status_code == 302
    replayed = copy.get(url)
    assert replayed.status_code == 302 and "/login" in replayed.headers["Location"]
    assert GIVEN_NAME not in text(replayed)


def test_signing_out_ends_that_session_only(app):
    browser, user = signed_in(app)
    phone = app.test_client()
    assert sign_in(phone, user.email).status_code == 302
    copy = _copy(browser)
    _press(browser, "/home", "/logout")
    assert _signed_out(browser) and _signed_out(copy)
    assert phone.get("/home").status_code == 200


def test_a_signed_out_session_stays_refused_after_many_other_sign_outs(app):
    browser, user = signed_in(app)
    copy = _copy(browser)
    _press(browser, "/home", "/logout")
    for _ in range(40):
        other = app.test_client()
        sign_in(other, user.email)
        _press(other, "/home", "/logout")
    assert _signed_out(copy)
    db.session.expire_all()
    assert len(db.session.get(User, user.id).ended_sessions) < 40


def test_signing_out_everywhere_ends_every_session_and_app(app, client):
    browser, user = signed_in(app, language="en")
    phone = app.test_client()
    sign_in(phone, user.email)
    copy = _copy(browser)
    tokens = user_tokens(app, user, "referrals:read")
    page = text(browser.get("/account/password"))
    assert "Sign out everywhere" in page
    response = _press(browser, "/account/password", "/account/sign-out-everywhere")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert "signed out on every device" in text(browser.get("/login"))
    assert _signed_out(browser) and _signed_out(phone) and _signed_out(copy)
    refresh_tokens = db.session.scalars(db.select(RefreshToken).filter_by(user_id=user.id)).all()
    assert refresh_tokens and all(token.revoked_at for token in refresh_tokens)
    listed = client.get("/api/v1/referrals", headers=bearer(tokens["access_token"]))
    assert listed.status_code == 401
    assert sign_in(app.test_client(), user.email).status_code == 302


def test_signing_out_everywhere_needs_a_csrf_token(app):
    browser, _user = signed_in(app)
    assert browser.post("/account/sign-out-everywhere").status_code == 403
    assert browser.get("/home").status_code == 200


def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(app):
    browser, user = signed_in(app)
    phone = app.test_client()
    sign_in(phone, user.email)
    copy = _copy(browser)
    new = "a new password only I know"
    done = submit(
        browser,
        "/account/password",
        current_password=PASSWORD,
        new_password=new,
        repeat_password=new,
    )
    assert done.status_code == 302
    assert browser.get("/home").status_code == 200
    assert _signed_out(phone) and _signed_out(copy)


def test_disabling_a_user_ends_their_sessions_for_good(app):
    admin, admin_user = signed_in(app, roles=("org_admin",))
    colleague_browser, colleague = _colleague(app, admin_user)
    copy = _copy(colleague_browser)
    url = f"/admin/users/{colleague.id}"
    page = text(admin.get(url))
    for active in ("false", "true"):  # disabling asks once more: confirmed here
        answer = admin.post(
            f"{url}/active",
            data={"csrf_token": csrf_from(page), "active": active, "confirmed": "yes"},
        )
        assert answer.status_code == 302
    assert _signed_out(colleague_browser) and _signed_out(copy)
    assert sign_in(app.test_client(), colleague.email).status_code == 302


def test_changing_someones_roles_ends_their_sessions(app):
    admin, admin_user = signed_in(app, roles=("org_admin",))
    colleague_browser, colleague = _colleague(app, admin_user)
    url = f"/admin/users/{colleague.id}"
    token = csrf_from(text(admin.get(url)))
    changed = admin.post(
        f"{url}/roles", data={"csrf_token": token, "roles": ["caseworker", "org_admin"]}
    )
    assert changed.status_code == 302
    assert _signed_out(colleague_browser)


def test_changing_ones_own_roles_keeps_one_signed_in(app):
    admin, admin_user = signed_in(app, roles=("org_admin",))
    url = f"/admin/users/{admin_user.id}"
    token = csrf_from(text(admin.get(url)))
    changed = admin.post(
        f"{url}/roles", data={"csrf_token": token, "roles": ["caseworker", "org_admin"]}
    )
    assert changed.status_code == 302
    assert admin.get("/home").status_code == 200


def test_disabling_a_user_through_the_api_ends_their_sessions(app, client):
    _admin, admin_user = signed_in(app, roles=("org_admin",))
    colleague_browser, colleague = _colleague(app, admin_user)
    token = user_tokens(app, admin_user, "admin")["access_token"]
    url = f"/api/v1/organizations/{admin_user.organization_id}/users/{colleague.id}"
    for active in (False, True):
        response = client.patch(url, headers=bearer(token), json={"active": active})
        assert response.status_code == 200
    assert _signed_out(colleague_browser)


def test_the_authorization_page_refuses_a_signed_out_session(app):
    browser, _user = signed_in(app)
    copy = _copy(browser)
    _press(browser, "/home", "/logout")
    response = copy.get("/oauth/authorize?response_type=code&client_id=x")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def _colleague(app, admin_user):
    """A caseworker of the admin's organisation, signed in in their own browser."""
    colleague = make_user(db.session.get(Organization, admin_user.organization_id))
    browser = app.test_client()
    assert sign_in(browser, colleague.email).status_code == 302
    return browser, colleague


# What browsers keep


def test_pages_with_personal_data_are_not_stored(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    admin, _user = signed_in(app, roles=("org_admin",))
    for browser, url in (
        (receiver, f"/referrals/{referral_id}"),
        (receiver, "/home"),
        (admin, "/admin/users"),
        (receiver, "/login"),
    ):
        response = browser.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-store", url


def test_static_files_keep_their_caching(client):
    response = client.get("/static/hub.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")


# HEAD and OPTIONS


def _routes(app):
    """Every path of the hub, its arguments filled with well-shaped values, and its methods."""
    some_id = str(uuid.uuid4())
    routes = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:(\w+):)?\w+>", lambda m: some_id if m[1] == "uuid" else "x", rule.rule)
        routes.setdefault(path, set()).update(rule.methods)
    return sorted(routes.items())


def test_head_and_options_are_safe_on_every_route(app):
    """HEAD answers as GET does (so never a CSRF refusal) and OPTIONS lists the methods."""
    signed, user = signed_in(app, roles=("org_admin", "coordinator"))
    token = user_tokens(app, user, "admin referrals:read directory:read")["access_token"]
    # Plain clients: openapi.yaml documents the methods that do something, not these two.
    anonymous, browser = FlaskClient(app), FlaskClient(app)
    browser.set_cookie(COOKIE, signed.get_cookie(COOKIE).value)
    routes = _routes(app)
    assert len(routes) > 80
    for path, methods in routes:
        for client, headers in ((anonymous, {}), (browser, bearer(token))):
            options = client.options(path, headers=headers)
            assert options.status_code == 200, path
            assert set(options.headers["Allow"].split(", ")) == methods, path
            head = client.head(path, headers=headers)
            expected = client.get(path, headers=headers).status_code if "GET" in methods else 405
            assert head.status_code == expected < 500, path
