"""The referral form: consent first, then only the agreed categories; every error at its field,
listed at the top with a link to it, in plain words in English and in Khmer."""

import re

import pytest
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from marshmallow import Schema, fields, validate

from referral_hub.extensions import db
from referral_hub.referrals.models import Referral
from referral_hub.web.messages import SHOWN_ON_PAGES

from .pages import REFERRAL_FORM, submit, text, two_partners
from .referral_fixtures import CASE_NOTE, GIVEN_NAME, PHONE

CONSENT = {
    "consent.given_by": "guardian",
    "consent.method": "thumbprint",
    "consent.obtained_at": "2026-01-10T09:30",
    "consent.categories": ["identity", "contact"],
}
NOTHING_ABOUT_THE_CHILD = {"subject.sex": "", "subject.age": "", "subject.province": ""}
# Every kind of wrong answer a person (or a stale page) can send.
WRONG_ANSWERS = [
    {name: "" for name in REFERRAL_FORM},
    NOTHING_ABOUT_THE_CHILD,
    {"subject.age": "sixteen", "subject.sex": "boy", "subject.province": "99"},
    {"subject.age": "200", "subject.district": "12345"},
    {"subject.district": "1201"},  # a district of another province
    {"subject.identity.given_name": "x" * 300, "subject.identity.date_of_birth": "14/03/2010"},
    {"subject.contact.phone": "1", "subject.contact.address": "x" * 6000},
    {"urgency": "soon", "needs": ["x" * 80]},
    {"eligibility_override.reason": "short"},
    {"consent.method": "telepathy", "consent.given_by": "", "consent.obtained_at": "yesterday"},
    {"consent.categories": ["identity", "finance"], "consent.expires_at": "soon"},
    {"urgency": "emergency", "consent.given_by": "best_interests"},
    {"consent.given_by": "best_interests", "consent.justification": "short"},
]


def _form_page(sender, service):
    return f"/services/{service.id}/refer"


def _send(sender, service, **changes):
    return submit(sender, _form_page(sender, service), **{**REFERRAL_FORM, **changes})


def _continue(sender, service, **consent):
    """Step 1 answered: the page of step 2."""
    return submit(sender, _form_page(sender, service), go="details", **{**CONSENT, **consent})


def _controls(page):
    """The names of the fields a person sees and fills in."""
    tags = re.findall(r"<(?:input|select|textarea)\b[^>]*>", page)
    shown = [tag for tag in tags if 'type="hidden"' not in tag]
    return {re.search(r'name="([^"]+)"', tag).group(1) for tag in shown}


def _hidden(page):
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


def _summary(page):
    """The list of errors at the top of the page."""
    return re.search(r'role="alert" id="errors">(.*?)</div>', page, re.S).group(1)


def _marshmallow_messages():
    """The start (up to the first value) of every message marshmallow itself writes."""
    found = set()
    for module in (fields, validate):
        for kind in vars(module).values():
            if not isinstance(kind, type):
                continue
            found.update(getattr(kind, "default_error_messages", {}).values())
            found.update(
                value
                for name, value in vars(kind).items()
                if isinstance(value, str) and "message" in name.lower()
            )
    found.update(Schema._default_error_messages.values())
    return {m.split("{")[0].strip() for m in found if len(m.split("{")[0].strip()) > 8}


def test_the_form_asks_consent_first_then_only_the_agreed_categories(app):
    sender, _receiver, detox = two_partners(app)
    first = text(sender.get(_form_page(sender, detox)))
    assert {"consent.given_by", "consent.method", "consent.categories"} <= _controls(first)
    assert not {"subject.sex", "subject.identity.given_name", "urgency"} & _controls(first)

    second = text(_continue(sender, detox, **{"consent.categories": ["contact"]}))
    assert 'id="errors"' not in second
    shown = _controls(second)
    assert {"urgency", "subject.sex", "subject.age", "subject.contact.phone"} <= shown
    assert not any(name.startswith(("subject.identity", "subject.health")) for name in shown)
    assert not any(name.startswith(("subject.case_history", "consent.")) for name in shown)
    assert _hidden(second)["consent.method"] == "thumbprint"  # step 1 carried along


