"""Signing in to the pages and sending their forms, as a browser would."""

import html
import re

from .factories import csrf_from, make_org, make_service, make_user, sign_in
from .referral_fixtures import CASE_NOTE, FAMILY_NAME, GIVEN_NAME, PHONE

REFERRAL_FORM = {
    "urgency": "high",
    "needs": "detox",
    "subject.sex": "male",
    "subject.age": "16",
    "subject.province": "17",
    "subject.identity.given_name": GIVEN_NAME,
    "subject.identity.family_name": FAMILY_NAME,
    "subject.contact.phone": PHONE,
    "subject.case_history.reason": CASE_NOTE,
    "consent.given_by": "guardian",
    "consent.method": "thumbprint",
    "consent.obtained_at": "2026-01-10T09:30",
    "consent.categories": ["identity", "contact"],
}


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


def two_partners(app, language="en"):
    """Caseworkers of a sending and of a receiving organisation, and the receiver's detox
    service for boys of 12 to 18 in Siem Reap (beside its legal aid desk in Phnom Penh)."""
    sender_org, receiver_org = make_org(province="17"), make_org(province="17")
    detox = make_service(
        receiver_org,
        name="Water Lily Detox",
        categories=["detox"],
        areas=["17"],
        minimum_age=12,
        maximum_age=18,
        eligibility_sex="male",
    )
    make_service(receiver_org, name="Legal Aid Desk", categories=["legal_aid"], areas=["12"])
    sender, _ = signed_in(app, organization=sender_org, language=language)
    receiver, _ = signed_in(app, organization=receiver_org, language=language)
    return sender, receiver, detox


def send_referral(sender, service, **changes):
    """Send the referral form of `service`, `changes` replacing fields of REFERRAL_FORM."""
    return submit(sender, f"/services/{service.id}/refer", **{**REFERRAL_FORM, **changes})


def save_draft(sender, service, **changes):
    """Save the referral form of `service` as a draft at step 2; the draft's id."""
    fields = {**REFERRAL_FORM, "step": "details", "go": "draft", **changes}
    response = submit(sender, f"/services/{service.id}/refer", **fields)
    assert response.status_code == 302, response.get_data(as_text=True)
    return re.search(r"/drafts/([0-9a-f-]{36})", response.headers["Location"]).group(1)


def referral_id_of(response):
    """The referral a response sends the browser to."""
    return re.search(r"/referrals/([0-9a-f-]{36})", response.headers["Location"]).group(1)


def change_status(browser, referral_id, status, **fields):
    """Press a referral page's button moving it to `status`, with the version the page shows."""
    url = f"/referrals/{referral_id}"
    page = text(browser.get(url))
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    fields = {"csrf_token": csrf_from(page), "version": version, "status": status, **fields}
    return browser.post(f"{url}/status", data=fields)


CONFIRM_FORM = re.compile(r'<form method="post" action="([^"]+)" class="narrow" id="confirm-form">')
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def confirm(browser, response, **typed):
    """Follow a drastic action's form to the page asking once more and press its button;
    `typed` is what the person types there (typed=the reference, to erase)."""
    assert response.status_code == 303, response.status_code
    page = text(browser.get(response.headers["Location"]))
    action = CONFIRM_FORM.search(page)
    assert action, page
    form = page[action.end() : page.index("</form>", action.end())]
    fields = {name: html.unescape(value) for name, value in HIDDEN.findall(form)}
    return browser.post(html.unescape(action.group(1)), data={**fields, **typed})
