"""Two partner organisations, a service to refer to, and the other parties of the network."""

import base64
import copy
import json
from dataclasses import dataclass
from datetime import timedelta

from referral_hub import clock
from referral_hub.extensions import db
from referral_hub.federation.models import Forward, Peer
from referral_hub.referrals.models import Referral

from .factories import (
    bearer,
    client_token,
    make_client,
    make_org,
    make_service,
    make_user,
    user_tokens,
)

SCOPES = "referrals:read referrals:write callbacks:manage"
GIVEN_NAME, FAMILY_NAME = "Sophearith", "Chanthavong"
PHONE = "+855 12 987 654"
HEALTH_NOTE = "uses crutches since a landmine accident"
CASE_NOTE = "stepfather threatens him when drinking"
PERSONAL_VALUES = (GIVEN_NAME, FAMILY_NAME, PHONE, HEALTH_NOTE, CASE_NOTE)


@dataclass
class Party:
    token: str
    organization_id: str

    @property
    def headers(self):
        return bearer(self.token)


def client_party(client, organization, scopes=SCOPES):
    client_id, secret = make_client(organization, scopes.split())
    return Party(client_token(client, client_id, secret, scopes), organization.id)


def user_party(app, roles, provinces=(), scopes=SCOPES):
    organization = make_org()
    user = make_user(organization, roles=roles, provinces=provinces)
    return Party(user_tokens(app, user, scopes)["access_token"], organization.id)


def network(app, client):
    """Sender, receiver (owning the service), a stranger, focal points in and out, a coordinator."""
    sender_org, receiver_org = make_org(province="17"), make_org(province="17")
    service = make_service(
        receiver_org,
        name="Water Lily House",
        categories=["detox"],
        areas=["17"],
        minimum_age=10,
        maximum_age=18,
    )
    return {
        "service": service,
        "sender": client_party(client, sender_org),
        "receiver": client_party(client, receiver_org),
        "stranger": client_party(client, make_org()),
        "focal_in": user_party(app, ["focal_point"], ["17"], "referrals:read"),
        "focal_out": user_party(app, ["focal_point"], ["12"], "referrals:read"),
        "coordinator": user_party(app, ["coordinator"], scopes="referrals:read"),
    }


def referral_body(service_id, **changes):
    now = clock.now()
    body = {
        "service_id": service_id,
        "urgency": "high",
        "needs": ["detox"],
        "subject": {
            "sex": "male",
            "birth_year": now.year - 15,
            "province": "17",
            "identity": {
                "given_name": GIVEN_NAME,
                "family_name": FAMILY_NAME,
                "date_of_birth": f"{now.year - 15}-03-14",
            },
            "contact": {"phone": PHONE, "caregiver_name": "Mother"},
            "health": {"notes": HEALTH_NOTE},
            "case_history": {"reason": CASE_NOTE},
        },
        "consent": {
            "given_by": "guardian",
            "method": "thumbprint",
            "obtained_at": (now - timedelta(hours=1)).isoformat(),
            "categories": ["identity", "contact", "health"],
            "share_identity_with_government": False,
            "expires_at": (now + timedelta(days=180)).isoformat(),
        },
    }
    body = copy.deepcopy(body)
    for path, value in changes.items():
        target = body
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        if value is REMOVE:
            target.pop(last, None)
        else:
            target[last] = value
    return body


REMOVE = object()


def send(client, party, body, key=None):
    headers = {**party.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post("/api/v1/referrals", json=body, headers=headers)


def move(client, party, referral, status, **fields):
    response = client.post(
        f"/api/v1/referrals/{referral['id']}/status",
        json={"status": status, **fields},
        headers={**party.headers, "If-Match": f'"{referral["version"]}"'},
    )
    return response


def client_actor(party):
    """How the hub names the party's client in timelines and the audit log."""
    claims = party.token.split(".")[1]
    return (
        "client:"
        + json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["client_id"]
    )


def forwarded_to_a_peer(referral_ids):
    """The referrals as forwarded to a peer hub, each with two steps (as the outbox writes)."""
    peer = Peer(name="Siem Reap network")
    db.session.add(peer)
    db.session.flush()
    for referral_id in referral_ids:
        referral = db.session.get(Referral, referral_id)
        referral.peer_id, referral.forwarding = peer.id, "forwarded"
        for action, status in (("create", "done"), ("withdraw", "pending")):
            db.session.add(
                Forward(
                    referral_id=referral_id,
                    peer_id=peer.id,
                    action=action,
                    status=status,
                    next_attempt_at=referral.created_at,
                    last_error="peer busy" if status == "pending" else None,
                )
            )
    db.session.commit()
