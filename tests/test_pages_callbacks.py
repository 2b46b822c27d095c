"""Callback pages: subscriptions, their secrets shown once, the delivery log and replay."""

import re
import uuid
from datetime import timedelta

import pytest

from referral_hub import clock
from referral_hub.callbacks import secrets_store
from referral_hub.callbacks.models import EVENT_TYPES, Delivery, DeliveryAttempt, Subscription
from referral_hub.extensions import db

from .factories import make_org
from .pages import submit, text
from .test_pages_admin import signed_in

SECRET_ON_PAGE = re.compile(r'<p class="secret">([^<]+)</p>')
HOOK = "http://127.0.0.1:9/hook"


def stored(subscription_id):
    db.session.rollback()
    return db.session.get(Subscription, subscription_id)


def only_subscription():
    db.session.rollback()
    return db.session.scalars(db.select(Subscription)).one()


@pytest.fixture
def admin(app):
    organization = make_org()
    browser, me = signed_in(app, ("org_admin",), organization)
    return {"browser": browser, "me": me, "org": organization}


def add_subscription(browser, url=HOOK, **fields):
    fields.setdefault("event_types", list(EVENT_TYPES))  # the boxes ticked when the form opens
    response = submit(browser, "/callbacks", url=url, **fields)
    assert response.status_code == 200, text(response)
    return only_subscription(), SECRET_ON_PAGE.search(text(response)).group(1), response


def delivery(subscription, status, event_id, attempts=()):
    """A delivery with its attempts as the dispatcher records them: (status_code, error, ms)."""
    row = Delivery(
        id=f"msg_{uuid.uuid4().hex}",
        subscription_id=subscription.id,
        referral_id=str(uuid.uuid4()),
        event_id=event_id,
        event_type="referral.status_changed",
        payload={"type": "referral.status_changed", "data": {}},
        status=status,
        attempts=len(attempts),
        next_attempt_at=clock.now() + timedelta(hours=1),
    )
    row.attempt_log = [
        DeliveryAttempt(status_code=code, error=error, duration_ms=ms)
        for code, error, ms in attempts
    ]
    db.session.add(row)
    db.session.commit()
    return row.id


@pytest.mark.parametrize("roles", [("caseworker",), ("coordinator",)])
def test_only_org_admins_see_the_callback_pages(app, roles):
    browser, _user = signed_in(app, roles)
    response = browser.get("/callbacks")
    assert response.status_code == 403 and "<h1>" in text(response)
    assert 'href="/callbacks"' not in text(browser.get("/login"))


