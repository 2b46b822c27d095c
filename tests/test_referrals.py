"""Referrals: consent, who sees what, the state machine, deadlines and privacy at rest."""

import itertools
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from referral_hub import clock
from referral_hub.directory import service as directory_service
from referral_hub.extensions import db
from referral_hub.jobs import referral_deadlines
from referral_hub.referrals.models import STATUSES
from referral_hub.referrals.service import TRANSITIONS, answer_deadline

from .factories import HTTP, make_org, make_service
from .referral_fixtures import (
    FAMILY_NAME,
    GIVEN_NAME,
    PERSONAL_VALUES,
    REMOVE,
    client_party,
    move,
    network,
    referral_body,
    send,
)

IN_A_DAY = (datetime.now(UTC) + timedelta(days=1)).isoformat()


@pytest.fixture
def net(app, client):
    return network(app, client)


def sent(client, net, **changes):
    response = send(client, net["sender"], referral_body(net["service"].id, **changes))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def read(client, party, referral):
    return client.get(f"/api/v1/referrals/{referral['id']}", headers=party.headers)


# Sending


def test_a_referral_is_sent_with_consent(client, net):
    referral = sent(client, net)
    assert (
        referral["status"] == "sent"
        and referral["version"] == 1
        and referral["fhir_status"] == "requested"
    )
    assert referral["receiver_organization_id"] == net["receiver"].organization_id
    assert referral["subject"]["identity"]["given_name"] == GIVEN_NAME
    response = read(client, net["sender"], referral)
    assert response.headers["ETag"] == '"1"' and response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"consent": REMOVE}, 422, "consent"),
        ({"consent__expires_at": "2020-01-01T00:00:00+00:00"}, 422, "consent.expires_at"),
        ({"consent__categories": ["contact"]}, 422, "consent.categories"),
        (
            {
                "consent__given_by": "best_interests",
                "consent__justification": "Child in immediate danger tonight",
            },
            422,
            "consent.given_by",
        ),
        (
            {"urgency": "emergency", "consent__given_by": "best_interests"},
            422,
            "consent.justification",
        ),
        ({"subject__birth_year": 1990}, 422, "subject.age"),
        ({"subject__sex": "female", "subject__province": "99"}, 422, "subject.province"),
        ({"needs": ["teleportation"]}, 422, "needs"),
        ({"subject__birth_year": REMOVE}, 422, "subject.birth_year"),
        ({"colour": "blue"}, 422, "colour"),
        ({"consent__obtained_at": IN_A_DAY}, 422, "consent.obtained_at"),
    ],
)
def test_refused_referrals_name_the_field_and_write_nothing(client, net, changes, status, field):
    response = send(client, net["sender"], referral_body(net["service"].id, **changes))
    assert response.status_code == status, response.get_json()
    assert field in {e["field"] for e in response.get_json()["errors"]}
    listed = client.get("/api/v1/referrals", headers=net["sender"].headers).get_json()["items"]
    assert listed == []
    for value in PERSONAL_VALUES:
        assert value not in response.get_data(as_text=True)


def test_an_emergency_in_the_best_interests_is_allowed_with_a_justification(client, net):
    referral = sent(
        client,
        net,
        urgency="emergency",
        consent__given_by="best_interests",
        consent__justification="Child found alone at night; mother cannot be reached.",
    )
    assert referral["consent"]["justification"].startswith("Child found alone")
    receiver_view = read(client, net["receiver"], referral).get_json()
    assert "justification" not in receiver_view["consent"]


def test_eligibility_can_be_overridden_with_a_reason(client, net):
    body = referral_body(
        net["service"].id,
        subject__birth_year=clock.now().year - 25,
        eligibility_override={"reason": "Young adult leaving care; centre agreed by phone"},
    )
    response = send(client, net["sender"], body)
    assert response.status_code == 201
    receiver_view = read(client, net["receiver"], response.get_json()).get_json()
    assert receiver_view["eligibility_override"]["reason"].startswith("Young adult")


def test_a_service_not_accepting_or_inactive_is_a_conflict(client, net):
    directory_service.update_capacity(None, net["service"].id, {"accepting_referrals": False})
    db.session.commit()
    response = send(client, net["sender"], referral_body(net["service"].id))
    assert response.status_code == 409 and response.get_json()["errors"][0]["field"] == "service_id"
    inactive = make_service(make_org(), status="inactive")
    assert send(client, net["sender"], referral_body(inactive.id)).status_code == 409


