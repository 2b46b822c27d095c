"""Signing in to the pages and sending their forms, as a browser would."""

from .factories import csrf_from, make_org, make_user, sign_in


def signed_in(app, roles=("caseworker",), organization=None, provinces=(), language=None):
    """A test client signed in as a new user, reading `language` if given; (client, user)."""
    organization = organization or make_org()
    user = make_user(organization, roles=roles, provinces=provinces)
    browser = app.test_client()
    response = sign_in(browser, user.email)
    assert response.status_code == 302, response.get_data(as_text=True)
    if language:
        browser.set_cookie("hub_lang", language)
    return browser, user


def submit(browser, page_url, action_url=None, **fields):
    """Post a form with the CSRF token read from the page it is on."""
    token = csrf_from(browser.get(page_url).get_data(as_text=True))
    return browser.post(action_url or page_url, data={"csrf_token": token, **fields})


def text(response):
    return response.get_data(as_text=True)
