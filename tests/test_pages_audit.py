"""Coordinators read the audit log on a page and see whether its chain is intact."""

import re

from referral_hub.audit import service as audit
from referral_hub.audit.models import AuditEntry
from referral_hub.audit.service import suspend_append_only
from referral_hub.extensions import db

from .factories import make_org
from .pages import signed_in, text
from .referral_fixtures import PERSONAL_VALUES, network, referral_body, send

EN = {"Accept-Language": "en"}


def test_coordinator_reads_and_filters_the_log(app, client):
    parties = network(app, client)
    referral = send(client, parties["sender"], referral_body(parties["service"].id)).get_json()
    browser, _ = signed_in(app, ["coordinator"])
    audit.seal_all()
    response = browser.get("/audit", headers=EN)
    page = text(response)
    assert response.status_code == 200
    assert "organization.create" in page and "referral.created" in page
    for value in PERSONAL_VALUES:
        assert value not in page
    only = text(browser.get(f"/audit?resource_type=referral&resource_id={referral['id']}"))
    assert "referral.created" in only and "organization.create" not in only
    by_action = text(browser.get("/audit?action=organization.create"))
    assert "organization.create" in by_action and "referral.created" not in by_action
    tomorrow = text(browser.get("/audit?since=2999-01-01"))
    assert "referral.created" not in tomorrow
    wrong = browser.get("/audit?since=yesterday", headers=EN)
    assert wrong.status_code == 200 and 'id="since-error"' in text(wrong)
    assert 'value="yesterday"' in text(wrong)


def test_pages_of_entries(app):
    for _ in range(3):
        make_org()
    audit.seal_all()
    browser, _ = signed_in(app, ["coordinator"])
    first = text(browser.get("/audit?limit=2&resource_type=organization", headers=EN))
    entry = '<td data-label="#">{}</td>'.format  # the cell of an entry's number
    assert "Newest first." in first
    assert first.index(entry(3)) < first.index(entry(2)) and entry(1) not in first
    link = re.search(r'href="(/audit\?[^"]*cursor=[^"]+)"', first).group(1).replace("&amp;", "&")
    second = text(browser.get(link))
    assert entry(1) in second and entry(3) not in second and entry(2) not in second


def test_chain_check_says_intact_or_where_it_is_broken(app):
    for _ in range(3):
        make_org()
    browser, _ = signed_in(app, ["coordinator"])  # the organisations are recorded, not sealed
    waiting = text(browser.get("/audit?check=1", headers=EN))
    assert "newer entries wait to be sealed into the chain" in waiting
    audit.seal_all()
    intact = text(browser.get("/audit?check=1", headers=EN))
    assert "The chain is intact" in intact and "wait to be sealed" not in intact
    with db.engine.begin() as connection, suspend_append_only(connection):
        connection.execute(
            db.update(AuditEntry).where(AuditEntry.seq == 2).values(action="organization.tampered")
        )
    broken = text(browser.get("/audit?check=1", headers=EN))
    assert "The chain is broken at entry 2" in broken and 'role="alert"' in broken
    assert "The chain is" not in text(browser.get("/audit", headers=EN))


def test_only_coordinators_read_the_audit_log(app):
    for roles, provinces in ((["caseworker"], ()), (["org_admin"], ()), (["focal_point"], ["17"])):
        browser, _ = signed_in(app, roles, provinces=provinces)
        response = browser.get("/audit?check=1")
        assert response.status_code == 403 and "<h1>" in text(response)
    assert app.test_client().get("/audit").status_code == 302