def test_the_same_idempotency_key_returns_the_same_referral(client, net):
    body = referral_body(net["service"].id)
    first = send(client, net["sender"], body, key="case-42-attempt")
    again = send(client, net["sender"], body, key="case-42-attempt")
    assert first.status_code == 201 and again.status_code == 200
    assert (
        again.get_json()["id"] == first.get_json()["id"]
        and again.headers["Idempotent-Replayed"] == "true"
    )
    other = send(
        client,
        net["sender"],
        referral_body(net["service"].id, urgency="normal"),
        key="case-42-attempt",
    )
    assert other.status_code == 422 and other.get_json()["errors"][0]["field"] == "Idempotency-Key"
    assert (
        len(client.get("/api/v1/referrals", headers=net["sender"].headers).get_json()["items"]) == 1
    )


# Who sees what

CONSENT_SCOPES = [
    [],
    ["identity"],
    ["identity", "contact"],
    ["health"],
    ["identity", "contact", "health", "case_history"],
]


def _sent_with(client, net, categories, share_with_government=False):
    subject_changes = {} if "identity" in categories else {"subject__identity": REMOVE}
    return sent(
        client,
        net,
        consent__categories=categories,
        consent__share_identity_with_government=share_with_government,
        **subject_changes,
    )


def _personal(view):
    return sorted(
        k for k in ("identity", "contact", "health", "case_history") if k in view["subject"]
    )


@pytest.mark.parametrize("categories", CONSENT_SCOPES)
@pytest.mark.parametrize("share_with_government", [False, True])
def test_each_party_sees_exactly_what_the_consent_allows(
    client, net, categories, share_with_government
):
    referral = _sent_with(client, net, categories, share_with_government)
    sent_categories = sorted(
        set(
            ["contact", "health", "case_history"]
            + (["identity"] if "identity" in categories else [])
        )
    )
    sender = read(client, net["sender"], referral).get_json()
    assert _personal(sender) == sent_categories and sender["redacted"] == []
    receiver = read(client, net["receiver"], referral).get_json()
    assert _personal(receiver) == sorted(set(categories) & set(sent_categories))
    assert sorted(receiver["redacted"]) == sorted(set(sent_categories) - set(categories))
    focal = read(client, net["focal_in"], referral).get_json()
    government_sees = ["identity"] if share_with_government and "identity" in categories else []
    assert _personal(focal) == government_sees
    assert focal["subject"]["province"] == "17" and focal["subject"]["sex"] == "male"
    coordinator = read(client, net["coordinator"], referral).get_json()
    assert _personal(coordinator) == []
    for outsider in ("stranger", "focal_out"):
        response = read(client, net[outsider], referral)
        assert response.status_code == 404
        assert referral["id"] not in response.get_data(as_text=True)


@pytest.mark.parametrize("ending", ["withdrawn", "expired", "erased"])
def test_after_consent_ends_the_receiver_sees_no_personal_data(client, net, ending):
    referral = _sent_with(
        client, net, ["identity", "contact", "health"], share_with_government=True
    )
    if ending == "expired":
        clock.freeze(clock.now() + timedelta(days=181))
        try:
            referral_deadlines()
        finally:
            clock.freeze(None)
    else:
        response = client.post(
            f"/api/v1/referrals/{referral['id']}/consent/withdraw",
            json={"erase": ending == "erased"},
            headers=net["sender"].headers,
        )
        assert response.status_code == 200, response.get_json()
    for party in ("receiver", "focal_in", "coordinator"):
        view = read(client, net[party], referral).get_json()
        assert _personal(view) == [], party
        assert view["consent"]["status"] == ("expired" if ending == "expired" else "withdrawn")
        text = str(view)
        assert all(value not in text for value in PERSONAL_VALUES)
    sender = read(client, net["sender"], referral).get_json()
    assert (_personal(sender) == []) == (ending == "erased") and sender["erased"] == (
        ending == "erased"
    )
    events = client.get(
        f"/api/v1/referrals/{referral['id']}/events", headers=net["receiver"].headers
    )
    assert "referral.consent_withdrawn" in [e["type"] for e in events.get_json()["items"]]


def test_only_the_sender_withdraws_consent(client, net):
    referral = sent(client, net)
    url = f"/api/v1/referrals/{referral['id']}/consent/withdraw"
    assert client.post(url, json={}, headers=net["receiver"].headers).status_code == 403
    assert client.post(url, json={}, headers=net["stranger"].headers).status_code == 404


