"""Two hubs, each in its own process with its own database, peered with the command line as
coordinators do it: directory sync, forwarded referrals and their status round trip over real
HTTP. On PostgreSQL each hub has a database of its own on the test server."""

import json
from types import SimpleNamespace

import pytest
import requests

from .conftest import _free_port
from .hubs import HOTLINE, MLOP_TAPANG, ROOT, SEED, Hub, private_database, wait_for
from .referral_fixtures import CASE_NOTE, FAMILY_NAME, GIVEN_NAME, HEALTH_NOTE, referral_body


@pytest.fixture(scope="module")
def hubs(database_url, tmp_path_factory):
    """Hub A (Siem Reap network: a caseworkers' organisation) and hub B (Phnom Penh network:
    the seed directory), A peered to B; each with an API client for its organisation."""
    tmp_path = tmp_path_factory.mktemp("federation")
    databases = [private_database(database_url, tmp_path, name) for name in ("a", "b")]
    a = Hub("a", databases[0][0], _free_port(), tmp_path)
    b = Hub("b", databases[1][0], _free_port(), tmp_path)
    b.cli("directory", "import", str(SEED))
    scopes = "referrals:read referrals:write directory:read callbacks:manage"
    b.client = b.cli("create-client", "--org", MLOP_TAPANG, "--scopes", scopes)
    sender = a.cli("create-org", "--name", "Siem Reap Children's Shelter", "--province", "17")
    a.organization_id = sender["id"]
    a.client = a.cli("create-client", "--org", sender["id"], "--scopes", scopes)
    a.start(), b.start()
    try:
        a.invitation = b.cli("peers", "invite", "--name", "Siem Reap network")
        a.peer = a.cli(
            "peers", "add", "--name", "Phnom Penh network", "--url", b.url,
            "--client-id", a.invitation["client_id"], "--client-secret-stdin",
            stdin=a.invitation["client_secret"] + "\n",
        )  # fmt: skip
        yield a, b
    finally:
        for hub in (a, b):
            hub.stop()
        for _, drop in databases:
            if drop:
                drop()


