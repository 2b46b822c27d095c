"""Drastic actions ask once more: nothing happens until the confirmation page's own form."""

import pytest

from referral_hub.auth.models import OAuthClient, User
from referral_hub.directory.models import Service
from referral_hub.extensions import db
from referral_hub.referrals.models import Referral
from referral_hub.referrals.views import reference_of

from .factories import make_client, make_org, make_service, make_user
from .pages import (
    change_status,
    confirm,
    referral_id_of,
    send_referral,
    signed_in,
    submit,
    text,
    two_partners,
)
from .referral_fixtures import GIVEN_NAME


def _stored(referral_id):
    db.session.expire_all()
    return db.session.get(Referral, referral_id)


def _referral(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    return sender, receiver, referral_id


def test_erasing_asks_once_more_and_for_the_reference(app):
    sender, receiver, referral_id = _referral(app)
    url = f"/referrals/{referral_id}"
    one_tap = submit(sender, url, f"{url}/consent/withdraw", erase="yes")
    assert one_tap.status_code == 303
    assert _stored(referral_id).consent_status == "active"  # the tap only asked
    page = text(sender.get(one_tap.headers["Location"]))
    assert "Erase the personal information?" in page and "Nobody can bring" in page
    reference = reference_of(_stored(referral_id))
    assert f"reference: {reference}<" in page

    wrong = confirm(sender, one_tap, typed="MLT-00-0000")
    assert wrong.status_code == 422 and "nothing was erased" in text(wrong)
    assert _stored(referral_id).erased_at is None
    assert _stored(referral_id).consent_status == "active"

    done = confirm(sender, one_tap, typed=f" {reference.lower()} ")
    assert done.status_code == 302
    erased = _stored(referral_id)
    assert erased.erased_at is not None and erased.consent_status == "withdrawn"
    after = text(sender.get(url))
    assert 'class="flash notice"' in after and 'class="flash success"' not in after
    assert GIVEN_NAME not in text(receiver.get(url))


def test_erasing_after_a_plain_withdrawal_also_asks_for_the_reference(app):
    sender, _receiver, referral_id = _referral(app)
    url = f"/referrals/{referral_id}"
    confirm(sender, submit(sender, url, f"{url}/consent/withdraw"))
    assert _stored(referral_id).consent_status == "withdrawn"
    assert _stored(referral_id).erased_at is None
    page = text(sender.get(url))
    assert "Erase the personal information" in page
    asked = submit(sender, url, f"{url}/consent/withdraw", erase="yes")
    assert confirm(sender, asked).status_code == 422  # nothing typed
    assert _stored(referral_id).erased_at is None
    reference = reference_of(_stored(referral_id))
    assert confirm(sender, asked, typed=reference).status_code == 302
    assert _stored(referral_id).erased_at is not None
    assert "Erase the personal information" not in text(sender.get(url))


def test_withdrawing_a_referral_asks_once_more(app):
    sender, _receiver, referral_id = _referral(app)
    page = text(sender.get(f"/referrals/{referral_id}"))
    assert 'method="get" action="/referrals/' in page  # the button only opens the page
    asked = change_status(sender, referral_id, "withdrawn")
    assert _stored(referral_id).status == "sent"
    confirmation = text(sender.get(asked.headers["Location"]))
    assert "Withdraw this referral?" in confirmation
    assert "cannot be reopened" in confirmation
    assert confirm(sender, asked).status_code == 302
    assert _stored(referral_id).status == "withdrawn"


def test_declining_without_a_reason_does_not_reach_the_confirmation(app):
    _sender, receiver, referral_id = _referral(app)
    change_status(receiver, referral_id, "received")
    response = receiver.get(f"/referrals/{referral_id}/status?status=declined")
    assert response.status_code == 302
    assert "Choose why you decline" in text(receiver.get(f"/referrals/{referral_id}"))


def test_a_party_not_allowed_the_move_gets_no_confirmation_page(app):
    sender, receiver, referral_id = _referral(app)
    for browser, query in (
        (receiver, "status=withdrawn"),
        (sender, "status=accepted"),
        (receiver, "status=declined&reason=no_capacity"),  # sent: it must be received first
    ):
        response = browser.get(f"/referrals/{referral_id}/status?{query}")
        assert response.status_code == 302, query
    assert receiver.get(f"/referrals/{referral_id}/consent/withdraw").status_code == 302
    stranger, _ = signed_in(app, language="en")
    assert stranger.get(f"/referrals/{referral_id}/consent/withdraw").status_code == 404


@pytest.fixture()
def admin(app):
    """An admin and coordinator signed in, and their organisation."""
    organization = make_org()
    browser, _me = signed_in(app, ("org_admin", "coordinator"), organization, language="en")
    return browser, organization


def test_disabling_a_user_asks_once_more(app, admin):
    browser, organization = admin
    colleague = make_user(organization)
    page = f"/admin/users/{colleague.id}"
    assert f'href="{page}/active"' in text(browser.get(page))
    confirmation = text(browser.get(f"{page}/active"))
    assert f"Disable {colleague.email}?" in confirmation and "cannot be undone" in confirmation
    asked = submit(browser, page, f"{page}/active", active="false")
    assert db.session.get(User, colleague.id).active
    assert confirm(browser, asked).status_code == 302
    db.session.expire_all()
    assert not db.session.get(User, colleague.id).active
    # Enabling again acts at once, and a disabled user's page has nothing to confirm.
    assert browser.get(f"{page}/active").status_code == 302
    assert submit(browser, page, f"{page}/active", active="true").status_code == 302
    db.session.expire_all()
    assert db.session.get(User, colleague.id).active


def test_revoking_a_client_asks_once_more(app, admin):
    browser, organization = admin
    client_id, _secret = make_client(organization)
    assert f'href="/admin/clients/{client_id}/revoke"' in text(browser.get("/admin/clients"))
    confirmation = text(browser.get(f"/admin/clients/{client_id}/revoke"))
    assert "A revoked client cannot be restored" in confirmation
    asked = submit(browser, "/admin/clients", f"/admin/clients/{client_id}/revoke")
    client = db.session.scalar(db.select(OAuthClient).filter_by(client_id=client_id))
    assert client.revoked_at is None
    assert confirm(browser, asked).status_code == 302
    db.session.expire_all()
    assert db.session.scalar(db.select(OAuthClient).filter_by(client_id=client_id)).revoked_at


def test_retiring_a_service_asks_once_more_and_not_through_the_edit_form(app, admin):
    browser, organization = admin
    found = make_service(organization)
    page = f"/curation/services/{found.id}"
    assert '<option value="defunct"' not in text(browser.get(page))
    edited = submit(browser, page, page, name=found.name, status="defunct", categories="detox")
    assert edited.status_code == 422 and "Retire a service with its own button" in text(edited)
    confirmation = text(browser.get(f"{page}/status?status=defunct"))
    assert f"Retire {found.name}?" in confirmation
    asked = submit(browser, page, f"{page}/status", status="defunct")
    assert db.session.get(Service, found.id).status == "active"
    assert confirm(browser, asked).status_code == 302
    db.session.expire_all()
    assert db.session.get(Service, found.id).status == "defunct"