def test_a_form_without_consented_categories_shows_only_the_facts(app):
    sender, _receiver, detox = two_partners(app)
    page = text(_continue(sender, detox, **{"consent.categories": []}))
    assert not any(name.startswith("subject.contact") for name in _controls(page))
    assert "subject.sex" in _controls(page)


def test_step_one_is_checked_before_step_two(app):
    sender, _receiver, detox = two_partners(app)
    response = _continue(sender, detox, **{"consent.method": "", "consent.given_by": ""})
    assert response.status_code == 422
    page = text(response)
    assert 'id="consent.method-error"' in page and 'id="consent.given_by-error"' in page
    assert "subject.sex" not in _controls(page)


def test_what_nobody_agreed_to_share_is_never_sent(app):
    sender, receiver, detox = two_partners(app)
    response = _send(sender, detox, **{"consent.categories": ["identity"]})
    assert response.status_code == 302
    referral = db.session.scalar(db.select(Referral))
    assert referral.categories_sent == ["identity"]  # the phone and case note were dropped
    page = text(receiver.get(response.headers["Location"]))
    assert GIVEN_NAME in page and PHONE not in page and CASE_NOTE not in page


def test_going_back_to_consent_keeps_step_two_but_drops_a_category_taken_back(app):
    sender, _receiver, detox = two_partners(app)
    page = text(_send(sender, detox, go="consent"))
    assert "consent.categories" in _controls(page)  # step 1 again, with what was typed
    assert _hidden(page)["subject.identity.given_name"] == GIVEN_NAME
    page = text(_send(sender, detox, go="details", **{"consent.categories": ["contact"]}))
    assert 'name="subject.identity.given_name"' not in page
    assert f'value="{PHONE}"' in page


@pytest.mark.parametrize("language", ["en", "km"])
def test_an_empty_form_marks_sex_age_and_province_and_links_them_from_the_top(app, language):
    sender, _receiver, detox = two_partners(app, language=language)
    response = _send(sender, detox, **NOTHING_ABOUT_THE_CHILD)
    assert response.status_code == 422
    page = text(response)
    summary = _summary(page)
    for name in ("subject.sex", "subject.age", "subject.province"):
        assert f'id="{name}-error"' in page and f'id="{name}"' in page
        assert f'href="#{name}"' in summary
    assert summary.count("<li>") == 3
    with force_locale(language):
        assert ngettext("%(num)s answer to correct", "%(num)s answers to correct", 3) in summary
    assert page.index('id="errors"') < page.index(f'action="/services/{detox.id}/refer"')


@pytest.mark.parametrize("language", ["en", "km"])
def test_no_schema_message_reaches_the_page(app, language):
    sender, _receiver, detox = two_partners(app, language=language)
    english = _marshmallow_messages()
    with force_locale(language):
        khmer = {_(str(m)) for m in SHOWN_ON_PAGES if any(str(m).startswith(e) for e in english)}
    for answers in WRONG_ANSWERS:
        page = text(_send(sender, detox, **answers))
        shown = " ".join(re.findall(r'class="field-error"[^>]*>(.*?)</p>', page, re.S))
        shown += _summary(page)
        assert shown, answers
        for message in english | (khmer if language == "km" else set()):
            assert message not in shown, (answers, message)
        assert "subject" not in re.findall(r'id="([^"]+)-error"', page), answers


def test_every_error_listed_at_the_top_links_to_a_control_on_the_page(app):
    sender, _receiver, detox = two_partners(app)
    for answers in WRONG_ANSWERS:
        page = text(_send(sender, detox, **answers))
        for target in re.findall(r'href="#([^"]+)"', _summary(page)):
            assert re.search(rf'<(input|select|textarea)\b[^>]*\bid="{re.escape(target)}"', page)
        for field in re.findall(r'id="([^"]+)-error"', page):
            assert f'href="#{field}"' in _summary(page), (answers, field)


def test_a_consent_refused_on_sending_brings_back_step_one_with_step_two_kept(app):
    sender, _receiver, detox = two_partners(app)
    response = _send(sender, detox, **{"consent.obtained_at": "2099-01-01T09:00"})
    assert response.status_code == 422
    page = text(response)
    assert 'id="consent.obtained_at-error"' in page and "subject.sex" not in _controls(page)
    assert _hidden(page)["subject.age"] == "16"
