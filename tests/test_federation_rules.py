"""Federation's rules inside one hub: what a peer's token sees of the directory, a peer's
mirrored entries, callback verification, the forwarding flag and the cross-network figures.
The flows between two hubs are in test_federation.py."""

import json
import time
import uuid
from datetime import datetime, timedelta

import pytest

from referral_hub.audit import service as audit
from referral_hub.audit.models import AuditEntry
from referral_hub.callbacks.signing import new_secret, signature
from referral_hub.directory.models import Organization, Service
from referral_hub.errors import Unauthorized
from referral_hub.extensions import db
from referral_hub.federation import callbacks, forwarding, mirror, outbox, peering, remote
from referral_hub.federation.models import Forward, Peer
from referral_hub.referrals import service as referrals
from referral_hub.referrals.models import Referral, ReferralEvent
from referral_hub.referrals.presentation import present

from .factories import (
    add_location,
    bearer,
    client_token,
    coordinator_token,
    make_client,
    make_org,
    make_service,
)
from .pages import signed_in, submit, text
from .referral_fixtures import (
    client_party,
    forwarded_to_a_peer,
    network,
    referral_body,
    send,
)


def _peer_token(client, invitation, scope="directory:read federation"):
    return client_token(client, invitation["client_id"], invitation["client_secret"], scope)


def _added_peer(name="Phnom Penh network"):
    """A peer as `peers add` leaves it, without the network checks (they need a second hub)."""
    peer = Peer(name=name, url="http://127.0.0.1:9", remote_client_id="hub_x")
    db.session.add(peer)
    db.session.flush()
    peer.callback_secret_data = remote.seal(peer.id, "callbacks", new_secret())
    db.session.commit()
    return peer


def test_a_peer_reads_every_status_and_confidential_places_only_when_trusted(client):
    organization = make_org()
    open_service = make_service(organization, name="Open house")
    closed = make_service(organization, name="Closed house")
    closed.status = "inactive"
    add_location(open_service, "Safe house", "Street 1, secret", confidential=True)
    invitation = peering.invite("test", "Siem Reap network")
    db.session.commit()
    token = _peer_token(client, invitation)

    def names_and_addresses(headers):
        page = client.get("/hsds/services?full=true", headers=headers).get_json()
        entries = {entry["name"]: entry for entry in page["contents"]}
        return {name: entry["status"] for name, entry in entries.items()}, json.dumps(page)

    public, public_text = names_and_addresses({})
    assert public == {"Open house": "active"} and "secret" not in public_text
    as_peer, peer_text = names_and_addresses(bearer(token))
    assert as_peer == {"Open house": "active", "Closed house": "inactive"}
    assert "secret" not in peer_text
    peering.set_trusted("test", "Siem Reap network", True)
    db.session.commit()
    _, trusted_text = names_and_addresses(bearer(token))
    assert "Street 1, secret" in trusted_text


def test_a_retired_organisation_reaches_a_peer_as_inactive_services(client):
    organization = make_org()
    make_service(organization, name="Night shelter")
    invitation = peering.invite("test", "Siem Reap network")
    organization.status = "retired"
    db.session.commit()
    page = client.get("/hsds/services?full=true", headers=bearer(_peer_token(client, invitation)))
    assert [e["status"] for e in page.get_json()["contents"]] == ["inactive"]


def _entry(service_id, organization_id, **changes):
    entry = {
        "id": service_id,
        "name": "Mirrored service",
        "status": "active",
        "description": "",
        "accepting_referrals": True,
        "capacity_status": "available",
        "attributes": [{"taxonomy_term_id": "detox", "taxonomy_term": {"code": "detox"}}],
        "service_areas": [{"extent": "12", "extent_type": "text"}],
        "organization": {
            "id": organization_id,
            "name": f"NGO {organization_id[:8]}",
            "description": "x",
        },
        "last_modified": "2026-12-01T00:00:00.000000+00:00",
    }
    entry.update(changes)
    return entry


