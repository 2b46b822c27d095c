"""Referral rules at their edges: lists by role and time, deadlines to the microsecond, what the
timeline and the audit log say for each step, and key rotation of every encrypted text."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from referral_hub import clock
from referral_hub.audit import service as audit
from referral_hub.auth.principal import Principal
from referral_hub.directory import service as directory_service
from referral_hub.directory.models import Organization
from referral_hub.extensions import db
from referral_hub.jobs import referral_deadlines
from referral_hub.referrals import service, visibility
from referral_hub.referrals.models import Referral
from referral_hub.web.session import principal_of as user_principal

from .factories import add_location, bearer, make_org, make_service, make_user, user_tokens
from .referral_fixtures import (
    REMOVE,
    Party,
    client_actor,
    move,
    network,
    referral_body,
    send,
    user_party,
)

# A Tuesday morning, so that deadlines in business days do not cross a weekend.
MOMENT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
EMERGENCY_DEADLINE = timedelta(hours=4)
MICROSECOND = timedelta(microseconds=1)


@pytest.fixture
def net(app, client):
    return network(app, client)


@pytest.fixture
def at():
    """Pin the hub's clock at the given moment (MOMENT until called)."""
    clock.freeze(MOMENT)
    yield clock.freeze
    clock.freeze(None)


def sent_to(client, party, service_id, **changes):
    response = send(client, party, referral_body(service_id, **changes))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def listed(client, party, **query):
    response = client.get("/api/v1/referrals", headers=party.headers, query_string=query)
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def view(client, party, referral):
    return client.get(f"/api/v1/referrals/{referral['id']}", headers=party.headers).get_json()


def timeline(client, party, referral):
    response = client.get(f"/api/v1/referrals/{referral['id']}/events", headers=party.headers)
    return [
        (
            e["type"],
            e["from_status"],
            e["to_status"],
            e["version"],
            e["actor"],
            e["reason"],
            e["outcome"],
        )
        for e in response.get_json()["items"]
    ]


def audit_trail(client, app, referral):
    """The audit entries about the referral, as a coordinator reads them once sealed."""
    audit.seal_all()
    coordinator = make_user(directory_service.create_organization(None, "Network"), ["coordinator"])
    token = user_tokens(app, coordinator, "reports:read")["access_token"]
    response = client.get(
        "/api/v1/audit", query_string={"resource_id": referral["id"]}, headers=bearer(token)
    )
    return [
        (e["actor"], e["organization_id"], e["action"], e["resource_type"], e["details"])
        for e in response.get_json()["items"]
    ]


def crossing(client, net):
    """The receiver also sends: a referral to a service of the sender's organisation."""
    sender_org = directory_service.get_organization(net["sender"].organization_id)
    back = make_service(sender_org, categories=["detox"], areas=["17"])
    return sent_to(client, net["receiver"], back.id)


def principal_of(party):
    return Principal(
        party.organization_id, "caseworker-app", None, frozenset(), frozenset(), frozenset()
    )


# Refusals


def test_a_refusal_says_what_is_wrong_in_its_detail_too(client, net):
    body = referral_body(
        net["service"].id, consent__obtained_at=(clock.now() + timedelta(days=1)).isoformat()
    )
    problem = send(client, net["sender"], body).get_json()
    message = "Consent cannot be obtained in the future."
    assert problem["detail"] == message
    assert problem["errors"] == [{"field": "consent.obtained_at", "message": message}]


# Lists


def test_an_organisation_that_sends_and_receives_lists_each_side_by_role(client, net):
    received = sent_to(client, net["sender"], net["service"].id)
    own = crossing(client, net)
    receiver = net["receiver"]
    assert listed(client, receiver, role="sent") == [own["id"]]
    assert listed(client, receiver, role="received") == [received["id"]]
    assert sorted(listed(client, receiver)) == sorted([received["id"], own["id"]])