def test_a_new_subscription_shows_its_secret_once(admin):
    subscription, secret, response = add_subscription(
        admin["browser"], event_types=["referral.created"]
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert subscription.organization_id == admin["org"].id
    assert subscription.event_types == ["referral.created"]
    in_force = secrets_store.secrets_in_force(subscription)
    assert secret in in_force and secret not in subscription.secret_data
    listing = admin["browser"].get("/callbacks")
    assert listing.status_code == 200 and HOOK in text(listing) and len(listing.data) < 100_000
    page = admin["browser"].get(f"/callbacks/{subscription.id}")
    assert page.status_code == 200 and secret not in text(page) + text(listing)


def test_subscription_errors_are_shown_at_the_field_and_secrets_not_sent_back(admin):
    response = submit(
        admin["browser"],
        "/callbacks",
        url="ftp://example.org/hook",
        event_types=[],
        oauth_token_url="https://auth.example.org/token",
        oauth_client_id="hub",
        oauth_client_secret="partner-secret-123",
    )
    body = text(response)
    assert response.status_code == 422
    assert 'value="ftp://example.org/hook"' in body
    assert 'id="event_types-error"' in body and 'value="hub"' in body
    assert "partner-secret-123" not in body
    response = submit(
        admin["browser"],
        "/callbacks",
        url="ftp://example.org/hook",
        event_types=["referral.created"],
    )
    assert response.status_code == 422 and 'id="url-error"' in text(response)
    response = submit(
        admin["browser"],
        "/callbacks",
        url=HOOK,
        event_types=["referral.created"],
        oauth_token_url="https://auth.example.org/token",
    )
    assert response.status_code == 422 and 'id="oauth_client_id-error"' in text(response)
    assert db.session.scalar(db.select(db.func.count(Subscription.id))) == 0


def test_the_partners_oauth_secret_is_never_shown(admin):
    subscription, _secret, _page = add_subscription(
        admin["browser"],
        event_types=["referral.created"],
        oauth_token_url="http://127.0.0.1:9/token",
        oauth_client_id="hub-client",
        oauth_client_secret="partner-secret-123",
    )
    assert subscription.oauth_client_id == "hub-client"
    page = text(admin["browser"].get(f"/callbacks/{subscription.id}"))
    assert "hub-client" in page and "partner-secret-123" not in page


def test_pause_resume_rotate_and_delete(admin):
    browser = admin["browser"]
    subscription, old_secret, _page = add_subscription(browser)
    page = f"/callbacks/{subscription.id}"
    assert submit(browser, page, f"{page}/paused", paused="true").status_code == 302
    assert stored(subscription.id).status == "paused"
    assert "Resume" in text(browser.get(page))
    submit(browser, page, f"{page}/paused", paused="false")
    assert stored(subscription.id).status == "active"

    rotated = submit(browser, page, f"{page}/rotate-secret")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new_secret = SECRET_ON_PAGE.search(text(rotated)).group(1)
    assert new_secret != old_secret
    assert set(secrets_store.secrets_in_force(stored(subscription.id))) >= {old_secret, new_secret}
    assert new_secret not in text(browser.get(page))

    assert submit(browser, page, f"{page}/delete").status_code == 302
    assert stored(subscription.id) is None
    assert browser.get(page).status_code == 404


def test_the_delivery_log_shows_attempts_and_filters_by_status(admin):
    subscription, _secret, _page = add_subscription(admin["browser"])
    failed = delivery(subscription, "failed", 1, [(500, None, 120), (None, "timeout", 15000)])
    delivered = delivery(subscription, "delivered", 2, [(204, None, 35)])
    page = admin["browser"].get(f"/callbacks/{subscription.id}")
    body = text(page)
    assert page.status_code == 200 and len(page.data) < 100_000
    assert failed in body and delivered in body
    assert "500" in body and "timeout" in body and "15,000 ms" in body and "204" in body
    assert f"/deliveries/{failed}/replay" in body and f"/deliveries/{delivered}/replay" not in body
    only_failed = text(admin["browser"].get(f"/callbacks/{subscription.id}?status=failed"))
    assert failed in only_failed and delivered not in only_failed
    assert admin["browser"].get(f"/callbacks/{subscription.id}?status=lost").status_code == 422


def test_replay_one_failed_delivery_and_then_all(admin):
    browser = admin["browser"]
    subscription, _secret, _page = add_subscription(browser)
    first = delivery(subscription, "failed", 1, [(500, None, 10)])
    second = delivery(subscription, "failed", 2, [(503, None, 10)])
    delivered = delivery(subscription, "delivered", 3, [(204, None, 10)])
    page = f"/callbacks/{subscription.id}"
    response = submit(browser, page, f"{page}/deliveries/{first}/replay")
    assert response.status_code == 302
    db.session.rollback()
    assert db.session.get(Delivery, first).status == "pending"
    assert db.session.get(Delivery, second).status == "failed"
    assert "1 failed callback will be sent again" in text(browser.get(page))

    refused = submit(browser, page, f"{page}/deliveries/{delivered}/replay")
    assert refused.status_code == 409 and "<h1>" in text(refused)

    submit(browser, page, f"{page}/replay")
    db.session.rollback()
    assert db.session.get(Delivery, second).status == "pending"
    assert db.session.get(Delivery, delivered).status == "delivered"


def test_another_organisations_subscription_is_not_found(app, admin):
    other, _user = signed_in(app, ("org_admin",))
    subscription, _secret, _page = add_subscription(other)
    failed = delivery(subscription, "failed", 1, [(500, None, 10)])
    page = f"/callbacks/{subscription.id}"
    browser = admin["browser"]
    assert browser.get(page).status_code == 404
    assert subscription.url not in text(browser.get("/callbacks"))
    for action, fields in (
        ("paused", {"paused": "true"}),
        ("rotate-secret", {}),
        ("delete", {}),
        ("replay", {}),
        (f"deliveries/{failed}/replay", {}),
    ):
        response = submit(browser, "/callbacks", f"{page}/{action}", **fields)
        assert response.status_code == 404, action
    found = stored(subscription.id)
    assert found.status == "active" and found.previous_secret_until is None
    assert db.session.get(Delivery, failed).status == "failed"


def test_callback_forms_without_csrf_token_are_refused(admin):
    browser = admin["browser"]
    subscription, _secret, _page = add_subscription(browser)
    failed = delivery(subscription, "failed", 1, [(500, None, 10)])
    page = f"/callbacks/{subscription.id}"
    responses = [
        browser.post("/callbacks", data={"url": HOOK, "event_types": "referral.created"}),
        browser.post(f"{page}/paused", data={"paused": "true"}),
        browser.post(f"{page}/rotate-secret"),
        browser.post(f"{page}/delete"),
        browser.post(f"{page}/replay"),
        browser.post(f"{page}/deliveries/{failed}/replay"),
    ]
    assert {r.status_code for r in responses} == {403}
    found = stored(subscription.id)
    assert found.status == "active" and found.previous_secret_until is None
    assert db.session.scalar(db.select(db.func.count(Subscription.id))) == 1
    assert db.session.get(Delivery, failed).status == "failed"