def test_erasure_leaves_a_tombstone_and_no_personal_data_in_the_database(client, net):
    referral = sent(client, net)
    client.post(
        f"/api/v1/referrals/{referral['id']}/consent/withdraw",
        json={"erase": True},
        headers=net["sender"].headers,
    )
    row = (
        db.session.execute(
            sa.text("SELECT * FROM referrals WHERE id = :id"), {"id": referral["id"]}
        )
        .mappings()
        .one()
    )
    assert row["status"] == "sent" and row["erased_at"] is not None
    assert all(row[f"{c}_data"] is None for c in ("identity", "contact", "health", "case_history"))
    assert (row["consent_justification_data"], row["eligibility_override_data"]) == (None, None)


def test_personal_data_is_encrypted_at_rest(client, net):
    sent(
        client, net, consent__justification="Guardian agreed after a long home visit in the village"
    )
    dump = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(sa.select(table)).all():
            dump.append(repr(tuple(row)))
    text = "\n".join(dump)
    assert '"kid"' in text
    for value in (*PERSONAL_VALUES, "long home visit"):
        assert value not in text and value.lower() not in text.lower()


# The state machine


def test_a_referral_goes_from_sent_to_completed(client, net):
    referral = sent(client, net)
    steps = [
        ("receiver", "received", {}),
        ("receiver", "accepted", {}),
        ("receiver", "in_progress", {}),
        ("receiver", "completed", {"outcome": "service_provided"}),
    ]
    for party, status, fields in steps:
        response = move(client, net[party], referral, status, **fields)
        assert response.status_code == 200, response.get_json()
        referral = response.get_json()
        assert referral["status"] == status
    assert referral["version"] == 5 and referral["outcome"] == "service_provided"
    events = client.get(
        f"/api/v1/referrals/{referral['id']}/events", headers=net["sender"].headers
    ).get_json()
    assert [(e["from_status"], e["to_status"]) for e in events["items"]] == [
        (None, "sent"),
        ("sent", "received"),
        ("received", "accepted"),
        ("accepted", "in_progress"),
        ("in_progress", "completed"),
    ]


def test_a_decline_needs_a_reason_and_may_suggest_a_service(client, net):
    referral = move(client, net["receiver"], sent(client, net), "received").get_json()
    assert move(client, net["receiver"], referral, "declined").status_code == 422
    elsewhere = make_service(make_org(), name="Green House")
    declined = move(
        client,
        net["receiver"],
        referral,
        "declined",
        reason="no_capacity",
        suggested_service_id=elsewhere.id,
    )
    assert declined.status_code == 200
    assert declined.get_json()["suggested_service_id"] == elsewhere.id
    assert declined.get_json()["decline_reason"] == "no_capacity"


def test_a_decline_cannot_suggest_a_service_that_does_not_exist(client, net):
    referral = move(client, net["receiver"], sent(client, net), "received").get_json()
    refused = move(
        client,
        net["receiver"],
        referral,
        "declined",
        reason="no_capacity",
        suggested_service_id=str(uuid.uuid4()),
    )
    assert refused.status_code == 422
    assert [e["field"] for e in refused.get_json()["errors"]] == ["suggested_service_id"]
    assert read(client, net["receiver"], referral).get_json()["status"] == "received"


def test_consent_obtained_a_few_minutes_ahead_is_clock_skew_and_accepted(client, net):
    ahead = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    sent(client, net, consent__obtained_at=ahead)


def test_a_completion_needs_an_outcome(client, net):
    referral = sent(client, net)
    for status in ("received", "accepted", "in_progress"):
        referral = move(client, net["receiver"], referral, status).get_json()
    assert move(client, net["receiver"], referral, "completed").status_code == 422


def _reach(client, net, status):
    """A fresh referral brought to the given state along the allowed path."""
    path = {
        "sent": [],
        "received": ["received"],
        "accepted": ["received", "accepted"],
        "declined": ["received", "declined"],
        "in_progress": ["received", "accepted", "in_progress"],
        "completed": ["received", "accepted", "in_progress", "completed"],
        "withdrawn": ["withdrawn"],
    }[status]
    referral = sent(client, net)
    for step in path:
        party = "sender" if step == "withdrawn" else "receiver"
        fields = (
            {"reason": "other"}
            if step == "declined"
            else {"outcome": "service_provided"}
            if step == "completed"
            else {}
        )
        referral = move(client, net[party], referral, step, **fields).get_json()
    return referral


@pytest.mark.parametrize(
    "start", ["sent", "received", "accepted", "declined", "in_progress", "completed", "withdrawn"]
)
def test_every_forbidden_transition_is_a_409_listing_the_allowed_ones(client, net, start):
    referral = _reach(client, net, start)
    for party, target in itertools.product(("sender", "receiver"), STATUSES):
        if TRANSITIONS.get((start, target)) == party:
            continue
        fields = {"reason": "other", "outcome": "service_provided"}
        response = move(client, net[party], referral, target, **fields)
        assert response.status_code in (409, 422), (party, start, target)
        if response.status_code == 409:
            allowed = {
                to for (frm, to), who in TRANSITIONS.items() if frm == start and who == party
            }
            assert set(response.get_json()["allowed"]) == allowed
        assert read(client, net["sender"], referral).get_json()["status"] == start


