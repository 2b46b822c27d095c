"""Every drastic action asks once more, in a real browser on a phone-sized screen, in English
and in Khmer, without JavaScript: the page says what will happen and what cannot be undone,
and only its own button acts. Screenshots go to tests/artifacts/confirm-<language>/."""

import uuid

import pytest

from referral_hub.auth.models import OAuthClient, User
from referral_hub.directory.models import Service
from referral_hub.extensions import db
from referral_hub.referrals.models import Referral
from referral_hub.referrals.views import reference_of

from .factories import make_client, make_org, make_service, make_user
from .pages import referral_id_of, send_referral, signed_in
from .test_browser import ARTIFACTS, Person, _in


def _fresh(model, key):
    db.session.expire_all()
    return db.session.get(model, key)


class Asker(Person):
    """A person who meets pages asking once more."""

    def asked(self, name, title):
        """On the page asking once more: its title, both lists, a way back; screenshot."""
        assert self.page.locator("main h1").inner_text() == title
        assert self.page.locator("#happens li").count() >= 1
        assert self.page.locator("#lasting li").count() >= 1
        assert self.page.locator("#confirm-form a.button.secondary").is_visible()
        self.shot(name)

    def press_confirm(self):
        self.page.locator("#confirm-form button[type=submit]").click()
        self.page.wait_for_load_state()


@pytest.fixture(params=["en", "km"])
def language(request):
    return request.param


def _shots(language):
    shots = ARTIFACTS / f"confirm-{language}"
    for old in shots.glob("*.png"):
        old.unlink()
    return shots


def test_referral_actions_ask_once_more(app, live_server, browser, language):
    sender_org, receiver_org = make_org(province="17"), make_org(province="17")
    detox = make_service(receiver_org, name="Water Lily Detox", categories=["detox"], areas=["17"])
    sender_client, sender = signed_in(app, organization=sender_org, language=language)
    receiver_user = make_user(receiver_org)
    kept, declined, withdrawn = (
        referral_id_of(send_referral(sender_client, detox)) for _ in range(3)
    )
    shots = _shots(language)

    a = Asker(browser, live_server, sender, language, shots)
    a.sign_in()
    a.page.goto(f"{live_server}/referrals/{kept}")
    a.page.locator('input[name="erase"]').check()
    a.page.get_by_role("button", name=_in(language, "Withdraw consent")).click()
    a.asked("erase", _in(language, "Erase the personal information?"))
    assert _fresh(Referral, kept).consent_status == "active"  # the tap only asked
    a.page.fill("#typed", "MLT-00-0000")
    a.press_confirm()
    assert a.page.locator("#typed-error").is_visible()
    a.shot("erase-wrong-reference")
    assert _fresh(Referral, kept).erased_at is None
    a.page.fill("#typed", reference_of(_fresh(Referral, kept)))
    a.press_confirm()
    assert _fresh(Referral, kept).erased_at is not None
    assert a.page.locator(".flash.notice").is_visible()
    a.shot("erased")

    a.page.goto(f"{live_server}/referrals/{withdrawn}")
    a.page.locator('form:has(input[name="status"][value="withdrawn"]) button').click()
    a.asked("withdraw-referral", _in(language, "Withdraw this referral?"))
    a.page.locator("#confirm-form a.button.secondary").click()  # "No, go back"
    assert _fresh(Referral, withdrawn).status == "sent"
    a.page.locator('form:has(input[name="status"][value="withdrawn"]) button').click()
    a.press_confirm()
    assert _fresh(Referral, withdrawn).status == "withdrawn"

    a.page.goto(f"{live_server}/referrals/{declined}")
    a.page.locator('input[name="erase"]').uncheck()
    a.page.get_by_role("button", name=_in(language, "Withdraw consent")).click()
    a.asked("withdraw-consent", _in(language, "Withdraw consent?"))
    a.press_confirm()
    assert _fresh(Referral, declined).consent_status == "withdrawn"

    b = Asker(browser, live_server, receiver_user, language, shots)
    b.sign_in()
    b.page.goto(f"{live_server}/referrals/{declined}")
    b.page.locator('form:has(input[name="status"][value="received"]) button').click()
    b.page.select_option("#reason", "no_capacity")
    b.page.locator('form:has(input[name="status"][value="declined"]) button').click()
    b.asked("decline", _in(language, "Decline this referral?"))
    assert _fresh(Referral, declined).status == "received"
    b.press_confirm()
    assert _fresh(Referral, declined).status == "declined"
    for person in (a, b):
        person.context.close()


def test_admin_actions_ask_once_more(app, live_server, browser, language):
    organization = make_org("Water Lily Recovery", province="17")
    admin = make_user(
        organization,
        roles=["org_admin", "coordinator"],
        email=f"{uuid.uuid4().hex[:6]}.admin@waterlilyrecovery.example.org",
    )
    colleague = make_user(organization)
    client_id, _secret = make_client(organization)
    found = make_service(organization, name="Water Lily Youth Detox")
    person = Asker(browser, live_server, admin, language, _shots(f"admin-{language}"))
    person.sign_in()

    person.page.goto(f"{live_server}/admin/users/{colleague.id}")
    person.page.locator(f'a[href="/admin/users/{colleague.id}/active"]').click()
    person.asked("disable-user", _in(language, "Disable %(email)s?") % {"email": colleague.email})
    assert _fresh(User, colleague.id).active
    person.press_confirm()
    assert not _fresh(User, colleague.id).active

    person.page.goto(f"{live_server}/admin/clients")
    person.page.locator(f'a[href="/admin/clients/{client_id}/revoke"]').click()
    client = db.session.scalar(db.select(OAuthClient).filter_by(client_id=client_id))
    person.asked("revoke-client", _in(language, "Revoke %(name)s?") % {"name": client.name})
    person.press_confirm()
    db.session.expire_all()
    assert db.session.scalar(db.select(OAuthClient).filter_by(client_id=client_id)).revoked_at

    person.page.goto(f"{live_server}/curation/services/{found.id}")
    person.page.locator('form:has(input[name="status"][value="defunct"]) button').click()
    person.asked("retire-service", _in(language, "Retire %(name)s?") % {"name": found.name})
    assert _fresh(Service, found.id).status == "active"
    person.press_confirm()
    assert _fresh(Service, found.id).status == "defunct"
    person.context.close()