def test_updated_since_lists_what_changed_from_that_moment_on(client, net, at):
    early = sent_to(client, net["sender"], net["service"].id)
    at(MOMENT + timedelta(hours=1))
    late = sent_to(client, net["sender"], net["service"].id)
    at(MOMENT + timedelta(hours=2))
    moved = move(client, net["receiver"], early, "received").get_json()
    sender = net["sender"]
    assert listed(client, sender, updated_since=late["updated_at"]) == [early["id"], late["id"]]
    assert listed(client, sender, updated_since=moved["updated_at"]) == [early["id"]]
    after = (MOMENT + timedelta(hours=2) + MICROSECOND).isoformat()
    assert listed(client, sender, updated_since=after) == []


# Deadlines


def test_a_deadline_counts_from_the_very_moment_the_referral_was_created(client, net):
    """On the running clock, not a frozen one: the creation time and the deadline's start are
    one reading of it."""
    urgent = sent_to(client, net["sender"], net["service"].id, urgency="emergency")
    created, deadline = (datetime.fromisoformat(urgent[k]) for k in ("created_at", "deadline_at"))
    assert deadline - created == EMERGENCY_DEADLINE


def test_a_referral_is_overdue_from_the_very_moment_of_its_deadline(client, net, at):
    urgent = sent_to(client, net["sender"], net["service"].id, urgency="emergency")
    calm = sent_to(client, net["sender"], net["service"].id, urgency="normal")
    receiver = net["receiver"]
    at(MOMENT + EMERGENCY_DEADLINE - MICROSECOND)
    assert view(client, receiver, urgent)["overdue"] is False
    assert listed(client, receiver, overdue="true") == []
    assert service.flag_overdue() == 0
    at(MOMENT + EMERGENCY_DEADLINE)
    assert view(client, receiver, urgent)["overdue"] is True
    assert listed(client, receiver, overdue="true") == [urgent["id"]]
    assert listed(client, receiver, overdue="false") == [calm["id"]]
    assert (service.flag_overdue(), service.flag_overdue()) == (1, 0)


def test_an_unanswered_referral_expires_at_the_cutoff_and_the_log_says_so(client, app, net, at):
    referral = sent_to(client, net["sender"], net["service"].id, urgency="emergency")
    cutoff = MOMENT + EMERGENCY_DEADLINE + timedelta(days=app.config["REFERRAL_EXPIRY_DAYS"])
    at(cutoff - MICROSECOND)
    referral_deadlines()
    assert view(client, net["sender"], referral)["status"] == "sent"
    at(cutoff)
    referral_deadlines()
    assert view(client, net["sender"], referral)["status"] == "expired"
    assert timeline(client, net["receiver"], referral)[-2:] == [
        ("referral.overdue", "sent", "sent", 2, "system", None, None),
        ("referral.status_changed", "sent", "expired", 3, "system", "no answer", None),
    ]
    assert [e for e in audit_trail(client, app, referral) if e[0] == "system"] == [
        (
            "system",
            None,
            "referral.escalated",
            "referral",
            {"status": "sent"},
        ),
        (
            "system",
            None,
            "referral.status_changed",
            "referral",
            {"from": "sent", "to": "expired"},
        ),
    ]


def test_awaiting_answer_is_the_organisations_unanswered_most_urgent_first(client, net, at):
    to_send = [("normal", 3), ("emergency", 1), ("high", 1)]  # the normal ones tie: by id
    made = {
        urgency: [
            sent_to(client, net["sender"], net["service"].id, urgency=urgency)["id"]
            for _ in range(n)
        ]
        for urgency, n in to_send
    }
    answered = sent_to(client, net["sender"], net["service"].id, urgency="emergency")
    for status in ("received", "accepted"):
        answered = move(client, net["receiver"], answered, status).get_json()
    crossing(client, net)  # awaits the sender's answer, not the receiver's
    expected = made["emergency"] + made["high"] + sorted(made["normal"])
    awaiting = service.awaiting_answer(principal_of(net["receiver"]))
    assert [r.id for r in awaiting] == expected
    assert [r.id for r in service.awaiting_answer(principal_of(net["receiver"]), limit=2)] == (
        expected[:2]
    )