def _referral(http, hub, referral_id):
    response = http.get(f"{hub.url}/api/v1/referrals/{referral_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _received(http, hub):
    response = http.get(f"{hub.url}/api/v1/referrals", params={"role": "received"})
    assert response.status_code == 200, response.text
    return {item["service_id"]: item for item in response.json()["items"]}


def _move(http, hub, referral, status, **fields):
    response = http.post(
        f"{hub.url}/api/v1/referrals/{referral['id']}/status",
        json={"status": status, **fields},
        headers={"If-Match": f'"{referral["version"]}"'},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_peering_checks_the_peer_and_stores_nothing_when_a_check_fails(hubs):
    a, b = hubs
    invitation = a.invitation
    wrong_secret = a.cli(
        "peers", "add", "--name", "Wrong secret", "--url", b.url,
        "--client-id", invitation["client_id"], "--client-secret-stdin",
        stdin="not-the-secret\n", check=False,
    )  # fmt: skip
    assert wrong_secret.returncode == 1
    assert json.loads(wrong_secret.stderr)["errors"][0]["field"] == "client_secret"
    # A hub whose metadata names another issuer: B seen through another address.
    other_address = b.url.replace("127.0.0.1", "localhost")
    wrong_issuer = a.cli(
        "peers", "add", "--name", "Wrong issuer", "--url", other_address,
        "--client-id", invitation["client_id"], "--client-secret-stdin",
        stdin=invitation["client_secret"] + "\n", check=False,
    )  # fmt: skip
    assert wrong_issuer.returncode == 1
    problem = json.loads(wrong_issuer.stderr)
    assert problem["errors"][0]["field"] == "url" and "issuer" in problem["detail"]
    names = [peer["name"] for peer in a.cli("peers", "list")]
    assert names == ["Phnom Penh network"]


def test_a_full_sync_mirrors_the_peers_directory(hubs):
    a, b = hubs
    outcome = a.cli("peers", "sync", "Phnom Penh network")["Phnom Penh network"]
    published = requests.get(f"{b.url}/hsds/services", params={"per_page": 1}, timeout=10).json()
    assert outcome["ok"] is True
    assert outcome["created"] + outcome["unchanged"] >= published["total_items"] > 0
    again = a.cli("peers", "sync", "Phnom Penh network")["Phnom Penh network"]
    assert again["created"] == again["updated"] == again["removed"] == 0
    http = a.api(a.client)
    found = http.get(f"{a.url}/api/v1/services/{HOTLINE}")
    assert found.status_code == 200, found.text
    assert found.json()["name"] == "ChildSafe Hotline"


def test_a_referral_to_a_peer_service_is_forwarded_and_answered_there(hubs):
    a, b = hubs
    a.cli("peers", "sync", "Phnom Penh network")
    sender, receiver = a.api(a.client), b.api(b.client)
    body = referral_body(HOTLINE)
    body["subject"]["case_history"] = {"reason": CASE_NOTE}  # not covered by the consent
    created = sender.post(f"{a.url}/api/v1/referrals", json=body)
    assert created.status_code == 201, created.text
    sent = created.json()
    assert sent["status"] == "sent" and sent["forwarding"] == "pending"

    there = wait_for(lambda: _received(receiver, b).get(HOTLINE), seconds=10)
    full = _referral(receiver, b, there["id"])
    assert full["referrer"]["hub"] == "Siem Reap network"
    assert full["referrer"]["organization"] == "Siem Reap Children's Shelter"
    assert full["subject"]["identity"]["given_name"] == GIVEN_NAME
    assert full["subject"]["health"]["notes"] == HEALTH_NOTE
    assert "case_history" not in full["subject"] and full["redacted"] == []
    assert FAMILY_NAME in json.dumps(full) and CASE_NOTE not in json.dumps(full)

    full = _move(receiver, b, full, "received")
    _move(receiver, b, full, "accepted")
    mirrored = wait_for(
        lambda: (r := _referral(sender, a, sent["id"]))["status"] == "accepted" and r, seconds=5
    )
    assert mirrored["forwarding"] == "forwarded"
    steps = sender.get(f"{a.url}/api/v1/referrals/{sent['id']}/events").json()["items"]
    assert [s["to_status"] for s in steps] == ["sent", "received", "accepted"]
    audited = (  # sealed now, not within the seal delay
        "from referral_hub.audit.models import AuditEntry as E\n"
        "from referral_hub.audit.service import seal_all\nseal_all()\n"
    ) + (
        "print(json.dumps(sorted({(e.action, e.actor.split(':')[0]) for e in db.session.scalars("
        "db.select(E).where(E.resource_id == %r))})))"
    )
    assert {("referral.forwarded.create", "system"), ("federation.callback_received", "peer")} <= {
        tuple(entry) for entry in a.python(audited % sent["id"])
    }
    assert ("referral.read", "client") in {tuple(entry) for entry in b.python(audited % full["id"])}
    (at_a,), (at_b,) = a.cli("peers", "list"), b.cli("peers", "list")
    assert at_a["forwarded"] >= 1 and at_a["received"] == 0 and at_a["added"]
    assert at_b["received"] >= 1 and at_b["forwarded"] == 0 and at_b["invited"]


def test_a_peer_token_reaches_only_what_the_peer_forwarded(hubs):
    a, b = hubs
    receiver = b.api(b.client)
    mine = receiver.post(
        f"{b.url}/api/v1/referrals",
        json=referral_body(HOTLINE),
    )
    assert mine.status_code == 201, mine.text
    peer_client = {
        "client_id": a.invitation["client_id"],
        "client_secret": a.invitation["client_secret"],
    }
    as_peer = b.api(peer_client, "referrals:read referrals:write federation")
    assert as_peer.get(f"{b.url}/api/v1/referrals/{mine.json()['id']}").status_code == 404
    listed = as_peer.get(f"{b.url}/api/v1/referrals").json()["items"]
    assert mine.json()["id"] not in {item["id"] for item in listed}
    changed = as_peer.post(
        f"{b.url}/api/v1/referrals/{mine.json()['id']}/status",
        json={"status": "received"},
        headers={"If-Match": '"1"'},
    )
    assert changed.status_code == 404


def test_only_a_peer_names_a_referrer(hubs):
    _, b = hubs
    body = referral_body(HOTLINE)
    body["referrer"] = {"caseworker": "Somebody", "organization": "Elsewhere"}
    refused = b.api(b.client).post(f"{b.url}/api/v1/referrals", json=body)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "referrer"


def _send(a, body=None):
    created = a.api(a.client).post(f"{a.url}/api/v1/referrals", json=body or referral_body(HOTLINE))
    assert created.status_code == 201, created.text
    return created.json()


def _at_b(a, b, sent):
    """B's copy of a referral A sent, once A knows B's id for it."""
    sender = a.api(a.client)
    forwarded = wait_for(
        lambda: (r := _referral(sender, a, sent["id"]))["forwarding"] == "forwarded" and r,
        seconds=10,
    )
    remote_id = a.python(
        "from referral_hub.referrals.models import Referral\n"
        f"print(json.dumps(db.session.get(Referral, {sent['id']!r}).remote_referral_id))"
    )
    return forwarded, _referral(b.api(b.client), b, remote_id)


def test_withdrawal_and_erasure_reach_the_peer_at_once(hubs):
    a, b = hubs
    a.cli("peers", "sync", "Phnom Penh network")
    sender, receiver = a.api(a.client), b.api(b.client)
    first, there = _at_b(a, b, _send(a))
    seen = (  # B's steps A has read back: B's "created" changes nothing at A
        "from referral_hub.referrals.models import Referral\n"
        f"print(json.dumps(db.session.get(Referral, {first['id']!r}).remote_events_seen))"
    )
    wait_for(lambda: a.python(seen) >= 1, seconds=10)
    assert _referral(sender, a, first["id"])["version"] == first["version"]
    withdrawn = _move(sender, a, first, "withdrawn")
    assert withdrawn["forwarded_steps"][-1]["action"] == "withdraw"
    wait_for(lambda: _referral(receiver, b, there["id"])["status"] == "withdrawn", seconds=10)
    confirmed = wait_for(
        lambda: (
            (r := _referral(sender, a, first["id"]))["forwarded_steps"][-1]["confirmed_at"] and r
        )
    )
    assert [step["action"] for step in confirmed["forwarded_steps"]] == ["create", "withdraw"]

    second, there = _at_b(a, b, _send(a))
    assert there["subject"]["identity"]["given_name"] == GIVEN_NAME
    erased = sender.post(
        f"{a.url}/api/v1/referrals/{second['id']}/consent/withdraw", json={"erase": True}
    )
    assert erased.status_code == 200, erased.text
    gone = wait_for(lambda: (r := _referral(receiver, b, there["id"]))["erased"] and r, seconds=10)
    assert "identity" not in gone["subject"] and GIVEN_NAME not in json.dumps(gone)
    assert gone["consent"]["status"] == "withdrawn"
    b_stored = b.python(
        "from referral_hub.referrals.models import Referral\n"
        f"r = db.session.get(Referral, {there['id']!r})\n"
        "print(json.dumps([r.identity_data, r.contact_data, r.health_data]))"
    )
    assert b_stored == [None, None, None]


def test_a_decline_with_a_suggestion_comes_back_with_its_reason(hubs):
    a, b = hubs
    a.cli("peers", "sync", "Phnom Penh network")
    sender, receiver = a.api(a.client), b.api(b.client)
    sent, there = _at_b(a, b, _send(a))
    there = _move(receiver, b, there, "received")
    suggestion = "7baa451d-962b-5622-9cde-fb753ae0720c"
    _move(receiver, b, there, "declined", reason="no_capacity", suggested_service_id=suggestion)
    back = wait_for(
        lambda: (r := _referral(sender, a, sent["id"]))["status"] == "declined" and r, seconds=5
    )
    assert back["decline_reason"] == "no_capacity"
    assert back["suggested_service_id"] == suggestion


def _signed_replay(a, b, timestamp_offset=0):
    """B's last callback to A, signed again by B with its secret, as an eavesdropper would
    replay it (a fresh timestamp needs the secret; the test has it as B's operator)."""
    return b.python(
        "import time\n"
        "from referral_hub.callbacks.models import Delivery\n"
        "from referral_hub.callbacks.secrets_store import secrets_in_force\n"
        "from referral_hub.callbacks.signing import signature_header\n"
        "d = db.session.scalars(db.select(Delivery).where(Delivery.status == 'delivered')"
        ".order_by(Delivery.delivered_at.desc())).first()\n"
        f"stamp = str(int(time.time()) + {timestamp_offset})\n"
        "body = json.dumps(d.payload).encode()\n"
        "sig = signature_header(secrets_in_force(d.subscription), d.id, stamp, body)\n"
        "print(json.dumps({'url': d.subscription.url, 'id': d.id, 'stamp': stamp, "
        "'sig': sig, 'body': body.decode()}))"
    )


def _post_callback(message, **changes):
    message = {**message, **changes}
    return requests.post(
        message["url"],
        data=message["body"],
        headers={
            "content-type": "application/json",
            "webhook-id": message["id"],
            "webhook-timestamp": message["stamp"],
            "webhook-signature": message["sig"],
        },
        timeout=10,
    )


def test_a_replayed_or_forged_callback_is_refused(hubs):
    a, b = hubs
    a.cli("peers", "sync", "Phnom Penh network")
    sent, there = _at_b(a, b, _send(a))
    _move(b.api(b.client), b, there, "received")
    wait_for(lambda: _referral(a.api(a.client), a, sent["id"])["status"] == "received")
    replay = _signed_replay(a, b)
    assert _post_callback(replay).status_code == 409
    assert _post_callback(replay, id="msg_never_seen").status_code == 401  # signed for another id
    assert _post_callback(replay, sig="v1,AAAA").status_code == 401
    stale = _signed_replay(a, b, timestamp_offset=-600)
    assert _post_callback(stale, id="msg_stale").status_code == 401
    elsewhere = replay["url"].rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    assert _post_callback(replay, url=elsewhere).status_code == 404


def test_the_sync_is_incremental_and_carries_removals(hubs):
    a, b = hubs
    a.cli("peers", "sync", "Phnom Penh network")
    document = json.loads(SEED.read_text())
    organization = next(o for o in document["organizations"] if o["id"] == MLOP_TAPANG)
    document["organizations"] = [organization]
    retired, changed = organization["services"][1], organization["services"][2]
    retired["status"] = "inactive"
    changed["description"] = "Outreach, now in Kampot as well."
    path = b.log.parent / "changed.json"
    path.write_text(json.dumps(document))
    b.cli("directory", "import", str(path))
    outcome = a.cli("peers", "sync", "Phnom Penh network")["Phnom Penh network"]
    assert (outcome["updated"], outcome["removed"]) == (1, 1)
    # What came again (the last five minutes are always read again) is recognised unchanged;
    # bench/federation_sync.py counts the requests of syncs with little or nothing new.
    assert outcome["created"] == 0
    http = a.api(a.client)
    found = http.get(f"{a.url}/api/v1/services", params={"hub": "all", "limit": 100}).json()
    ids = {hit["id"] for hit in found["items"]}
    assert retired["id"] not in ids and changed["id"] in ids
    hit = next(h for h in found["items"] if h["id"] == changed["id"])
    assert hit["description"] == "Outreach, now in Kampot as well."
    assert hit["hub"]["name"] == "Phnom Penh network"
    local = http.get(f"{a.url}/api/v1/services", params={"hub": "local"}).json()
    assert changed["id"] not in {h["id"] for h in local["items"]}


def test_nothing_is_lost_or_doubled_when_the_peer_is_down_or_either_hub_killed(hubs):
    a, b = hubs
    a.cli("peers", "sync", "Phnom Penh network")
    b.stop()
    waiting = _send(a, referral_body(HOTLINE, subject__sex="other"))
    assert waiting["forwarding"] == "pending"
    b.start()
    wait_for(
        lambda: _referral(a.api(a.client), a, waiting["id"])["forwarding"] == "forwarded",
        seconds=20,
    )
    burst = [_send(a, referral_body(HOTLINE, subject__sex="other")) for _ in range(12)]
    a.stop(kill=True)  # kill -9, while forwards are on the way
    a.start()
    sender = a.api(a.client)
    wait_for(
        lambda: all(_referral(sender, a, r["id"])["forwarding"] == "forwarded" for r in burst),
        seconds=30,
    )
    burst = [_send(a, referral_body(HOTLINE, subject__sex="other")) for _ in range(12)]
    b.stop(kill=True)  # and the receiving hub killed -9 while they arrive
    b.start()
    wait_for(
        lambda: all(_referral(sender, a, r["id"])["forwarding"] == "forwarded" for r in burst),
        seconds=30,
    )
    items = b.api(b.client).get(
        f"{b.url}/api/v1/referrals", params={"role": "received", "limit": 100}
    )
    others = [r for r in items.json()["items"] if r["subject"]["sex"] == "other"]
    assert len(others) == 25  # each once: the Idempotency-Key absorbed every repeat


def test_in_khmer_a_caseworker_refers_across_networks_and_sees_the_answer(app, hubs):
    """The sender at A and the receiver at B, each in their own browser, in Khmer."""
    from flask_babel import force_locale
    from flask_babel import gettext as _
    from playwright import sync_api

    from .factories import PASSWORD
    from .test_browser import CHROMIUM, PHONE_SCREEN, Person

    a, b = hubs
    a.cli("peers", "sync", "Phnom Penh network")
    sophea = a.cli(
        "create-user", "--org", a.organization_id, "--email", "sophea@siemreap.example.org",
        "--role", "caseworker", "--name", "Sophea", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    dara = b.cli(
        "create-user", "--org", MLOP_TAPANG, "--email", "dara@mloptapang.example.org",
        "--role", "caseworker", "--name", "Dara", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    shots = ROOT / "tests" / "artifacts" / "federation-km"
    for old in shots.glob("*.png"):
        old.unlink()

    def khmer(text, **values):
        with app.test_request_context(), force_locale("km"):
            return _(text, **values)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        sender = Person(browser, a.url, SimpleNamespace(**sophea), "km", shots)
        sender.sign_in()
        sender.page.goto(f"{a.url}/find?hub=all&q=hotline")
        card = sender.page.locator("ul.cards > li", has_text="ChildSafe Hotline").first
        assert khmer("Network: %(hub)s", hub="Phnom Penh network") in card.inner_text()
        sender.shot("a-finds-a-phnom-penh-service")
        card.locator(f'a[href="/services/{HOTLINE}/refer"]').click()
        # Consent first, then the facts and the name the guardian agreed to share.
        sender.page.select_option('select[name="consent.given_by"]', "guardian")
        sender.page.select_option('select[name="consent.method"]', "thumbprint")
        sender.page.locator('input[name="consent.categories"][value="identity"]').check()
        sender.page.locator('button[name="go"][value="details"]').click()
        sender.page.locator('input[name="urgency"][value="high"]').check()
        sender.page.select_option('select[name="subject.sex"]', "female")
        sender.page.fill('input[name="subject.age"]', "14")
        sender.page.select_option('select[name="subject.province"]', "17")
        sender.page.fill('input[name="subject.identity.given_name"]', "Srey Pov")
        sender.page.locator('button[name="go"][value="send"]').click()
        sender.page.wait_for_url(lambda url: "/referrals/" in url)
        sender.shot("a-referral-sent")
        referral_page = sender.page.url

        receiver = Person(browser, b.url, SimpleNamespace(**dara), "km", shots)
        receiver.sign_in()

        origin = khmer(
            "From %(hub)s, %(organization)s",
            hub="Siem Reap network",
            organization="Siem Reap Children's Shelter",
        )
        forwarded = receiver.page.locator("#awaiting-list li", has_text=origin).filter(
            has_text=khmer("age %(age)s", age=14)
        )

        def waiting():
            receiver.page.goto(f"{b.url}/")
            return forwarded.count()

        wait_for(waiting, seconds=15)
        receiver.shot("b-home-waiting")
        forwarded.first.locator("h3 a").click()
        assert origin in receiver.page.inner_text("#referrer")
        assert "Srey Pov" in receiver.page.inner_text("#personal")
        receiver.page.locator('form:has(input[name="status"][value="received"]) button').click()
        receiver.page.locator('form:has(input[name="status"][value="accepted"]) button').click()
        receiver.shot("b-accepted")

        def accepted_at_a():
            sender.page.goto(referral_page)
            return sender.page.inner_text("#status") == khmer("Accepted")

        wait_for(accepted_at_a, seconds=10)
        sender.shot("a-sees-accepted")
        assert PHONE_SCREEN["width"] >= sender.page.evaluate("document.documentElement.scrollWidth")
        browser.close()


def test_a_removed_peer_leaves_its_referrals_readable_as_a_former_peers(hubs):
    a, b = hubs
    a.cli("peers", "sync", "Phnom Penh network")
    sent, _ = _at_b(a, b, _send(a))
    assert a.cli("peers", "remove", "Phnom Penh network")["status"] == "removed"
    sender = a.api(a.client)
    kept = _referral(sender, a, sent["id"])
    assert kept["peer"] == {"id": a.peer["id"], "name": "Phnom Penh network", "former": True}
    found = sender.get(f"{a.url}/api/v1/services", params={"hub": "all", "limit": 100}).json()
    assert HOTLINE not in {hit["id"] for hit in found["items"]}
    refused = sender.post(f"{a.url}/api/v1/referrals", json=referral_body(HOTLINE))
    assert refused.status_code == 409
    assert a.cli("peers", "list")[0]["status"] == "removed"
