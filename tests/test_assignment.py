"""Assigning a referral: only the receiver, only to its own people, audited without names."""

import pytest

from referral_hub.audit.models import PendingAuditEntry
from referral_hub.directory import service as directory_service
from referral_hub.extensions import db
from referral_hub.referrals import service
from referral_hub.referrals.models import Referral

from .factories import make_org, make_user, user_tokens
from .referral_fixtures import (
    PERSONAL_VALUES,
    Party,
    client_actor,
    move,
    network,
    referral_body,
    send,
)


@pytest.fixture
def net(app, client):
    parties = network(app, client)
    response = send(client, parties["sender"], referral_body(parties["service"].id))
    assert response.status_code == 201, response.get_json()
    receiver_org = directory_service.get_organization(parties["receiver"].organization_id)
    return {
        **parties,
        "referral": response.get_json(),
        "caseworker": make_user(receiver_org, roles=["caseworker"]),
        "colleague": make_user(receiver_org, roles=["org_admin", "caseworker"]),
    }


def assign(client, party, referral, user_id):
    return client.post(
        f"/api/v1/referrals/{referral['id']}/assignment",
        json={"user_id": user_id},
        headers=party.headers,
    )


def assignee_of(referral):
    return db.session.get(Referral, referral["id"]).assigned_to_user_id


def assignment_entries(referral, party=None):
    """The details of the referral's assignment entries, each checked to name the party (the
    receiver's client, if given) and the referral."""
    found = db.session.scalars(
        db.select(PendingAuditEntry)
        .filter_by(action="referral.assigned", resource_id=referral["id"])
        .order_by(PendingAuditEntry.id)
    ).all()
    if party is not None:
        assert {(e.actor, e.organization_id, e.resource_type) for e in found} == {
            (client_actor(party), party.organization_id, "referral")
        }
    return [entry.details for entry in found]


def test_the_receiver_assigns_reassigns_and_unassigns_and_each_is_audited(client, net):
    referral, receiver = net["referral"], net["receiver"]
    response = assign(client, receiver, referral, net["caseworker"].id)
    assert response.status_code == 200, response.get_json()
    assert response.headers["ETag"] == f'"{referral["version"] + 1}"'
    assert response.get_json()["assigned_to_user_id"] == net["caseworker"].id
    assert assignee_of(referral) == net["caseworker"].id

    assert assign(client, receiver, referral, net["colleague"].id).status_code == 200
    assert assignee_of(referral) == net["colleague"].id
    assert assign(client, receiver, referral, None).status_code == 200
    assert assignee_of(referral) is None

    entries = assignment_entries(referral, receiver)
    assert [details["reason"] for details in entries] == ["assigned", "reassigned", "unassigned"]
    logged = str(entries)
    for person in (net["caseworker"], net["colleague"]):
        assert person.id not in logged and person.email not in logged
    assert not any(value in logged for value in PERSONAL_VALUES)


def test_assigning_the_same_person_again_changes_nothing(client, net):
    referral, receiver = net["referral"], net["receiver"]
    assign(client, receiver, referral, net["caseworker"].id)
    again = assign(client, receiver, referral, net["caseworker"].id)
    assert again.status_code == 200
    assert again.headers["ETag"] == f'"{referral["version"] + 1}"'
    assert len(assignment_entries(referral)) == 1


def test_only_the_receiver_assigns(client, net):
    referral = net["referral"]
    response = assign(client, net["sender"], referral, net["caseworker"].id)
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == "Only the receiving organisation assigns a referral."
    assert assignee_of(referral) is None


def test_an_organisation_that_may_not_know_the_referral_gets_404(client, net):
    response = assign(client, net["stranger"], net["referral"], net["caseworker"].id)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("who", ["sender's caseworker", "another org's", "focal point", "disabled"])
def test_only_an_active_caseworker_of_the_receiving_organisation_is_assigned(client, net, who):
    receiver_org = directory_service.get_organization(net["receiver"].organization_id)
    sender_org = directory_service.get_organization(net["sender"].organization_id)
    if who == "sender's caseworker":
        user = make_user(sender_org)
    elif who == "another org's":
        user = make_user(make_org())
    elif who == "focal point":
        user = make_user(receiver_org, roles=["focal_point"], provinces=["17"])
    else:
        user = make_user(receiver_org)
        user.active = False
        db.session.commit()
    response = assign(client, net["receiver"], net["referral"], user.id)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.get_json()["errors"]] == ["user_id"]
    assert assignee_of(net["referral"]) is None


def test_an_unknown_user_and_a_malformed_body_are_refused_at_the_field(client, net):
    referral, receiver = net["referral"], net["receiver"]
    unknown = assign(client, receiver, referral, "6f1c1f4e-0000-4000-8000-000000000000")
    assert unknown.status_code == 422
    assert unknown.get_json()["errors"][0] == {
        "field": "user_id",
        "message": "Choose a caseworker of the receiving organisation.",
    }
    for body in ({}, {"user_id": "not-a-uuid"}):
        response = client.post(
            f"/api/v1/referrals/{referral['id']}/assignment", json=body, headers=receiver.headers
        )
        assert response.status_code == 422
        assert response.get_json()["errors"][0]["field"] == "user_id"


def test_a_closed_referral_is_not_assigned(client, net):
    referral, receiver = net["referral"], net["receiver"]
    referral = move(client, receiver, referral, "received").get_json()
    referral = move(client, receiver, referral, "declined", reason="no_capacity").get_json()
    response = assign(client, receiver, referral, net["caseworker"].id)
    assert response.status_code == 409
    assert response.get_json()["errors"][0] == {
        "field": "status",
        "message": "Only an open referral is assigned.",
    }


def test_a_person_signed_in_through_an_app_needs_a_caseworker_role(app, client, net):
    receiver_org = directory_service.get_organization(net["receiver"].organization_id)
    coordinator_here = make_user(receiver_org, roles=["coordinator"])
    token = user_tokens(app, coordinator_here, "referrals:read referrals:write")["access_token"]
    party = Party(token, receiver_org.id)
    response = assign(client, party, net["referral"], net["caseworker"].id)
    assert response.status_code == 403
    assert response.get_json()["detail"] == "This needs one of the roles: caseworker, org_admin."

    caseworker_token = user_tokens(app, net["colleague"], "referrals:write")["access_token"]
    party = Party(caseworker_token, receiver_org.id)
    assert assign(client, party, net["referral"], net["caseworker"].id).status_code == 200


def test_the_people_to_choose_from_are_the_receivers_active_caseworkers_by_name(net):
    receiver_org = directory_service.get_organization(net["receiver"].organization_id)
    sender_org = directory_service.get_organization(net["sender"].organization_id)
    disabled = make_user(receiver_org)
    disabled.active = False
    make_user(receiver_org, roles=["focal_point"], provinces=["17"])
    make_user(sender_org)
    named = [
        ("Bopha", "b1@example.org"),
        ("Atith", "z@example.org"),
        ("Bopha", "a0@example.org"),
    ]
    bopha_1, atith, bopha_0 = (make_user(receiver_org, email=email) for _, email in named)
    for user, (name, _) in zip((bopha_1, atith, bopha_0), named, strict=True):
        user.name = name
    net["caseworker"].name, net["colleague"].name = "Chan", "Dara"
    db.session.commit()
    chosen = service.assignable_users(receiver_org.id)
    expected = [atith, bopha_0, bopha_1, net["caseworker"], net["colleague"]]
    assert [user.id for user in chosen] == [user.id for user in expected]