def test_awaiting_answer_puts_the_nearest_deadline_first(client, net, at):
    made = []
    for minutes in range(6):  # one urgency, so the deadlines come in the order sent
        at(MOMENT + timedelta(minutes=minutes))
        made.append(sent_to(client, net["sender"], net["service"].id, urgency="normal")["id"])
    assert [r.id for r in service.awaiting_answer(principal_of(net["receiver"]))] == made


def test_consent_ends_at_the_very_moment_it_expires_and_the_log_says_so(client, app, net, at):
    expiry = MOMENT + timedelta(days=10)
    referral = sent_to(
        client, net["sender"], net["service"].id, consent__expires_at=expiry.isoformat()
    )
    for status in ("received", "accepted"):
        referral = move(client, net["receiver"], referral, status).get_json()
    at(expiry - MICROSECOND)
    referral_deadlines()
    before = view(client, net["receiver"], referral)
    assert before["consent"]["status"] == "active" and "identity" in before["subject"]
    at(expiry)
    assert "identity" not in view(client, net["receiver"], referral)["subject"]
    referral_deadlines()
    assert view(client, net["receiver"], referral)["consent"]["status"] == "expired"
    assert timeline(client, net["sender"], referral)[-1] == (
        "referral.consent_withdrawn",
        "accepted",
        "accepted",
        4,
        "system",
        "expired",
        None,
    )
    assert [e for e in audit_trail(client, app, referral) if e[0] == "system"] == [
        ("system", None, "referral.consent_expired", "referral", {"status": "accepted"})
    ]


def test_each_step_is_on_the_timeline_and_in_the_audit_log(client, app, net):
    sender, receiver = net["sender"], net["receiver"]
    referral = sent_to(client, sender, net["service"].id)
    view(client, receiver, referral)
    referral = move(client, receiver, referral, "received").get_json()
    withdraw = f"/api/v1/referrals/{referral['id']}/consent/withdraw"
    refused = client.post(withdraw, headers=receiver.headers).get_json()
    assert refused["detail"] == "Only the sending organisation records a withdrawal of consent."
    withdrawn = client.post(withdraw, headers=sender.headers).get_json()
    again = client.post(withdraw, headers=sender.headers).get_json()
    assert (again["status"], again["detail"]) == (409, "Consent has been withdrawn already.")
    erased = client.post(withdraw, json={"erase": True}, headers=sender.headers).get_json()
    assert withdrawn["consent"]["withdrawn_at"] is not None
    assert erased["consent"]["withdrawn_at"] == withdrawn["consent"]["withdrawn_at"]
    assert client.post(withdraw, json={"erase": True}, headers=sender.headers).status_code == 409
    s, r = client_actor(sender), client_actor(receiver)
    assert timeline(client, receiver, referral) == [
        ("referral.created", None, "sent", 1, s, None, None),
        ("referral.status_changed", "sent", "received", 2, r, None, None),
        ("referral.consent_withdrawn", "received", "received", 3, s, None, None),
        ("referral.consent_withdrawn", "received", "received", 4, s, "erased", None),
    ]
    every = ["identity", "contact", "health", "case_history"]
    consented = ["identity", "contact", "health"]
    so, ro = sender.organization_id, receiver.organization_id
    # One entry per change, naming the categories its answer shows: the sender's own new
    # referral echoed back, or the referral after a change, is no second entry (issue 13).
    withdrawn_entry = {"reason": "withdrawn", "version": 3, "categories": every}
    erased_entry = {"reason": "erased", "version": 4, "categories": []}
    assert audit_trail(client, app, referral) == [
        (s, so, "referral.created", "referral", {"categories": every, "urgency": "high"}),
        (r, ro, "referral.read", "referral", {"categories": consented}),
        (
            r,
            ro,
            "referral.status_changed",
            "referral",
            {"from": "sent", "to": "received", "version": 2, "categories": consented},
        ),
        (s, so, "referral.consent_withdrawn", "referral", withdrawn_entry),
        (s, so, "referral.consent_withdrawn", "referral", erased_entry),
    ]


