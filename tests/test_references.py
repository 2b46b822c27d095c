"""Referral references (MT-26-0042): made at the create, per sender and year, unique under
concurrent creates, searchable, in the API and the callbacks, and given to the referrals sent
before them by the migration (issue 14, item 2)."""

import threading
import uuid
from datetime import UTC, datetime

import pytest
from flask_migrate import downgrade, upgrade

from referral_hub import clock, create_app
from referral_hub.auth.principal import Principal
from referral_hub.directory.models import Organization
from referral_hub.extensions import db
from referral_hub.referrals import references
from referral_hub.referrals import service as referral_service
from referral_hub.referrals.models import Referral
from referral_hub.referrals.schemas import ReferralCreate

from .conftest import hub_config
from .factories import make_org, make_service
from .referral_fixtures import network, referral_body, send


@pytest.mark.parametrize(
    ("name", "alternate", "code"),
    [
        ("M'Lop Tapang", "MT", "MT"),
        ("Damnok Toek", "Goutte d'Eau (DT)", "DT"),
        ("TPO Cambodia", "Transcultural Psychosocial Organization (TPO)", "TPO"),
        ("Krousar Thmey", None, "KT"),
        ("Rehabilitation Center, Battambang", None, "RCB"),
        ("Cambodian Center for the Protection of Children's Rights", None, "CCFTPO"),
        ("ក្រសារថ្មី", None, "ORG"),
    ],
)
def test_a_short_code_is_the_acronym_or_the_initials(name, alternate, code):
    assert references.short_code(name, alternate) == code


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("mt-26-0042", "MT-26-0042"),
        (" MT-26- 0042 ", "MT-26-0042"),
        ("KT2-27-12345", "KT2-27-12345"),
    ],
)
def test_a_typed_reference_is_read_as_stored(typed, stored):
    assert references.normalized(typed) == stored


@pytest.mark.parametrize("typed", ["", "MT-2026-0042", "M-26-0042", "MT-26-42", "MT 26 0042 x"])
def test_what_is_no_reference_is_refused(typed):
    assert references.normalized(typed) is None


def test_references_count_per_sender_and_restart_each_year(app, client):
    net = network(app, client)
    body = referral_body(net["service"].id)
    clock.freeze(datetime(2026, 12, 31, 16, 0, tzinfo=UTC))  # 23:00 in Phnom Penh
    try:
        first = send(client, net["sender"], body).get_json()
        second = send(client, net["sender"], body).get_json()
        clock.freeze(datetime(2026, 12, 31, 17, 30, tzinfo=UTC))  # 00:30, 1 January 2027
        third = send(client, net["sender"], referral_body(net["service"].id)).get_json()
    finally:
        clock.freeze(None)
    code = db.session.get(Organization, net["sender"].organization_id).short_code
    assert [r["reference"] for r in (first, second, third)] == [
        f"{code}-26-0001",
        f"{code}-26-0002",
        f"{code}-27-0001",
    ]


def test_a_replay_keeps_its_reference_and_takes_no_number(app, client):
    net = network(app, client)
    body = referral_body(net["service"].id)
    first = send(client, net["sender"], body, key="k1").get_json()
    again = send(client, net["sender"], body, key="k1").get_json()
    after = send(client, net["sender"], body).get_json()
    assert again["reference"] == first["reference"]
    assert after["reference"].endswith("-0002")


def test_two_organisations_with_the_same_initials_get_distinct_codes(app, client):
    net = network(app, client)
    twins = [make_org(f"Kids Trust {n}") for n in range(2)]  # both "KT"
    codes = set()
    for twin in twins:
        principal = Principal(twin.id, "c", None, frozenset(), frozenset(), frozenset())
        data = ReferralCreate().load(referral_body(net["service"].id))
        referral, _ = referral_service.create_referral(principal, data)
        codes.add(referral.reference.split("-")[0])
        db.session.commit()
    assert codes == {"KT", "KT2"}


def test_the_list_finds_a_referral_by_its_reference_as_typed(app, client):
    net = network(app, client)
    sent = [send(client, net["sender"], referral_body(net["service"].id)).get_json() for _ in "ab"]
    typed = sent[1]["reference"].lower()
    found = client.get(
        "/api/v1/referrals", query_string={"reference": typed}, headers=net["receiver"].headers
    )
    assert [r["id"] for r in found.get_json()["items"]] == [sent[1]["id"]]
    wrong = client.get(
        "/api/v1/referrals", query_string={"reference": "nonsense"}, headers=net["sender"].headers
    )
    assert wrong.status_code == 422
    assert wrong.get_json()["errors"][0]["field"] == "reference"


def test_references_are_unique_under_concurrent_creates(app, client):
    """Eight threads send for one sender at once: every number is taken once, none skipped."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises every write; the race is tested on PostgreSQL")
    net = network(app, client)
    body = referral_body(net["service"].id)
    start, answers = threading.Barrier(8), []

    def create():
        start.wait()
        for _ in range(5):
            key = str(uuid.uuid4())
            answers.append(send(app.test_client(), net["sender"], body, key=key).get_json())

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    numbers = sorted(int(answer["reference"].rsplit("-", 1)[1]) for answer in answers)
    assert numbers == list(range(1, 41))


def test_the_migration_numbers_the_referrals_sent_before_it(empty_database_url, live_port):
    if not empty_database_url.startswith("postgresql"):
        pytest.skip("SQLite cannot downgrade past tables other tables reference (batch rebuilds)")
    hub = create_app(hub_config(empty_database_url, live_port))
    with hub.app_context():
        upgrade()
        sender_id = make_org("Mith Samlanh").id
        service = make_service(make_org("Kaliyan Mith"))
        principal = Principal(sender_id, "c", None, frozenset(), frozenset(), frozenset())
        sent = []
        for _ in range(3):
            data = ReferralCreate().load(referral_body(service.id))
            sent.append(referral_service.create_referral(principal, data)[0].id)
            db.session.commit()
        made = [db.session.get(Referral, referral_id).reference for referral_id in sent]
        db.session.remove()
        downgrade(revision="8d79af151976")
        upgrade()
        numbered = [db.session.get(Referral, referral_id).reference for referral_id in sent]
        assert numbered == made == [f"MS-{clock.now().year % 100:02d}-000{n}" for n in (1, 2, 3)]
        assert db.session.get(Organization, sender_id).reference_count == 3
        db.session.remove()
        db.engine.dispose()
