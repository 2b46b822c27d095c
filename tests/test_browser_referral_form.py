"""The referral form in a real browser on a phone, in English and in Khmer, without JavaScript:
consent first, errors that land on their fields, a draft saved and resumed. Screenshots go to
tests/artifacts/referral-form-<language>/."""

import re

import pytest

from referral_hub.extensions import db
from referral_hub.referrals.models import Referral

from .referral_fixtures import GIVEN_NAME, PHONE
from .test_browser import ARTIFACTS, PHONE_SCREEN, Person, _network

LANGUAGES = pytest.mark.parametrize("language", ["en", "km"])


def _caseworker(browser, live_server, language, name):
    """Caseworker A of a small network, signed in, at step 1 of the form of its detox service."""
    service, people = _network()
    shots = ARTIFACTS / f"referral-form-{language}" / name
    for old in shots.glob("*.png"):
        old.unlink()
    person = Person(browser, live_server, people["a"], language, shots)
    person.sign_in()
    person.page.goto(f"{live_server}/services/{service.id}/refer")
    return person


def _agree(person, *categories):
    """Step 1: the guardian's thumbprint for `categories`; then on to step 2."""
    page = person.page
    page.select_option('select[name="consent.given_by"]', "guardian")
    page.select_option('select[name="consent.method"]', "thumbprint")
    for code in categories:
        page.locator(f'input[name="consent.categories"][value="{code}"]').check()
    person.shot("consent")
    page.locator('button[name="go"][value="details"]').click()
    page.wait_for_load_state()


def _field(page, name):
    return page.locator(f'[name="{name}"]:not([type="hidden"])')


@LANGUAGES
def test_consent_first_hides_the_categories_not_agreed_to(app, live_server, browser, language):
    person = _caseworker(browser, live_server, language, "consent-first")
    page = person.page
    assert _field(page, "subject.sex").count() == 0  # step 1 asks consent only
    _agree(person, "contact")
    person.shot("details-contact-only")
    assert _field(page, "subject.contact.phone").is_visible()
    assert _field(page, "subject.sex").is_visible()
    for hidden in ("subject.identity.given_name", "subject.health.notes"):
        assert _field(page, hidden).count() == 0
    person.context.close()


@LANGUAGES
def test_an_empty_form_marks_its_three_fields_and_the_summary_links_to_them(
    app, live_server, browser, language
):
    person = _caseworker(browser, live_server, language, "empty-form")
    page = person.page
    _agree(person, "contact")
    page.locator('button[name="go"][value="send"]').click()
    page.wait_for_load_state()
    person.shot("errors")
    summary = page.locator("#errors")
    assert summary.is_visible()
    box = summary.bounding_box()
    assert box["y"] < PHONE_SCREEN["height"]  # seen without scrolling
    links = summary.locator("a")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        "#subject.sex",
        "#subject.age",
        "#subject.province",
    ]
    for name in ("subject.sex", "subject.age", "subject.province"):
        assert page.locator(f'[id="{name}-error"]').is_visible()
        assert _field(page, name).get_attribute("aria-invalid") == "true"
    links.nth(2).click()
    page.wait_for_url(re.compile(r"#subject\.province$"))
    # The link brings the field into view with its label and its error above it.
    for shown in ('label[for="subject.province"]', '[id="subject.province-error"]'):
        assert 0 <= page.locator(shown).bounding_box()["y"] < PHONE_SCREEN["height"], shown
    assert page.locator('[id="subject.province"]').bounding_box()["y"] < PHONE_SCREEN["height"]
    person.shot("after-following-a-link")
    person.context.close()


@LANGUAGES
def test_a_draft_is_saved_and_resumed(app, live_server, browser, language):
    person = _caseworker(browser, live_server, language, "draft")
    page = person.page
    _agree(person, "identity", "contact")
    page.locator('input[name="urgency"][value="high"]').check()
    page.select_option('select[name="subject.sex"]', "male")
    page.fill('input[name="subject.age"]', "16")
    page.fill('input[name="subject.identity.given_name"]', GIVEN_NAME)
    page.fill('input[name="subject.contact.phone"]', PHONE)
    page.locator('button[name="go"][value="draft"]').click()
    page.wait_for_url(re.compile(r"/drafts/"))
    person.shot("draft-saved")

    page.goto(live_server + "/home")
    person.shot("home-with-draft")
    page.locator("#drafts-list a").first.click()
    page.wait_for_url(re.compile(r"/drafts/"))
    assert _field(page, "subject.identity.given_name").input_value() == GIVEN_NAME
    assert _field(page, "subject.contact.phone").input_value() == PHONE
    assert _field(page, "subject.age").input_value() == "16"
    page.select_option('select[name="subject.province"]', "17")
    person.shot("draft-resumed")
    page.locator('button[name="go"][value="send"]').click()
    page.wait_for_url(re.compile(r"/referrals/"))
    person.shot("sent")
    referral = db.session.get(Referral, page.url.rsplit("/", 1)[1])
    assert referral.subject_age == 16 and referral.categories_sent == ["identity", "contact"]
    page.goto(live_server + "/home")
    assert page.locator("#drafts-list").count() == 0  # sent, so no longer a draft
    person.context.close()
