"""The reference and the people to call, in a real browser on a phone-sized screen, in English
and in Khmer: the card and the page quote the reference, the receiver assigns then reassigns,
and every phone is a tel: link. Screenshots go to tests/artifacts/people-<language>/."""

import pytest

from referral_hub.extensions import db
from referral_hub.referrals import service as referrals
from referral_hub.referrals.models import Referral
from referral_hub.referrals.schemas import ReferralCreate
from referral_hub.web.session import principal_of

from .factories import make_user
from .referral_fixtures import GIVEN_NAME, referral_body
from .test_browser import ARTIFACTS, Person, _network

SENDER_PHONE, DARA_PHONE, VANNA_PHONE = "+855 12 345 678", "+855 97 111 222", "+855 96 333 444"


def _with_phone(user, name, phone):
    user.name, user.phone = name, phone
    db.session.commit()
    return user


def _sent(service, sender):
    """A referral the sender sent, as the form would send it."""
    data = ReferralCreate().load(referral_body(service.id))
    referral, _ = referrals.create_referral(principal_of(sender), data)
    db.session.commit()
    return referral


def _tel_links(person, selector):
    return person.page.locator(f'{selector} a[href^="tel:"]').evaluate_all(
        "links => links.map(link => link.getAttribute('href'))"
    )


@pytest.mark.parametrize("language", ["en", "km"])
def test_the_reference_assignment_and_phone_links_on_a_phone(app, live_server, browser, language):
    service, people = _network()
    sender = _with_phone(people["a"], "Sophea Chan", SENDER_PHONE)
    receiver_org = service.organization
    dara = _with_phone(make_user(receiver_org, roles=["caseworker"]), "Dara Keo", DARA_PHONE)
    vanna = _with_phone(make_user(receiver_org, roles=["caseworker"]), "Vanna Sok", VANNA_PHONE)
    admin = make_user(receiver_org, roles=["org_admin", "caseworker"])
    referral = _sent(service, sender)
    reference, url = referral.reference, f"{live_server}/referrals/{referral.id}"
    shots = ARTIFACTS / f"people-{language}"
    for old in shots.glob("*.png"):
        old.unlink()

    b = Person(browser, live_server, admin, language, shots)
    b.sign_in()
    card = b.page.locator("#awaiting-list li").first
    assert reference in card.inner_text() and "Water Lily Youth Detox" in card.inner_text()
    assert GIVEN_NAME not in card.inner_text()  # initials only
    b.shot("home-card")
    card.locator("h3 a").click()
    assert b.page.inner_text("#reference") == reference
    assert _tel_links(b, "#sender-contact") == ["tel:+85512345678"]
    b.page.select_option("#user_id", dara.id)
    b.page.locator("#assign button").click()
    assert _tel_links(b, "#assignee-contact") == ["tel:+85597111222"]
    b.shot("assigned")
    b.page.select_option("#user_id", vanna.id)
    b.page.locator("#assign button").click()
    assert "Vanna Sok" in b.page.inner_text("#assignee-contact")
    db.session.expire_all()  # the server changed it in its own session
    assert db.session.get(Referral, referral.id).assigned_to_user_id == vanna.id
    b.shot("reassigned")

    a = Person(browser, live_server, sender, language, shots)
    a.sign_in()
    assert reference in a.page.inner_text("#sent-list")
    a.page.fill("#reference", reference.lower())
    a.page.locator('form[role="search"] button').click()
    assert a.page.url == url
    assert a.page.locator("#assign").count() == 0  # the sender does not assign
    assert _tel_links(a, "#assignee-contact") == ["tel:+85596333444"]
    a.shot("sender-sees-whom-to-call")

    v = Person(browser, live_server, vanna, language, shots)
    v.sign_in()
    v.page.locator("#assigned-to-me").click()
    assert reference in v.page.inner_text("#awaiting-list")
    v.shot("assigned-to-me")
    for person in (a, b, v):
        person.context.close()