def test_key_rotation_covers_every_encrypted_text_once(app, client, net):
    referral = sent_to(
        client,
        net["sender"],
        net["service"].id,
        urgency="emergency",
        consent__given_by="best_interests",
        consent__justification="Child found alone at night",
        subject__birth_year=clock.now().year - 25,
        eligibility_override={"reason": "Young adult leaving care"},
    )
    keys, old_id = app.extensions["hub_data_keys"], app.config["DATA_ENCRYPTION_KEY_ID"]
    app.extensions["hub_data_keys"] = {**keys, "k2": b"2" * 32}
    app.config["DATA_ENCRYPTION_KEY_ID"] = "k2"
    try:
        assert service.rotate_data_keys() == 6  # four categories, justification, override
        db.session.commit()
        assert service.rotate_data_keys() == 0
        app.extensions["hub_data_keys"] = {"k2": b"2" * 32}
        sender_view = view(client, net["sender"], referral)
        receiver_view = view(client, net["receiver"], referral)
    finally:
        app.extensions["hub_data_keys"], app.config["DATA_ENCRYPTION_KEY_ID"] = keys, old_id
    assert sender_view["consent"]["justification"] == "Child found alone at night"
    assert receiver_view["eligibility_override"] == {"reason": "Young adult leaving care"}


def refused_fields(client, party, service_id, **changes):
    response = send(client, party, referral_body(service_id, **changes))
    assert response.status_code == 422, response.get_json()
    return [(e["field"], e["message"]) for e in response.get_json()["errors"]]


def test_consent_limits_hold_to_the_microsecond(client, net, at):
    service_id, sender = net["service"].id, net["sender"]
    skew = MOMENT + timedelta(minutes=5)
    sent_to(client, sender, service_id, consent__obtained_at=skew.isoformat())
    assert refused_fields(
        client, sender, service_id, consent__obtained_at=(skew + MICROSECOND).isoformat()
    ) == [("consent.obtained_at", "Consent cannot be obtained in the future.")]
    assert refused_fields(client, sender, service_id, consent__expires_at=MOMENT.isoformat()) == [
        ("consent.expires_at", "This consent has expired.")
    ]
    sent_to(client, sender, service_id, consent__expires_at=(MOMENT + MICROSECOND).isoformat())


def test_eligibility_limits_are_inclusive_and_each_problem_is_named(client, net):
    sender = net["sender"]
    for age in (10, 18):  # Water Lily House takes 10 to 18 year olds
        sent_to(client, sender, net["service"].id, subject__birth_year=REMOVE, subject__age=age)
    assert refused_fields(
        client, sender, net["service"].id, subject__birth_year=REMOVE, subject__age=9
    ) == [("subject.age", "The service starts at 10.")]
    assert refused_fields(
        client, sender, net["service"].id, subject__birth_year=REMOVE, subject__age=19
    ) == [("subject.age", "The service ends at 18.")]
    receiver_org = directory_service.get_organization(net["receiver"].organization_id)
    girls = make_service(receiver_org, eligibility_sex="female", minimum_age=16)
    assert refused_fields(client, sender, girls.id) == [
        ("subject.age", "The service starts at 16."),
        ("subject.sex", "The service is for female subjects."),
    ]
    assert send(client, sender, referral_body(girls.id)).get_json()["detail"] == (
        "The subject is outside the service's eligibility; to refer anyway, send "
        "eligibility_override with a reason."
    )
    sent_to(
        client, sender, girls.id, subject__sex="female", subject__birth_year=clock.now().year - 16
    )


def test_refusals_of_the_service_or_the_key_say_why(client, net):
    sender, service_id = net["sender"], net["service"].id

    def problem(body, key=None):
        found = send(client, sender, body, key).get_json()
        return found["status"], found["detail"], [e["field"] for e in found["errors"]]

    missing = referral_body(str(uuid.uuid4()))
    assert problem(missing) == (422, "No such service.", ["service_id"])
    nowhere = referral_body(service_id, subject__district="1799")
    assert problem(nowhere) == (422, "Unknown area code 1799.", ["subject.district"])
    inactive = make_service(
        directory_service.get_organization(net["receiver"].organization_id), status="inactive"
    )
    assert problem(referral_body(inactive.id)) == (
        409,
        "This service is not active.",
        ["service_id"],
    )
    sent_to(client, sender, service_id)
    send(client, sender, referral_body(service_id), key="case-7")
    assert problem(referral_body(service_id, urgency="normal"), key="case-7") == (
        422,
        "This key was used for another request body.",
        ["Idempotency-Key"],
    )
    directory_service.update_capacity(None, service_id, {"accepting_referrals": False})
    db.session.commit()
    assert problem(referral_body(service_id)) == (
        409,
        "This service is not accepting referrals now.",
        ["service_id"],
    )