def test_bad_data_from_a_peer_is_reported_and_nothing_of_the_sync_applied():
    peer = _added_peer()
    local = make_service(make_org())
    good = _entry(str(uuid.uuid4()), str(uuid.uuid4()))
    taken = _entry(local.id, str(uuid.uuid4()), name="Takes a local id")
    wrong = _entry(str(uuid.uuid4()), str(uuid.uuid4()), status="closed forever")
    with pytest.raises(mirror.BadPeerData) as refused:
        mirror.apply(peer, [good, wrong])
    assert [e["field"] for e in refused.value.errors] == ["organizations[1].services[0].status"]
    with pytest.raises(mirror.BadPeerData) as refused:
        mirror.apply(peer, [good, taken])
    assert refused.value.errors[0]["message"] == "Not the peer's id."
    elsewhere = _entry(str(uuid.uuid4()), str(uuid.uuid4()))
    elsewhere["service_at_locations"] = [{"location_id": str(uuid.uuid4())}]
    with pytest.raises(mirror.BadPeerData) as refused:
        mirror.apply(peer, [good, elsewhere])
    assert refused.value.errors == [
        {
            "field": "organizations[1].services[0].service_at_locations[0].location_id",
            "message": "Not a location it lists.",
        }
    ]
    db.session.rollback()
    assert db.session.get(Service, good["id"]) is None
    assert db.session.get(Service, local.id).peer_id is None


def test_a_mirrored_entry_is_marked_and_edited_only_at_its_hub(client, app):
    peer = _added_peer()
    entry = _entry(str(uuid.uuid4()), str(uuid.uuid4()))
    assert mirror.apply(peer, [entry])["created"] == 1
    assert mirror.apply(peer, [entry])["unchanged"] == 1
    db.session.commit()
    token = coordinator_token(app)
    found = client.get(f"/api/v1/services/{entry['id']}", headers=bearer(token)).get_json()
    assert found["hub"] == {"id": peer.id, "name": "Phnom Penh network"}
    edited = client.patch(
        f"/api/v1/services/{entry['id']}", json={"name": "Renamed"}, headers=bearer(token)
    )
    assert edited.status_code == 403
    local_only = client.get("/api/v1/services?hub=local", headers=bearer(token)).get_json()
    assert entry["id"] not in {hit["id"] for hit in local_only["items"]}
    theirs = client.get(f"/api/v1/services?hub={peer.id}", headers=bearer(token)).get_json()
    assert [hit["id"] for hit in theirs["items"]] == [entry["id"]]
    assert client.get("/api/v1/services?hub=nowhere", headers=bearer(token)).status_code == 422


def _mirrored_service():
    """A peer and one of its services, as a sync leaves them here."""
    peer = _added_peer()
    entry = _entry(str(uuid.uuid4()), str(uuid.uuid4()))
    mirror.apply(peer, [entry])
    db.session.commit()
    return peer, entry


def _signed(secret, webhook_id, stamp, body):
    return signature(secret, webhook_id, stamp, body)


def test_a_callback_is_verified_by_signature_and_time():
    peer = _added_peer()
    secret = remote.unseal(peer.id, "callbacks", peer.callback_secret_data)
    body, now = b'{"type": "referral.status_changed"}', int(time.time())
    for offset in (-300, 300):
        stamp = str(now + offset)
        callbacks.verify(peer, "msg_1", stamp, _signed(secret, "msg_1", stamp, body), body, now)
    for stamp in (str(now - 301), str(now + 301), "soon"):
        with pytest.raises(Unauthorized):
            callbacks.verify(peer, "msg_1", stamp, _signed(secret, "msg_1", stamp, body), body, now)
    stamp = str(now)
    with pytest.raises(Unauthorized):
        callbacks.verify(peer, "msg_2", stamp, _signed(secret, "msg_1", stamp, body), body, now)
    with pytest.raises(Unauthorized):
        callbacks.verify(peer, "msg_1", stamp, _signed(secret, "msg_1", stamp, b"{}"), body, now)
    long_id = "m" * 101
    with pytest.raises(Unauthorized):
        callbacks.verify(peer, long_id, stamp, _signed(secret, long_id, stamp, body), body, now)