def test_stale_or_missing_versions_are_refused(client, net):
    referral = sent(client, net)
    url = f"/api/v1/referrals/{referral['id']}/status"
    stale = client.post(
        url, json={"status": "received"}, headers={**net["receiver"].headers, "If-Match": '"7"'}
    )
    assert stale.status_code == 412
    missing = client.post(url, json={"status": "received"}, headers=net["receiver"].headers)
    assert missing.status_code == 428
    third = client.post(
        url, json={"status": "received"}, headers={**net["stranger"].headers, "If-Match": '"1"'}
    )
    assert third.status_code == 404


def test_two_caseworkers_accepting_at_once_exactly_one_wins(
    app, client, net, live_server, database_url
):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises every write; the race is tested on PostgreSQL")
    referral = move(client, net["receiver"], sent(client, net), "received").get_json()
    barrier, results = threading.Barrier(6), []

    def accept():
        barrier.wait()
        response = HTTP().post(
            f"{live_server}/api/v1/referrals/{referral['id']}/status",
            json={"status": "accepted"},
            headers={**net["receiver"].headers, "If-Match": f'"{referral["version"]}"'},
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=accept) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] + [412] * 5
    events = client.get(
        f"/api/v1/referrals/{referral['id']}/events", headers=net["sender"].headers
    ).get_json()
    assert [e["to_status"] for e in events["items"]].count("accepted") == 1


# Lists and deadlines


def test_lists_filter_and_carry_no_personal_data(client, net):
    first = sent(client, net)
    second = sent(client, net, urgency="emergency")
    move(client, net["receiver"], first, "received")
    sender_list = client.get(
        "/api/v1/referrals", headers=net["sender"].headers, query_string={"role": "sent"}
    )
    items = sender_list.get_json()["items"]
    assert {i["id"] for i in items} == {first["id"], second["id"]}
    assert all(value not in sender_list.get_data(as_text=True) for value in PERSONAL_VALUES)
    received = client.get(
        "/api/v1/referrals",
        headers=net["receiver"].headers,
        query_string={"role": "received", "status": "received"},
    ).get_json()["items"]
    assert [i["id"] for i in received] == [first["id"]]
    urgent = client.get(
        "/api/v1/referrals", headers=net["receiver"].headers, query_string={"urgency": "emergency"}
    ).get_json()["items"]
    assert [i["id"] for i in urgent] == [second["id"]]
    assert (
        client.get("/api/v1/referrals", headers=net["stranger"].headers).get_json()["items"] == []
    )
    focal = client.get("/api/v1/referrals", headers=net["focal_in"].headers).get_json()["items"]
    assert len(focal) == 2
    assert (
        client.get(
            "/api/v1/referrals", headers=net["sender"].headers, query_string={"limit": 101}
        ).status_code
        == 422
    )


def test_pages_of_referrals(client, net):
    ids = {sent(client, net)["id"] for _ in range(5)}
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(
            "/api/v1/referrals", headers=net["sender"].headers, query_string=params
        ).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(seen) == ids and len(seen) == 5


def test_overdue_referrals_are_flagged_escalated_then_expired(client, net):
    referral = sent(client, net, urgency="emergency")
    clock.freeze(clock.now() + timedelta(hours=5))
    try:
        referral_deadlines()
        view = read(client, net["sender"], referral).get_json()
        overdue = client.get(
            "/api/v1/referrals", headers=net["receiver"].headers, query_string={"overdue": "true"}
        ).get_json()["items"]
    finally:
        clock.freeze(None)
    assert view["overdue"] is True and [i["id"] for i in overdue] == [referral["id"]]
    clock.freeze(clock.now() + timedelta(days=31))
    try:
        referral_deadlines()
    finally:
        clock.freeze(None)
    view = read(client, net["sender"], referral).get_json()
    assert view["status"] == "expired" and view["fhir_status"] == "failed"
    events = client.get(
        f"/api/v1/referrals/{referral['id']}/events", headers=net["sender"].headers
    ).get_json()
    assert [e["type"] for e in events["items"]] == [
        "referral.created",
        "referral.overdue",
        "referral.status_changed",
    ]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (
            datetime(2026, 11, 20, 10, tzinfo=UTC),
            datetime(2026, 11, 25, 10, tzinfo=UTC),
        ),  # Fri -> Wed
        (
            datetime(2026, 11, 23, 10, tzinfo=UTC),
            datetime(2026, 11, 26, 10, tzinfo=UTC),
        ),  # Mon -> Thu
    ],
)
def test_normal_referrals_have_three_business_days(start, expected):
    assert answer_deadline("normal", start) == expected
    assert answer_deadline("emergency", start) == start + timedelta(hours=4)
    assert answer_deadline("high", start) == start + timedelta(hours=24)


