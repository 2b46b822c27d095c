"""The partner kit's client against the real hub over HTTP, every call checked against openapi.yaml.

The kit's own tests keep a fake hub only for faults the real one cannot be made to produce.
"""

import uuid
from urllib.parse import urlsplit

import pytest
import requests
from referral_hub_kit import HubClient, HubError

from .contract import check_response
from .factories import make_client, make_org, make_service
from .referral_fixtures import GIVEN_NAME, referral_body

SCOPES = "directory:read referrals:read referrals:write callbacks:manage"


def _contract_checked_session(calls):
    """A requests session that checks each response of the hub against openapi.yaml."""

    def check(response, *_args, **_kwargs):
        path = urlsplit(response.request.url).path
        calls.append((response.request.method, path))
        body = response.json() if "json" in response.headers.get("Content-Type", "") else None
        mimetype = response.headers.get("Content-Type", "").split(";")[0] or None
        check_response(response.request.method, path, response.status_code, mimetype, body)

    session = requests.Session()
    session.hooks["response"].append(check)
    return session


@pytest.fixture
def kits(live_server):
    """The kit of a sending and of a receiving organisation, and the service between them."""
    calls = []
    sender_org, receiver_org = make_org(province="17"), make_org(province="17")
    service = make_service(
        receiver_org, name="Water Lily House", categories=["detox"], areas=["17"]
    )

    def kit(organization):
        client_id, secret = make_client(organization, SCOPES.split())
        session = _contract_checked_session(calls)
        return HubClient(live_server, client_id, secret, scope=SCOPES, session=session)

    return {
        "sender": kit(sender_org),
        "receiver": kit(receiver_org),
        "service": service,
        "calls": calls,
    }


def test_every_call_of_the_kit_works_against_the_hub(kits, live_server):
    sender, receiver, service = kits["sender"], kits["receiver"], kits["service"]
    found = sender.search_services(category="detox", province="17", accepting=True)
    assert [item["id"] for item in found["items"]] == [service.id]

    key, body = str(uuid.uuid4()), referral_body(service.id)
    created = sender.create_referral(body, idempotency_key=key)
    assert sender.create_referral(body, idempotency_key=key)["id"] == created["id"]
    assert [r["id"] for r in receiver.list_referrals(role="received")] == [created["id"]]

    seen = receiver.get_referral(created["id"])
    assert seen["version"] == 1 and seen["subject"]["identity"]["given_name"] == GIVEN_NAME
    received = receiver.change_status(created["id"], "received", seen["version"])
    with pytest.raises(HubError) as stale:
        receiver.change_status(created["id"], "accepted", seen["version"])
    assert stale.value.status in (409, 412)
    accepted = receiver.change_status(created["id"], "accepted", received["version"])
    assert accepted["status"] == "accepted"

    withdrawn = sender.withdraw_consent(created["id"], erase=True)
    assert withdrawn["consent"]["status"] != "active"
    assert "identity" not in receiver.get_referral(created["id"])["subject"]

    subscribed = sender.subscribe(f"{live_server}/partner/callbacks", ["referral.status_changed"])
    assert subscribed["secret"].startswith("whsec_")
    assert {method for method, _ in kits["calls"]} == {"GET", "POST"}


def test_list_referrals_follows_the_hubs_cursor(kits):
    sender, service = kits["sender"], kits["service"]
    sent = {sender.create_referral(referral_body(service.id))["id"] for _ in range(3)}
    listed = [r["id"] for r in sender.list_referrals(role="sent", limit=1)]
    assert sorted(listed) == sorted(sent)
    assert [path for _, path in kits["calls"]].count("/api/v1/referrals") >= 3 + 3


def test_wrong_credentials_are_a_hub_error_without_the_secret(live_server):
    kit = HubClient(live_server, "no-such-client", "not-the-secret", scope="directory:read")
    with pytest.raises(HubError) as info:
        kit.search_services()
    assert info.value.status == 401
    assert "not-the-secret" not in str(info.value)


def test_a_refusal_is_a_hub_error_carrying_the_problem(kits):
    with pytest.raises(HubError) as info:
        kits["sender"].create_referral({"service_id": "s1"})
    assert info.value.status == 422
    assert {"service_id", "consent"} <= {e["field"] for e in info.value.problem["errors"]}
    assert "Invalid input" in str(info.value)


def test_ids_are_quoted_into_the_path_and_cannot_climb_out_of_it(kits):
    """'r/../2' stays one path segment: the hub answers 404 for it, not for another route."""
    with pytest.raises(HubError) as info:
        kits["sender"].withdraw_consent("r/../2")
    assert info.value.status == 404
    assert kits["calls"][-1] == ("POST", "/api/v1/referrals/r%2F..%2F2/consent/withdraw")
