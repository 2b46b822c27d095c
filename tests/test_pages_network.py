"""Coordinators see the network's overdue and escalated referrals, without personal data."""

from datetime import timedelta

from referral_hub import clock
from referral_hub.extensions import db
from referral_hub.referrals import service as referral_service
from referral_hub.referrals.models import Referral

from .pages import signed_in, text
from .referral_fixtures import PERSONAL_VALUES, network, referral_body, send


def _late(client, parties, escalate=True, **changes):
    body = referral_body(parties["service"].id, **changes)
    referral = send(client, parties["sender"], body).get_json()
    db.session.execute(
        db.update(Referral)
        .where(Referral.id == referral["id"])
        .values(deadline_at=clock.now() - timedelta(hours=3))
    )
    if escalate:
        referral_service.flag_overdue()
    db.session.commit()
    return referral


def test_coordinator_sees_overdue_referrals_without_personal_data(app, client):
    parties = network(app, client)
    late = _late(client, parties)
    on_time = send(client, parties["sender"], referral_body(parties["service"].id)).get_json()
    browser, _ = signed_in(app, ["coordinator"])
    response = browser.get("/network/overdue", headers={"Accept-Language": "en"})
    page = text(response)
    assert response.status_code == 200
    assert late["id"][:8] in page and on_time["id"][:8] not in page
    assert "Water Lily House" in page and "High" in page
    assert "Not yet" not in page  # it was escalated
    for value in PERSONAL_VALUES:
        assert value not in page
    assert len(response.data) < 100_000 and "<script" not in page


def test_overdue_not_yet_escalated_and_filters(app, client):
    parties = network(app, client)
    late = _late(client, parties, escalate=False)
    browser, _ = signed_in(app, ["coordinator"])
    page = text(browser.get("/network/overdue", headers={"Accept-Language": "en"}))
    assert late["id"][:8] in page and "Not yet" in page
    normal = text(browser.get("/network/overdue?urgency=normal"))
    assert late["id"][:8] not in normal
    received = text(browser.get("/network/overdue?status=received"))
    assert late["id"][:8] not in received
    wrong = browser.get("/network/overdue?urgency=soon", headers={"Accept-Language": "en"})
    assert wrong.status_code == 200 and 'id="urgency-error"' in text(wrong)


def test_only_coordinators_see_the_overdue_page(app):
    for roles, provinces in ((["caseworker"], ()), (["org_admin"], ()), (["focal_point"], ["17"])):
        browser, _ = signed_in(app, roles, provinces=provinces)
        response = browser.get("/network/overdue")
        assert response.status_code == 403 and response.content_type.startswith("text/html")
    assert app.test_client().get("/network/overdue").status_code == 302