def test_an_idempotency_key_belongs_to_the_organisation_that_sent_it(client, net):
    """The same key from another organisation, sent first, is another referral; a replay
    answers with the sender's own referral of that key, not another of its referrals."""
    body = referral_body(net["service"].id)
    other = send(client, net["stranger"], body, key="case-1")
    sent = {key: send(client, net["sender"], body, key=key) for key in ("case-0", "case-1")}
    assert [r.status_code for r in (other, *sent.values())] == [201, 201, 201]
    assert other.get_json()["id"] != sent["case-1"].get_json()["id"]
    for party, first in ((net["sender"], sent["case-1"]), (net["stranger"], other)):
        replay = send(client, party, body, key="case-1")
        assert replay.status_code == 200
        assert replay.get_json()["id"] == first.get_json()["id"]


def test_the_subjects_age_and_district_are_kept_as_sent(client, net):
    referral = sent_to(
        client,
        net["sender"],
        net["service"].id,
        subject__birth_year=REMOVE,
        subject__age=12,
        subject__district="1701",
    )
    subject = view(client, net["receiver"], referral)["subject"]
    assert (subject["age"], subject["birth_year"], subject["district"]) == (12, None, "1701")


def test_a_reason_or_outcome_is_kept_only_by_the_step_it_belongs_to(client, net):
    sender, receiver = net["sender"], net["receiver"]
    withdrawn = sent_to(client, sender, net["service"].id)
    withdrawn = move(client, sender, withdrawn, "withdrawn", reason="Family moved away").get_json()
    assert withdrawn["decline_reason"] is None
    declined = sent_to(client, sender, net["service"].id)
    declined = move(client, receiver, declined, "received", outcome="service_provided").get_json()
    assert declined["outcome"] is None
    wrong_party = move(client, sender, declined, "accepted").get_json()
    assert wrong_party["errors"] == [{"field": "status", "message": "Allowed now: withdrawn."}]
    declined = move(client, receiver, declined, "declined", reason="out_of_area").get_json()
    stuck = move(client, receiver, declined, "accepted").get_json()
    assert stuck["errors"] == [
        {"field": "status", "message": "Nothing else may be done with it now."}
    ]
    completed = sent_to(client, sender, net["service"].id)
    for status in ("received", "accepted", "in_progress"):
        completed = move(client, receiver, completed, status).get_json()
    completed = move(client, receiver, completed, "completed", outcome="partially_provided")
    assert [step[5:] for step in timeline(client, sender, withdrawn)] == [
        (None, None),
        ("Family moved away", None),
    ]
    assert timeline(client, sender, declined)[-1][5:] == ("out_of_area", None)
    assert timeline(client, sender, completed.get_json())[-1][5:] == (None, "partially_provided")


def test_only_the_parties_see_why_eligibility_was_overridden(client, net):
    referral = sent_to(
        client,
        net["sender"],
        net["service"].id,
        subject__birth_year=clock.now().year - 25,
        eligibility_override={"reason": "Young adult leaving care"},
    )
    seen = {
        name: view(client, net[name], referral).get("eligibility_override")
        for name in ("sender", "receiver", "focal_in", "coordinator")
    }
    reason = {"reason": "Young adult leaving care"}
    assert seen == {"sender": reason, "receiver": reason, "focal_in": None, "coordinator": None}


SIEM_REAP, PREAH_SIHANOUK, BATTAMBANG = "17", "18", "02"


def _focal(app, province):
    return user_party(app, ["focal_point"], [province], "referrals:read")


