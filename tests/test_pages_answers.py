"""A receiving caseworker's day: the home page's order, answering through a referral's page,
signing out; and no form of theirs works without its CSRF token."""

import re
from datetime import timedelta

import pytest

from referral_hub import clock
from referral_hub.extensions import db
from referral_hub.referrals.models import Referral

from .pages import change_status, confirm, referral_id_of, send_referral, text, two_partners


def _stored(referral_id):
    db.session.rollback()
    return db.session.get(Referral, referral_id)


def _page(browser, referral_id):
    return text(browser.get(f"/referrals/{referral_id}"))


def _sent(sender, detox, urgency, due_in):
    """A referral of `urgency` whose answer is due `due_in` from now (past when negative)."""
    referral_id = referral_id_of(send_referral(sender, detox, urgency=urgency))
    _stored(referral_id).deadline_at = clock.now() + due_in
    db.session.commit()
    return referral_id


def _cards(page, list_id):
    """(referral id, card html) of a list on the home page, in the order shown."""
    listed = page.split(f'id="{list_id}"')[1].split("</ul>")[0]
    return [
        (re.search(r"/referrals/([0-9a-f-]{36})", card).group(1), card)
        for card in listed.split("<li")[1:]
    ]


def test_home_puts_what_awaits_my_answer_first_most_urgent_and_nearest_deadline_first(app):
    sender, receiver, detox = two_partners(app)
    hours = timedelta(hours=1)
    normal_later = _sent(sender, detox, "normal", 72 * hours)
    emergency = _sent(sender, detox, "emergency", 2 * hours)
    high_later = _sent(sender, detox, "high", 20 * hours)
    high_sooner = _sent(sender, detox, "high", 5 * hours)
    normal_overdue = _sent(sender, detox, "normal", -1 * hours)
    accepted = _sent(sender, detox, "emergency", hours)
    change_status(receiver, high_later, "received")  # received, still not answered
    for status in ("received", "accepted"):
        change_status(receiver, accepted, status)

    page = text(receiver.get("/home"))
    awaiting = _cards(page, "awaiting-list")
    expected = [emergency, high_sooner, high_later, normal_overdue, normal_later]
    assert [referral_id for referral_id, _card in awaiting] == expected
    overdue = [referral_id for referral_id, card in awaiting if "badge overdue" in card]
    assert overdue == [normal_overdue]
    assert page.index('id="awaiting-list"') < page.index(f"/referrals/{accepted}")


def test_decline_with_a_reason_through_the_page(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    change_status(receiver, referral_id, "received")
    change_status(receiver, referral_id, "declined", confirmed="yes")  # no reason chosen
    assert _stored(referral_id).status == "received"
    assert "A decline needs a reason" in _page(receiver, referral_id)

    asked = change_status(receiver, referral_id, "declined", reason="no_capacity")
    assert _stored(referral_id).status == "received"  # not before the page asking once more
    response = confirm(receiver, asked)
    assert response.status_code == 302
    declined = _stored(referral_id)
    assert (declined.status, declined.decline_reason) == ("declined", "no_capacity")
    page = _page(sender, referral_id)
    assert 'id="status">Declined<' in page and "No place free" in page


def test_start_and_complete_with_an_outcome_through_the_page(app):
    sender, receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    for status in ("received", "accepted", "in_progress"):
        assert change_status(receiver, referral_id, status).status_code == 302
    assert _stored(referral_id).status == "in_progress"
    change_status(receiver, referral_id, "completed")  # no outcome chosen
    assert _stored(referral_id).status == "in_progress"
    assert "A completion needs an outcome." in _page(receiver, referral_id)

    change_status(receiver, referral_id, "completed", outcome="service_provided")
    completed = _stored(referral_id)
    assert (completed.status, completed.outcome) == ("completed", "service_provided")
    page = _page(sender, referral_id)
    assert 'id="status">Completed<' in page and "Service provided" in page
    assert 'name="status"' not in _page(receiver, referral_id)


def test_signing_out_ends_the_session(app):
    _sender, receiver, _detox = two_partners(app)
    assert receiver.get("/home").status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', text(receiver.get("/home"))).group(1)
    response = receiver.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    again = receiver.get("/home")
    assert again.status_code == 302 and "/login" in again.headers["Location"]


@pytest.mark.parametrize("action", ["status", "consent/withdraw", "logout"])
def test_forms_without_a_csrf_token_are_refused_and_change_nothing(app, action):
    sender, _receiver, detox = two_partners(app)
    referral_id = referral_id_of(send_referral(sender, detox))
    url = "/logout" if action == "logout" else f"/referrals/{referral_id}/{action}"
    response = sender.post(url, data={"status": "withdrawn", "version": "1"})
    assert response.status_code == 403 and response.content_type.startswith("text/html")
    referral = _stored(referral_id)
    assert (referral.status, referral.consent_status) == ("sent", "active")
    assert sender.get("/home").status_code == 200  # still signed in