def test_a_paused_peers_callbacks_are_not_heard(client):
    peer = _added_peer()
    peering.set_status("test", peer.id, "paused")
    db.session.commit()
    answer = client.post(
        f"/federation/callbacks/{peer.id}",
        data=b"{}",
        content_type="application/json",
        headers={"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
    )
    assert answer.status_code == 404


def test_a_referral_waiting_a_day_for_its_peer_is_flagged(client, moved_clock):
    _peer, entry = _mirrored_service()
    sender = client_party(client, make_org())
    sent = client.post("/api/v1/referrals", json=referral_body(entry["id"]), headers=sender.headers)
    assert sent.status_code == 201, sent.get_json()
    assert (sent.get_json()["forwarding"], sent.get_json()["forwarding_flagged"]) == (
        "pending",
        False,
    )
    referral = db.session.get(Referral, sent.get_json()["id"])
    moved_clock(24 * 3600 - 1)
    assert not outbox.flagged(referral)
    moved_clock(24 * 3600)
    assert outbox.flagged(referral)
    referral.forwarding = "forwarded"
    assert not outbox.flagged(referral)
    referral.forwarding = "refused"
    moved_clock(0)
    assert outbox.flagged(referral)


def test_reports_show_the_flows_with_each_peer_hub(client, app):
    peer, entry = _mirrored_service()
    sender = client_party(client, make_org())
    for _ in range(3):
        client.post("/api/v1/referrals", json=referral_body(entry["id"]), headers=sender.headers)
    long_ago = db.session.scalars(db.select(Referral)).first()  # outside the report's period
    long_ago.created_at -= timedelta(days=200)
    db.session.commit()
    local = make_service(make_org())
    client.post("/api/v1/referrals", json=referral_body(local.id), headers=sender.headers)
    invitation = peering.invite("test", "Kampot network")
    db.session.commit()
    from_peer = bearer(_peer_token(client, invitation, "referrals:write referrals:read federation"))
    body = {**referral_body(local.id), "referrer": {"caseworker": "Vanna", "organization": "KNGO"}}
    received = client.post("/api/v1/referrals", json=body, headers=from_peer)
    assert received.status_code == 201, received.get_json()
    assert received.get_json()["referrer"] == {
        "hub": "Kampot network",
        "caseworker": "Vanna",
        "organization": "KNGO",
    }
    token = coordinator_token(app, "reports:read")
    summary = client.get("/api/v1/reports/summary", headers=bearer(token)).get_json()
    assert summary["total"] == 4
    kampot = db.session.scalar(db.select(Peer.id).filter_by(name="Kampot network"))
    assert summary["by_peer_hub"] == [
        {"id": kampot, "name": "Kampot network", "sent": 0, "received": 1},
        {"id": peer.id, "name": "Phnom Penh network", "sent": 2, "received": 0},
    ]
    mirrored = db.session.get(Organization, entry["organization"]["id"])
    names = {row["name"] for row in summary["by_receiving_organization"]}
    assert mirrored.peer_id == peer.id and mirrored.name in names


def test_a_referral_forwarded_to_a_peer_expires_there_not_here(client, moved_clock):
    _peer, entry = _mirrored_service()
    sender = client_party(client, make_org())
    ids = [
        client.post(
            "/api/v1/referrals", json=referral_body(entry["id"]), headers=sender.headers
        ).get_json()["id"]
        for _ in range(2)
    ]
    db.session.get(Referral, ids[0]).forwarding = "forwarded"
    db.session.commit()
    moved_clock(40 * 24 * 3600)
    assert referrals.expire_unanswered() == 1
    assert [db.session.get(Referral, i).status for i in ids] == ["sent", "expired"]


def test_what_the_peer_refused_is_withdrawn_here_only(client):
    _peer, entry = _mirrored_service()
    sender = client_party(client, make_org())
    sent = client.post(
        "/api/v1/referrals", json=referral_body(entry["id"]), headers=sender.headers
    ).get_json()
    refused = db.session.get(Referral, sent["id"])
    refused.forwarding = "refused"
    db.session.commit()
    withdrawn = client.post(
        f"/api/v1/referrals/{sent['id']}/status",
        json={"status": "withdrawn"},
        headers={**sender.headers, "If-Match": f'"{refused.version}"'},
    )
    assert withdrawn.status_code == 200, withdrawn.get_json()
    assert withdrawn.get_json()["forwarding_flagged"] is True
    steps = db.session.scalars(db.select(Forward.action).filter_by(referral_id=sent["id"])).all()
    assert steps == ["create"]


def test_what_a_peer_leaves_out_of_an_entry_is_empty_here():
    peer = _added_peer()
    organization = str(uuid.uuid4())
    girls = _entry(str(uuid.uuid4()), organization, name="Girls", eligibility_sex="female")
    girls["places_free"] = 3
    anyone = _entry(str(uuid.uuid4()), organization, name="Anyone", accepting_referrals=False)
    assert mirror.apply(peer, [girls, anyone])["created"] == 2
    del girls["eligibility_sex"], girls["places_free"]
    assert mirror.apply(peer, [girls, anyone])["updated"] == 1
    db.session.commit()
    found = {s.name: s for s in db.session.scalars(db.select(Service).filter_by(peer_id=peer.id))}
    assert (found["Girls"].eligibility_sex, found["Girls"].places_free) == (None, None)
    assert found["Anyone"].accepting_referrals is False
    assert "girls" in found["Girls"].search_text and "detox" in found["Girls"].search_text


def test_coordinators_run_peers_through_the_api(client, app):
    token = bearer(coordinator_token(app, "admin"))
    invited = client.post("/api/v1/peers/invitations", json={"name": "Kep network"}, headers=token)
    assert invited.status_code == 201 and invited.headers["Cache-Control"] == "no-store"
    peer_id = invited.get_json()["peer_id"]
    again = client.post("/api/v1/peers/invitations", json={"name": "Kep network"}, headers=token)
    assert again.status_code == 409
    listed = client.get("/api/v1/peers", headers=token).get_json()["items"]
    assert [(p["name"], p["invited"], p["added"]) for p in listed] == [("Kep network", True, False)]
    assert client.post(f"/api/v1/peers/{peer_id}/sync", headers=token).status_code == 409
    paused = client.post(f"/api/v1/peers/{peer_id}/pause", headers=token).get_json()
    assert paused["status"] == "paused"
    trusted = client.post(
        f"/api/v1/peers/{peer_id}/trust", json={"confidential": True}, headers=token
    )
    assert trusted.get_json()["trusted_with_confidential"] is True
    assert client.delete(f"/api/v1/peers/{peer_id}", headers=token).status_code == 204
    assert client.get(f"/api/v1/peers/{peer_id}", headers=token).get_json()["status"] == "removed"
    unreachable = client.post(
        "/api/v1/peers",
        json={
            "name": "Nowhere",
            "url": "http://127.0.0.1:9",
            "client_id": "x",
            "client_secret": "y",
        },
        headers=token,
    )
    assert unreachable.status_code == 422 and unreachable.get_json()["errors"][0]["field"] == "url"
    assert (
        client.get("/api/v1/peers", headers=token).get_json()["items"][0]["name"] == "Kep network"
    )
    system = bearer(client_token(client, *make_client(make_org(), ["admin"]), "admin"))
    assert client.get("/api/v1/peers", headers=system).status_code == 403


def test_the_peers_page_shows_each_peer_and_pauses_it(app):
    peer = _added_peer()
    peer.last_sync_outcome = {
        "ok": False,
        "error": "The peer sent 1 invalid field(s).",
        "problems": [{"field": "organizations[0].name", "message": "Required."}],
    }
    peer.last_sync_at = peer.created_at
    db.session.commit()
    browser, _ = signed_in(app, ["coordinator"])
    page = browser.get("/network/peers", headers={"Accept-Language": "en"})
    shown = text(page)
    assert page.status_code == 200
    assert "Phnom Penh network" in shown and "organizations[0].name" in shown
    paused = submit(browser, "/network/peers", f"/network/peers/{peer.id}/state", paused="true")
    assert paused.status_code == 302
    assert db.session.get(Peer, peer.id).status == "paused"
    caseworker, _ = signed_in(app, ["caseworker"])
    assert caseworker.get("/network/peers").status_code == 403


def test_a_paused_peer_is_told_to_come_back_later(client):
    local = make_service(make_org())
    invitation = peering.invite("test", "Kampot network")
    db.session.commit()
    scopes = "referrals:write referrals:read directory:read federation"
    token = bearer(_peer_token(client, invitation, scopes))
    peering.set_status("test", "Kampot network", "paused")
    db.session.commit()
    body = {**referral_body(local.id), "referrer": {"organization": "KNGO"}}
    for answer in (
        client.post("/api/v1/referrals", json=body, headers=token),
        client.get("/hsds/services", headers=token),
    ):
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "600"
    assert db.session.scalar(db.select(Referral.id)) is None
    peering.set_status("test", "Kampot network", "active")
    db.session.commit()
    assert client.post("/api/v1/referrals", json=body, headers=token).status_code == 201


def test_a_forward_failing_on_our_side_counts_as_an_attempt_and_waits(client):
    _, entry = _mirrored_service()  # a peer whose credentials here cannot be read
    sender = client_party(client, make_org())
    client.post("/api/v1/referrals", json=referral_body(entry["id"]), headers=sender.headers)
    assert forwarding.forward_due() == 1
    forward = db.session.scalar(db.select(Forward))
    assert (forward.status, forward.attempts) == ("pending", 1)
    assert forward.last_error == "internal error: DecryptionError"
    assert forwarding.forward_due() == 0  # not due again before its retry time


def test_the_peers_api_gives_times_in_iso_8601(client, app):
    _added_peer()
    token = bearer(coordinator_token(app, "admin"))
    (peer,) = client.get("/api/v1/peers", headers=token).get_json()["items"]
    assert datetime.fromisoformat(peer["created_at"]).tzinfo is not None


def _peer_moves(referral, *moves):
    for status, fields in moves:
        referrals.record_peer_change(referral, status, "peer:kampot", **fields)
    db.session.commit()


def test_the_peers_answers_are_mirrored_on_the_senders_copy(client):
    """What the peer's receiver did reaches this hub's copy as if done here: the status and
    its reason, suggestion or outcome, the overdue flag, the timeline and the audit log."""
    _peer, entry = _mirrored_service()
    sender = client_party(client, make_org())
    suggestion = make_service(make_org())
    copies = [
        client.post(
            "/api/v1/referrals", json=referral_body(entry["id"]), headers=sender.headers
        ).get_json()
        for _ in range(2)
    ]
    completed, declined = (db.session.get(Referral, copy["id"]) for copy in copies)
    completed.overdue = declined.overdue = True
    _peer_moves(completed, ("received", {}))
    assert completed.overdue is True  # still waiting for an answer
    _peer_moves(
        completed,
        ("accepted", {"reason": "other", "suggested_service_id": suggestion.id}),
        ("completed", {"outcome": "service_provided"}),
    )
    _peer_moves(
        declined,
        ("declined", {"reason": "no_capacity", "suggested_service_id": suggestion.id}),
    )

    def seen(copy):
        view = client.get(f"/api/v1/referrals/{copy['id']}", headers=sender.headers).get_json()
        names = ("status", "overdue", "decline_reason", "suggested_service_id", "outcome")
        return tuple(view[name] for name in names)

    assert (completed.overdue, declined.overdue) == (False, False)  # the flag, not only the view
    assert seen(copies[0]) == ("completed", False, None, None, "service_provided")
    assert seen(copies[1]) == ("declined", False, "no_capacity", suggestion.id, None)
    steps = client.get(
        f"/api/v1/referrals/{copies[0]['id']}/events", headers=sender.headers
    ).get_json()["items"]
    assert [
        (s["from_status"], s["to_status"], s["actor"], s["reason"], s["outcome"]) for s in steps[1:]
    ] == [
        ("sent", "received", "peer:kampot", None, None),
        ("received", "accepted", "peer:kampot", "other", None),
        ("accepted", "completed", "peer:kampot", None, "service_provided"),
    ]
    assert {s["type"] for s in steps[1:]} == {"referral.status_changed"}
    events = db.session.scalars(
        db.select(ReferralEvent).filter_by(referral_id=completed.id, type="referral.status_changed")
    ).all()
    assert [e.organization_id for e in events] == [completed.receiver_organization_id] * 3
    audit.seal_all()
    logged = db.session.scalars(
        db.select(AuditEntry)
        .filter_by(resource_id=completed.id, action="referral.status_changed")
        .order_by(AuditEntry.seq)
    ).all()
    assert [(e.actor, e.organization_id, e.resource_type, e.details) for e in logged] == [
        ("peer:kampot", None, "referral", {"from": "sent", "to": "received", "version": 2}),
        ("peer:kampot", None, "referral", {"from": "received", "to": "accepted", "version": 3}),
        ("peer:kampot", None, "referral", {"from": "accepted", "to": "completed", "version": 4}),
    ]


def test_a_list_shows_each_referral_as_a_read_presents_it_forwarding_steps_and_peer_included(
    app, client
):
    """The API list reads plain rows, not the ORM referral that presentation.present takes."""
    net = network(app, client)
    ids = [
        send(client, net["sender"], referral_body(net["service"].id)).get_json()["id"]
        for _ in range(3)
    ]
    forwarded_to_a_peer(ids[:2])
    items = client.get("/api/v1/referrals", headers=net["sender"].headers).get_json()["items"]
    db.session.expire_all()
    expected = [present(db.session.get(Referral, referral_id)) for referral_id in ids]
    assert items == [json.loads(app.json.dumps(view)) for view in expected]
    assert [len(item["forwarded_steps"]) for item in items] == [2, 2, 0]
    assert items[0]["peer"] == {
        "id": items[0]["peer"]["id"],
        "name": "Siem Reap network",
        "former": False,
    }


def test_a_withdrawal_or_erasure_follows_the_referral_to_the_peer(client):
    _peer, entry = _mirrored_service()
    sender = client_party(client, make_org())
    steps = {}
    for erase in (False, True):
        sent = send(client, sender, referral_body(entry["id"])).get_json()
        withdrawn = client.post(
            f"/api/v1/referrals/{sent['id']}/consent/withdraw",
            json={"erase": erase},
            headers=sender.headers,
        )
        assert withdrawn.status_code == 200, withdrawn.get_json()
        steps[erase] = db.session.scalars(
            db.select(Forward.action).filter_by(referral_id=sent["id"]).order_by(Forward.id)
        ).all()
    assert steps == {False: ["create", "consent_withdraw"], True: ["create", "erase"]}
    sent = send(client, sender, referral_body(entry["id"])).get_json()
    withdrawn = client.post(
        f"/api/v1/referrals/{sent['id']}/status",
        json={"status": "withdrawn"},
        headers={**sender.headers, "If-Match": f'"{sent["version"]}"'},
    )
    assert withdrawn.status_code == 200, withdrawn.get_json()
    actions = db.session.scalars(
        db.select(Forward.action).filter_by(referral_id=sent["id"]).order_by(Forward.id)
    ).all()
    assert actions == ["create", "withdraw"]


def test_only_a_peer_hub_names_who_referred_and_nothing_is_written_otherwise(client):
    """The two-hub test of this runs in other processes, where mutation testing cannot reach."""
    local = make_service(make_org())
    sender = client_party(client, make_org())
    body = {**referral_body(local.id), "referrer": {"caseworker": "Vanna", "organization": "KNGO"}}
    refused = client.post("/api/v1/referrals", json=body, headers=sender.headers)
    assert refused.status_code == 422
    message = "Only a peer hub names who referred at its end."
    assert refused.get_json()["errors"] == [{"field": "referrer", "message": message}]
    assert db.session.scalar(db.select(Referral.id)) is None


def test_a_peer_hub_cannot_send_on_to_a_third_network_through_this_one(client):
    """A service this hub mirrors from one peer is not a service of this network to another."""
    _, entry = _mirrored_service()
    invitation = peering.invite("test", "Kampot network")
    db.session.commit()
    from_peer = bearer(_peer_token(client, invitation, "referrals:write referrals:read federation"))
    body = {**referral_body(entry["id"]), "referrer": {"organization": "KNGO"}}
    refused = client.post("/api/v1/referrals", json=body, headers=from_peer)
    assert refused.status_code == 409
    message = "Not a service of this network."
    assert refused.get_json()["errors"] == [{"field": "service_id", "message": message}]
    assert db.session.scalar(db.select(Referral.id)) is None