def _seen_by(client, party, referral):
    """(in the list, readable) for the party; the API answers 404 to one who may not know it."""
    found = client.get(f"/api/v1/referrals/{referral['id']}", headers=party.headers)
    assert found.status_code in (200, 404)
    return referral["id"] in listed(client, party), found.status_code == 200


def test_a_focal_point_sees_a_referral_through_the_childs_or_the_services_province(
    app, client, net
):
    """A Siem Reap service accepts a child from Preah Sihanouk: both provinces' focal points
    see it, each for its own reason; Battambang's sees nothing."""
    siem_reap_service = make_service(
        make_org(province=SIEM_REAP), categories=["detox"], areas=[SIEM_REAP, PREAH_SIHANOUK]
    )
    referral = sent_to(
        client, net["sender"], siem_reap_service.id, subject__province=PREAH_SIHANOUK
    )
    make_service(make_org(province=PREAH_SIHANOUK), categories=["detox"])  # not this child's
    for province in (SIEM_REAP, PREAH_SIHANOUK):
        assert _seen_by(client, _focal(app, province), referral) == (True, True)
    assert _seen_by(client, _focal(app, BATTAMBANG), referral) == (False, False)
    found = db.session.get(Referral, referral["id"])
    reasons = {
        province: visibility.focal_reasons(_principal(province), found)
        for province in (SIEM_REAP, PREAH_SIHANOUK, BATTAMBANG)
    }
    assert reasons == {
        SIEM_REAP: [visibility.SERVICE_PROVINCE],
        PREAH_SIHANOUK: [visibility.CHILD_PROVINCE],
        BATTAMBANG: [],
    }
    both = sent_to(client, net["sender"], siem_reap_service.id)
    both_found = db.session.get(Referral, both["id"])
    assert visibility.focal_reasons(_principal(SIEM_REAP), both_found) == list(visibility.REASONS)


def test_a_focal_point_of_the_receiving_organisation_sees_its_referrals_from_anywhere(
    app, client, net
):
    """A member of the receiving organisation, whatever provinces they watch."""
    receiver = make_org(province=BATTAMBANG)
    service = make_service(receiver, categories=["detox"], areas=[BATTAMBANG, PREAH_SIHANOUK])
    focal = make_user(receiver, ["focal_point"], [SIEM_REAP])
    party = Party(user_tokens(app, focal, "referrals:read")["access_token"], receiver.id)
    referral = sent_to(client, net["sender"], service.id, subject__province=PREAH_SIHANOUK)
    assert _seen_by(client, party, referral) == (True, True)


def test_a_service_is_in_the_province_of_a_place_it_is_given_too(app, client, net):
    """An organisation based in Battambang gives the service at a place in Siem Reap."""
    service = make_service(
        make_org(province=BATTAMBANG), categories=["detox"], areas=[PREAH_SIHANOUK]
    )
    place = add_location(service, "Siem Reap drop-in", "Wat Bo road")
    place.province = SIEM_REAP
    db.session.commit()
    referral = sent_to(client, net["sender"], service.id, subject__province=PREAH_SIHANOUK)
    for province in (SIEM_REAP, BATTAMBANG, PREAH_SIHANOUK):
        assert _seen_by(client, _focal(app, province), referral) == (True, True)
    assert _seen_by(client, _focal(app, "12"), referral) == (False, False)


def _principal(province):
    return user_principal(make_user(make_org(province="12"), ["focal_point"], [province]))