def test_a_third_organisation_cannot_see_or_change_a_referral(client, net):
    referral = sent(client, net)
    other = client_party(client, make_org())
    assert read(client, other, referral).status_code == 404
    assert move(client, other, referral, "received").status_code == 404
    assert (
        client.get(f"/api/v1/referrals/{referral['id']}/events", headers=other.headers).status_code
        == 404
    )


def test_personal_data_never_reaches_logs_or_errors(client, net, log_lines):
    referral = sent(client, net)
    bad = referral_body(
        net["service"].id,
        subject__identity={"given_name": GIVEN_NAME, "date_of_birth": FAMILY_NAME},
    )
    response = send(client, net["sender"], bad)
    assert response.status_code == 422
    read(client, net["receiver"], referral)
    move(client, net["receiver"], referral, "accepted")
    text = log_lines.getvalue() + response.get_data(as_text=True)
    for value in PERSONAL_VALUES:
        assert value not in text


def test_data_keys_rotate(app, client, net):
    from referral_hub import crypto
    from referral_hub.referrals.service import rotate_data_keys

    referral = sent(client, net)
    keys = app.extensions["hub_data_keys"]
    old_id = app.config["DATA_ENCRYPTION_KEY_ID"]
    app.extensions["hub_data_keys"] = {**keys, "k2": b"2" * 32}
    app.config["DATA_ENCRYPTION_KEY_ID"] = "k2"
    try:
        assert rotate_data_keys() == 4
        db.session.commit()
        row = db.session.execute(sa.text("SELECT identity_data FROM referrals")).scalar_one()
        assert crypto.key_id_of(row) == "k2"
        app.extensions["hub_data_keys"] = {"k2": b"2" * 32}
        view = read(client, net["sender"], referral).get_json()
        assert view["subject"]["identity"]["family_name"] == FAMILY_NAME and view["version"] == 1
    finally:
        app.extensions["hub_data_keys"], app.config["DATA_ENCRYPTION_KEY_ID"] = keys, old_id


def test_concurrent_retries_with_one_idempotency_key_make_one_referral(
    client, net, live_server, database_url
):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises every write; the race is tested on PostgreSQL")
    body = referral_body(net["service"].id)
    barrier, results = threading.Barrier(4), []

    def post():
        barrier.wait()
        response = HTTP().post(
            f"{live_server}/api/v1/referrals",
            json=body,
            headers={**net["sender"].headers, "Idempotency-Key": "retry-storm"},
        )
        results.append((response.status_code, response.json().get("id")))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(code for code, _ in results) == [200, 200, 200, 201]
    assert len({referral_id for _, referral_id in results}) == 1


def test_a_list_costs_the_same_queries_for_one_referral_or_many(client, net, statements):
    def statements_for_list():
        statements.clear()
        response = client.get("/api/v1/referrals", headers=net["sender"].headers)
        # The deny-list is read again every REVOCATION_CACHE_SECONDS, whatever the request:
        # on a slow machine that falls between the two lists, so it is not counted.
        listing = [sql for sql in statements if "token_revocations" not in sql]
        return len(response.get_json()["items"]), len(listing)

    sent(client, net)
    one = statements_for_list()
    for _ in range(5):
        sent(client, net)
    many = statements_for_list()
    assert (one[0], many[0]) == (1, 6)
    assert many[1] == one[1]


def test_sending_a_referral_reads_the_service_but_not_its_collections(client, net):
    """Its phones, contacts, schedules... are for the directory: a referral needs none of them."""
    service_id = net["service"].id
    db.session.expunge_all()  # as a new request finds it: nothing loaded yet
    sent = []

    def record(_connection, _cursor, _statement, _parameters, context, _executemany):
        sent.append(context.statement)  # as written, before prepared.py makes it an EXECUTE

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = send(client, net["sender"], referral_body(service_id))
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert response.status_code == 201, response.get_json()
    read = [sql for sql in sent if sql.lstrip().startswith("SELECT")]
    assert any("FROM services" in sql for sql in read)
    for table in ("service_languages", "phones", "contacts", "schedules", "service_areas"):
        assert not any(table in sql for sql in read), table