def _every_page(client, party, size=2):
    """The ids of the principal's whole list, walked a small page at a time."""
    seen, cursor = [], None
    while True:
        query = {"limit": size, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/referrals", headers=party.headers, query_string=query)
        assert response.status_code == 200, response.get_json()
        seen += [item["id"] for item in response.get_json()["items"]]
        cursor = response.get_json()["next_cursor"]
        if not cursor:
            return seen


def test_a_list_that_a_referral_enters_for_several_reasons_shows_it_once_in_order(app, client, net):
    """Each reason to know a referral is read apart (its own index, its own first page), so
    pages must still interleave them by time and show a referral known twice over once."""
    sender_org = db.session.get(Organization, net["sender"].organization_id)
    sender_service = make_service(sender_org, categories=["detox"], areas=[SIEM_REAP])
    elsewhere = make_service(make_org(province=PREAH_SIHANOUK), categories=["detox"])
    order = []
    for _ in range(3):
        order.append(sent_to(client, net["sender"], net["service"].id)["id"])
        order.append(sent_to(client, net["receiver"], sender_service.id)["id"])
        order.append(
            sent_to(client, net["sender"], net["service"].id, subject__province=PREAH_SIHANOUK)[
                "id"
            ]
        )
        order.append(sent_to(client, net["receiver"], elsewhere.id)["id"])
    own = [referral for index, referral in enumerate(order) if index % 4 != 3]
    tail = [sent_to(client, net["sender"], net["service"].id)["id"] for _ in range(3)]
    order, own = order + tail, own + tail  # more of one reason than a page, none of the others
    assert _every_page(client, net["sender"]) == own
    assert _every_page(client, net["sender"], size=100) == own
    # Siem Reap's focal point: child and service both there, the service only, the child only.
    assert _every_page(client, net["focal_in"], size=3) == order
    assert _every_page(client, net["coordinator"], size=5) == order


def _change(client, party, referral, body, version="current"):
    headers = dict(party.headers)
    if version is not None:
        headers["If-Match"] = f'"{referral["version"] if version == "current" else version}"'
    response = client.post(f"/api/v1/referrals/{referral['id']}/status", json=body, headers=headers)
    return response.status_code, response.get_json()


def test_each_refused_change_says_why_in_plain_words_at_its_field(app, client, net):
    sender, receiver = net["sender"], net["receiver"]
    referral = sent_to(client, sender, net["service"].id)
    coordinator = user_party(app, ["coordinator"])  # knows every referral, changes none
    status, body = _change(client, coordinator, referral, {"status": "withdrawn"})
    assert (status, body["detail"]) == (403, "Only the sender and the receiver change a referral.")
    status, body = _change(client, sender, referral, {"status": "accepted"})
    assert (status, body["detail"]) == (
        409,
        "A sender cannot move a referral from sent to accepted.",
    )
    status, body = _change(client, receiver, referral, {"status": "received"}, version=None)
    assert (status, body["detail"]) == (
        428,
        "Send If-Match with the referral's version (its ETag).",
    )
    status, body = _change(client, receiver, referral, {"status": "received"}, version=7)
    assert (status, body["detail"], body["current_version"]) == (
        412,
        "The referral is at version 1; reload it and try again.",
        1,
    )
    received = move(client, receiver, referral, "received").get_json()
    reasons = "no_capacity, not_eligible, out_of_area, could_not_contact, other"
    refusals = [
        ("declined", {}, "reason", f"A decline needs a reason: one of {reasons}."),
        (
            "accepted",
            {"suggested_service_id": net["service"].id},
            "suggested_service_id",
            "Only a decline suggests another service.",
        ),
        (
            "declined",
            {"reason": "no_capacity", "suggested_service_id": str(uuid.uuid4())},
            "suggested_service_id",
            "No such service.",
        ),
    ]
    for to, fields, field, message in refusals:
        status, body = _change(client, receiver, received, {"status": to, **fields})
        assert (status, body["detail"], body["errors"]) == (
            422,
            message,
            [{"field": field, "message": message}],
        )
    accepted = move(client, receiver, received, "accepted").get_json()
    working = move(client, receiver, accepted, "in_progress").get_json()
    status, body = _change(client, receiver, working, {"status": "completed"})
    message = "A completion needs an outcome."
    assert (status, body["errors"]) == (422, [{"field": "outcome", "message": message}])


def test_an_answer_clears_the_overdue_flag_and_a_receipt_keeps_it(client, net):
    referral = sent_to(client, net["sender"], net["service"].id)
    flagged = sa.update(Referral).where(Referral.id == referral["id"]).values(overdue=True)
    db.session.execute(flagged)  # as the deadline job flags it, the version unchanged
    db.session.commit()
    flags = []
    for status in ("received", "accepted"):
        referral = move(client, net["receiver"], referral, status).get_json()
        flags.append(db.session.get(Referral, referral["id"]).overdue)
    assert flags == [True, False]
