"""Status callbacks over real HTTP to the partner kit's receiver on 127.0.0.1."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from referral_hub_kit import CallbackReceiver, WebhookVerificationError, sign, verify

from referral_hub import clock, create_app
from referral_hub.callbacks import targets
from referral_hub.callbacks.dispatcher import dispatch_due
from referral_hub.callbacks.models import Delivery, Subscription
from referral_hub.config import ConfigError
from referral_hub.extensions import db
from referral_hub.referrals import service as referral_service
from referral_hub.referrals.models import ReferralEvent

from .conftest import hub_config
from .factories import HTTP, bearer, make_client, make_org
from .referral_fixtures import (
    PERSONAL_VALUES,
    move,
    network,
    referral_body,
    send,
    user_party,
)

FAST = [0, 0.2, 0.2, 0.5, 1]  # the retry schedule of these tests, in seconds
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def net(app, client):
    return network(app, client)


@pytest.fixture
def settings(app):
    """Change the hub's configuration for one test; everything is restored afterwards."""
    saved = {}

    def put(**values):
        for key in values:
            saved.setdefault(key, app.config[key])
        app.config.update(values)

    yield put
    app.config.update(saved)


@pytest.fixture
def travel():
    """Move the hub's clock forward by some seconds; it runs freely again after the test."""

    def forward(seconds):
        clock.freeze(clock.now() + timedelta(seconds=seconds))

    yield forward
    clock.freeze(None)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drain():
    """Run the dispatcher until nothing is due, as its thread does after a wake-up."""
    while dispatch_due():
        pass


def pump(done, timeout=8):
    """Dispatch what is due, in real time, until done() or the timeout fails the test."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "callbacks still undelivered"
        if not dispatch_due():
            time.sleep(0.05)


def stored(**where):
    """Deliveries as the database has them now, in event order."""
    db.session.commit()
    query = db.select(Delivery).filter_by(**where).order_by(Delivery.event_id, Delivery.id)
    return db.session.scalars(query).all()


def all_delivered(subscription_id):
    return lambda: all(d.status == "delivered" for d in stored(subscription_id=subscription_id))


def outbox(subscription, count):
    """`count` due deliveries of as many referrals, straight into the outbox."""
    for n in range(count):
        db.session.add(
            Delivery(
                id=f"msg_{uuid.uuid4().hex}",
                subscription_id=subscription["id"],
                referral_id=str(uuid.uuid4()),
                event_id=n + 1,
                event_type="referral.created",
                payload={"type": "referral.created", "data": {"n": n}},
                next_attempt_at=clock.now(),
            )
        )
    db.session.commit()


def subscribe(client, party, url, **extra):
    response = client.post(
        "/api/v1/subscriptions", json={"url": url, **extra}, headers=party.headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def deliveries(client, party, subscription, **query):
    response = client.get(
        f"/api/v1/subscriptions/{subscription['id']}/deliveries",
        query_string=query,
        headers=party.headers,
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def post(client, party, path):
    return client.post(f"/api/v1/subscriptions{path}", headers=party.headers)


def new_referral(client, net):
    response = send(client, net["sender"], referral_body(net["service"].id))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def moved(client, party, referral, status, **fields):
    response = move(client, party, referral, status, **fields)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


class RawReceiver:
    """A bare endpoint for what the kit's receiver does not do: raw bodies, own answers, delays.

    Records every request as (headers, body) and answers with answer() -> (status, headers, body).
    """

    def __init__(self, answer=lambda: (204, {}, b""), delay=0.0):
        self.answer, self.delay, self.requests = answer, delay, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.headers, body))
                time.sleep(receiver.delay)
                status, headers, payload = receiver.answer()
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/callbacks"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()


class ForgetfulReceiver(CallbackReceiver):
    """Stores each callback but its first answer is lost (503): the hub sends the same id again."""

    def _handle(self, path, headers, body):
        status, reason = super()._handle(path, headers, body)
        return (503, "answer_lost") if status == 204 else (status, reason)


class SlowReceiver(CallbackReceiver):
    """Stores a callback, then holds the answer until released: a dispatcher can die meanwhile."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.entered, self.released = threading.Event(), threading.Event()

    def _handle(self, path, headers, body):
        answer = super()._handle(path, headers, body)
        self.entered.set()
        self.released.wait(10)
        return answer


# Signatures


def test_the_receiver_gets_signed_callbacks_without_personal_data(client, net):
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    with CallbackReceiver(subscription["secret"], port=port) as receiver:
        referral = send(client, net["sender"], referral_body(net["service"].id)).get_json()
        move(client, net["receiver"], referral, "received")
        drain()
        assert receiver.wait_for(2, timeout=10)
        assert [e["payload"]["type"] for e in receiver.events] == [
            "referral.created",
            "referral.status_changed",
        ]
        assert receiver.events[1]["payload"]["data"]["status"] == "received"
        assert all(value not in str(receiver.events) for value in PERSONAL_VALUES)


def test_signature_round_trip_tampering_and_rotation(client, net, travel):
    with RawReceiver() as raw:
        subscription = subscribe(client, net["receiver"], raw.url)
        old = subscription["secret"]
        new_referral(client, net)
        drain()
        ((headers, body),) = raw.requests
        msg_id, stamp = headers["webhook-id"], int(headers["webhook-timestamp"])
        assert verify(old, headers, body)["type"] == "referral.created"
        assert headers["webhook-signature"] == sign(old, msg_id, stamp, body)
        assert msg_id == stored()[0].id

        def refused(secret=old, body=body, **changed):
            tampered = {k: headers[k] for k in ("webhook-id", "webhook-timestamp")}
            tampered["webhook-signature"] = headers["webhook-signature"]
            tampered.update({k.replace("_", "-"): v for k, v in changed.items()})
            with pytest.raises(WebhookVerificationError) as caught:
                verify(secret, tampered, body)
            return caught.value.reason

        assert refused(body=body.replace(b"referral.created", b"referral.createD")) == (
            "bad_signature"
        )
        assert refused(body=body + b" ") == "bad_signature"
        assert refused(webhook_id=msg_id[:-1] + ("0" if msg_id[-1] != "0" else "1")) == (
            "bad_signature"
        )
        assert refused(webhook_timestamp=str(stamp + 1)) == "bad_signature"
        signature = headers["webhook-signature"]
        flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
        assert refused(webhook_signature=flipped) == "bad_signature"
        other = subscribe(client, net["sender"], raw.url)["secret"]
        assert refused(secret=other) == "bad_signature"

        rotated = post(client, net["receiver"], f"/{subscription['id']}/rotate-secret")
        assert rotated.status_code == 200
        new = rotated.get_json()["secret"]
        assert new != old and rotated.get_json()["secret_rotating_until"]
        new_referral(client, net)
        drain()
        headers, body = raw.requests[-1]
        assert len(headers["webhook-signature"].split()) == 2
        for secret in (old, new, [old, new]):
            assert verify(secret, headers, body)["type"] == "referral.created"
        with pytest.raises(WebhookVerificationError):
            verify(other, headers, body)

        travel(25 * 3600)  # the overlap is over: only the new secret signs
        new_referral(client, net)
        drain()
        headers, body = raw.requests[-1]
        assert len(headers["webhook-signature"].split()) == 1
        assert verify(new, headers, body)
        with pytest.raises(WebhookVerificationError):
            verify(old, headers, body)


# At least once, in order


def test_receiver_down_then_back_gets_every_event_duplicates_by_webhook_id(client, net, settings):
    settings(CALLBACK_RETRY_SCHEDULE=FAST)
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    referrals = [new_referral(client, net) for _ in range(3)]
    moved(client, net["receiver"], referrals[0], "received")
    dispatch_due()  # one pass each: the attempts are counted exactly
    time.sleep(0.3)
    dispatch_due()
    assert [(d.status, d.attempts) for d in stored()] == [("pending", 2)] * 3 + [("pending", 0)]

    with ForgetfulReceiver(subscription["secret"], port=port) as receiver:
        pump(all_delivered(subscription["id"]))
    ids = [d.id for d in stored()]
    assert sorted(e["webhook_id"] for e in receiver.events) == sorted(ids)
    assert receiver.duplicates == len(ids) == 4
    data = [e["payload"]["data"] for e in receiver.events]
    assert [d["status"] for d in data if d["referral_id"] == referrals[0]["id"]] == [
        "sent",
        "received",
    ]


DISPATCHER = """
import json, sys, time
from referral_hub import create_app
from referral_hub.callbacks import targets
from referral_hub.callbacks.dispatcher import dispatch_due
app = create_app(json.loads(sys.argv[1]))
with app.app_context():
    while True:
        if not dispatch_due():
            time.sleep(0.05)
"""


def test_a_dispatcher_killed_mid_delivery_loses_nothing(
    app, client, net, settings, database_url, live_port, tmp_path
):
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    for _ in range(3):
        new_referral(client, net)
    ids = [d.id for d in stored()]
    config = hub_config(database_url, live_port, CALLBACK_LEASE_SECONDS=4, CALLBACK_TOTAL_TIMEOUT=1)
    env = {**os.environ, "HUB_INSTANCE_PATH": app.instance_path}
    with (
        SlowReceiver(subscription["secret"], port=port) as receiver,
        open(tmp_path / "dispatcher.log", "w") as output,
    ):
        process = subprocess.Popen(
            [sys.executable, "-c", DISPATCHER, json.dumps(config)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            assert receiver.entered.wait(30), (tmp_path / "dispatcher.log").read_text()
            process.kill()  # SIGKILL while the receiver has not answered yet
            process.wait(10)
            assert all(d.status == "pending" and d.leased_until for d in stored())
            receiver.released.set()
            pump(all_delivered(subscription["id"]))
        finally:
            receiver.released.set()
            process.kill()
            process.wait(10)
    assert sorted(e["webhook_id"] for e in receiver.events) == sorted(ids)
    assert receiver.duplicates == 1  # the callback that was answered to the dead dispatcher


def test_two_dispatchers_never_deliver_the_same_attempt_twice(app, client, net):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no FOR UPDATE SKIP LOCKED; several dispatchers need PostgreSQL")
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    outbox(subscription, 60)
    start, problems = threading.Barrier(2), []

    def dispatcher():
        with app.app_context():
            try:
                start.wait()
                while dispatch_due(limit=3):
                    pass
            except Exception as exc:  # reported by the test, not lost in the thread
                problems.append(exc)
            finally:
                db.session.remove()

    with CallbackReceiver(subscription["secret"], port=port) as receiver:
        threads = [threading.Thread(target=dispatcher) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not problems
    assert receiver.requests == 60 and receiver.duplicates == 0
    assert len({e["webhook_id"] for e in receiver.events}) == 60
    assert {d.status for d in stored()} == {"delivered"}
    assert all(d.attempts == 1 and len(d.attempt_log) == 1 for d in stored())


def test_order_per_referral_is_kept_under_retries(client, net, settings, travel):
    settings(CALLBACK_RETRY_SCHEDULE=[0, 0.2, 3])
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    first = new_referral(client, net)
    first = moved(client, net["receiver"], first, "received")
    moved(client, net["receiver"], first, "accepted")
    with CallbackReceiver(subscription["secret"], port=port, fail_with=[500, 500]) as receiver:
        dispatch_due()
        time.sleep(0.3)
        dispatch_due()
        assert [d.attempts for d in stored()] == [2, 0, 0]  # the later events wait
        second = new_referral(client, net)
        drain()  # another referral is not held up
        travel(3.5)
        drain()
        assert receiver.wait_for(4, timeout=1)
    order = [
        (e["payload"]["data"]["referral_id"], e["payload"]["data"]["status"])
        for e in receiver.events
    ]
    assert order == [
        (second["id"], "sent"),
        (first["id"], "sent"),
        (first["id"], "received"),
        (first["id"], "accepted"),
    ]
    assert [status for _, status in receiver.rejected] == [500, 500]


# Partner OAuth


def test_callbacks_carry_the_partners_oauth_token_and_renew_a_refused_one(client, net, live_server):
    partner_org = make_org()
    client_id, client_secret = make_client(partner_org, ["directory:read"])
    http, seen = HTTP(), []

    def introspected(token):
        seen.append(token)
        answer = http.post(
            f"{live_server}/oauth/introspect",
            data={"token": token},
            auth=(client_id, client_secret),
        ).json()
        return answer.get("active") is True and answer.get("client_id") == client_id

    port = free_port()
    oauth = {
        "token_url": f"{live_server}/oauth/token",
        "client_id": client_id,
        "client_secret": client_secret,
        "scope": "directory:read",
    }
    subscription = subscribe(
        client, net["receiver"], f"http://127.0.0.1:{port}/callbacks", oauth=oauth
    )
    assert "client_secret" not in json.dumps(subscription["oauth"])
    with CallbackReceiver(subscription["secret"], port=port, token_validator=introspected) as rx:
        new_referral(client, net)
        drain()
        assert rx.wait_for(1, timeout=1) and len(seen) == 1
        revoked = http.post(
            f"{live_server}/oauth/revoke", data={"token": seen[0]}, auth=(client_id, client_secret)
        )
        assert revoked.status_code == 200
        new_referral(client, net)
        drain()
        assert rx.wait_for(2, timeout=1)
    assert rx.rejected == [("invalid_token", 401)]
    assert seen[1] == seen[0] and seen[2] != seen[0]
    assert [d.status for d in stored()] == ["delivered", "delivered"]
    assert [d.attempts for d in stored()] == [1, 1]


def test_a_partner_token_endpoint_that_refuses_is_recorded(client, net, live_server):
    partner_org = make_org()
    client_id, _ = make_client(partner_org, ["directory:read"])
    oauth = {"token_url": f"{live_server}/oauth/token", "client_id": client_id}
    with CallbackReceiver("whsec_" + "A" * 44) as receiver:
        subscription = subscribe(
            client, net["receiver"], receiver.url, oauth={**oauth, "client_secret": "wrong"}
        )
        new_referral(client, net)
        drain()
        assert receiver.requests == 0
    (item,) = deliveries(client, net["receiver"], subscription)
    assert item["status"] == "pending"
    assert item["attempt_history"][0]["error"] == "partner token: token endpoint answered 401"


# Where callbacks may go


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8085/callbacks",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://localhost:8085/callbacks",
        "https://metadata.google.internal/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ],
)
def test_private_targets_are_refused_at_registration(client, partner, settings, url):
    settings(CALLBACK_ALLOW_PRIVATE_TARGETS=False)
    response = client.post(
        "/api/v1/subscriptions", json={"url": url}, headers=bearer(partner["token"])
    )
    assert response.status_code == 422, response.get_json()
    assert [e["field"] for e in response.get_json()["errors"]] == ["url"]


def test_target_rules_at_registration_for_http_and_token_urls(client, partner, settings):
    settings(CALLBACK_ALLOW_PRIVATE_TARGETS=False, CALLBACK_ALLOW_HTTP=False)
    headers = bearer(partner["token"])

    def register(url, **extra):
        return client.post("/api/v1/subscriptions", json={"url": url, **extra}, headers=headers)

    response = register("http://93.184.215.14/callbacks")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "url"
    assert register("https://93.184.215.14/callbacks").status_code == 201  # public https
    oauth = {"token_url": "https://127.0.0.1/oauth/token", "client_id": "c", "client_secret": "s"}
    response = register("https://93.184.215.14/callbacks", oauth=oauth)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "oauth.token_url"


def test_targets_are_checked_again_at_delivery(client, net, settings, travel):
    with CallbackReceiver("whsec_" + "A" * 44) as receiver:
        subscription = subscribe(client, net["receiver"], receiver.url)
        new_referral(client, net)
        settings(CALLBACK_ALLOW_PRIVATE_TARGETS=False)
        drain()
        settings(CALLBACK_ALLOW_PRIVATE_TARGETS=True, CALLBACK_ALLOW_HTTP=False)
        travel(10)
        drain()
        assert receiver.requests == 0
    (item,) = deliveries(client, net["receiver"], subscription)
    assert item["status"] == "pending" and item["attempts"] == 2
    errors = [attempt["error"] for attempt in item["attempt_history"]]
    assert all(error.startswith("refused target") for error in errors), errors
    assert [attempt["status_code"] for attempt in item["attempt_history"]] == [None, None]


def test_a_dns_answer_that_changes_after_the_check_is_refused_at_connection(
    client, net, settings, monkeypatch
):
    with CallbackReceiver("whsec_" + "A" * 44) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        subscription = subscribe(client, net["receiver"], f"http://localhost:{port}/callbacks")
        new_referral(client, net)
        settings(CALLBACK_ALLOW_PRIVATE_TARGETS=False)

        def public(host, port, *args, **kwargs):  # what the check is told; not where it goes
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

        lookup = SimpleNamespace(getaddrinfo=public, IPPROTO_TCP=socket.IPPROTO_TCP)
        monkeypatch.setattr(targets, "socket", lookup)  # the connection still finds 127.0.0.1
        assert targets.resolve(f"http://localhost:{port}/") == ["93.184.215.14"]
        drain()
        assert receiver.requests == 0
    (item,) = deliveries(client, net["receiver"], subscription)
    assert item["attempt_history"][0]["error"].startswith("refused target")


def test_a_redirect_is_not_followed_and_counts_as_a_failure(client, net):
    with (
        CallbackReceiver("whsec_" + "A" * 44) as elsewhere,
        RawReceiver(lambda: (302, {"Location": elsewhere.url}, b"")) as redirecting,
    ):
        subscription = subscribe(client, net["receiver"], redirecting.url)
        referral = new_referral(client, net)
        drain()
        assert len(redirecting.requests) == 1 and elsewhere.requests == 0
    port = free_port()
    other = subscribe(client, net["sender"], f"http://127.0.0.1:{port}/callbacks")
    with CallbackReceiver(other["secret"], port=port, fail_with=[302]) as receiver:
        moved(client, net["receiver"], referral, "received")
        drain()
        assert receiver.requests == 1 and receiver.events == []
    for party, which in ((net["receiver"], subscription), (net["sender"], other)):
        item = deliveries(client, party, which)[0]
        assert item["status"] == "pending"
        (attempt,) = item["attempt_history"]
        assert attempt["status_code"] == 302 and attempt["error"] == "redirect not followed"


def test_a_partner_too_slow_to_answer_times_out(client, net, settings):
    settings(CALLBACK_TOTAL_TIMEOUT=0.3)
    with RawReceiver(delay=2) as slow:
        subscription = subscribe(client, net["receiver"], slow.url)
        new_referral(client, net)
        drain()
    (item,) = deliveries(client, net["receiver"], subscription)
    (attempt,) = item["attempt_history"]
    assert attempt["error"] == "timeout" and attempt["status_code"] is None
    assert 250 <= attempt["duration_ms"] < 1500


# Failures


def test_410_disables_the_subscription_and_parks_its_deliveries(client, net):
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    new_referral(client, net)
    new_referral(client, net)
    with CallbackReceiver(subscription["secret"], port=port, fail_with=[410]) as receiver:
        drain()
        assert receiver.requests == 1
        url = f"/api/v1/subscriptions/{subscription['id']}"
        found = client.get(url, headers=net["receiver"].headers).get_json()
        assert found["status"] == "disabled" and "410" in found["disabled_reason"]
        assert [d["status"] for d in deliveries(client, net["receiver"], subscription)] == [
            "failed",
            "failed",
        ]
        new_referral(client, net)  # a disabled subscription gets no new deliveries
        assert len(stored()) == 2
        resumed = post(client, net["receiver"], f"/{subscription['id']}/resume").get_json()
        assert resumed["status"] == "active" and resumed["disabled_reason"] is None
        assert post(client, net["receiver"], f"/{subscription['id']}/replay").get_json() == {
            "replayed": 2
        }
        drain()
        assert receiver.wait_for(2, timeout=1)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_delays_the_next_attempt(client, net, settings, travel, status):
    settings(CALLBACK_RETRY_SCHEDULE=[0, 0.2, 0.2])
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    new_referral(client, net)
    with CallbackReceiver(
        subscription["secret"], port=port, fail_with=[status], retry_after=3
    ) as receiver:
        travel(0)  # the attempt is recorded at the moment its answer came
        drain()
        (delivery,) = stored()
        assert delivery.next_attempt_at - delivery.attempt_log[0].at >= timedelta(seconds=3)
        travel(2)
        assert dispatch_due() == 0 and receiver.requests == 1
        travel(1.5)
        drain()
        assert receiver.wait_for(1, timeout=1)
    assert [d.status for d in stored()] == ["delivered"]


def test_parked_after_the_last_retry_then_shown_and_replayed_with_the_same_id(
    client, net, settings, travel
):
    settings(CALLBACK_RETRY_SCHEDULE=[0, 1, 1])
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    new_referral(client, net)
    new_referral(client, net)
    drain()  # nobody listens yet: the connection is refused
    with CallbackReceiver(subscription["secret"], port=port, fail_with=[500] * 4) as receiver:
        for _ in range(3):
            travel(1.2)
            drain()
        items = deliveries(client, net["receiver"], subscription)
        assert [item["status"] for item in items] == ["failed", "failed"]
        assert receiver.requests == 4 and dispatch_due() == 0
        for item in items:
            history = item["attempt_history"]
            assert item["attempts"] == len(history) == 3
            assert history[0]["status_code"] is None
            assert history[0]["error"].startswith("connection failed")
            assert [a["status_code"] for a in history[1:]] == [500, 500]
            assert all("fail_with" in a["response_excerpt"] for a in history[1:])
            assert all(isinstance(a["duration_ms"], int) and a["at"] for a in history)

        one, other = (item["id"] for item in items)
        base = f"/{subscription['id']}/deliveries"
        assert post(client, net["receiver"], f"{base}/{one}/replay").get_json() == {"replayed": 1}
        drain()
        assert [e["webhook_id"] for e in receiver.events] == [one]
        assert post(client, net["receiver"], f"{base}/{one}/replay").status_code == 409
        assert post(client, net["receiver"], f"{base}/msg_nothing/replay").status_code == 404
        replayed = post(client, net["receiver"], f"/{subscription['id']}/replay").get_json()
        assert replayed == {"replayed": 1}
        drain()
        assert [e["webhook_id"] for e in receiver.events] == [one, other]
    assert [d.status for d in stored()] == ["delivered", "delivered"]


def test_a_subscription_failing_for_days_is_disabled(client, net, travel):
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    new_referral(client, net)
    with CallbackReceiver(subscription["secret"], port=port, fail_with=[500] * 3) as receiver:
        drain()
        travel(4 * 86400)
        drain()
        assert db.session.get(Subscription, subscription["id"]).status == "active"
        travel(86400 + 60)
        drain()
        assert receiver.requests == 3
    found = db.session.get(Subscription, subscription["id"])
    assert found.status == "disabled" and "too long" in found.disabled_reason
    assert [d.status for d in stored()] == ["failed"]
    # The organisation's admin and the network's coordinators are told through the API.
    coordinator = user_party(client.application, ["coordinator"], scopes="callbacks:manage")
    for party in (net["receiver"], coordinator):
        response = client.get(
            "/api/v1/subscriptions", query_string={"status": "disabled"}, headers=party.headers
        )
        (listed,) = response.get_json()["items"]
        assert listed["id"] == subscription["id"] and "too long" in listed["disabled_reason"]


# Managing subscriptions


def test_pause_keeps_deliveries_waiting_and_resume_sends_them_in_order(client, net):
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    paused = post(client, net["receiver"], f"/{subscription['id']}/pause").get_json()
    assert paused["status"] == "paused"
    referral = new_referral(client, net)
    referral = moved(client, net["receiver"], referral, "received")
    moved(client, net["receiver"], referral, "accepted")
    with CallbackReceiver(subscription["secret"], port=port) as receiver:
        drain()
        assert receiver.requests == 0
        assert [d.status for d in stored()] == ["pending"] * 3
        resumed = post(client, net["receiver"], f"/{subscription['id']}/resume").get_json()
        assert resumed["status"] == "active"
        drain()
        assert receiver.wait_for(3, timeout=1)
    statuses = [e["payload"]["data"]["status"] for e in receiver.events]
    assert statuses == ["sent", "received", "accepted"]
    assert [e["payload"]["data"]["version"] for e in receiver.events] == [1, 2, 3]


def test_delete_removes_the_subscription_and_its_waiting_deliveries(client, net):
    with CallbackReceiver("whsec_" + "A" * 44) as receiver:
        subscription = subscribe(client, net["receiver"], receiver.url)
        new_referral(client, net)
        assert len(stored()) == 1
        url = f"/api/v1/subscriptions/{subscription['id']}"
        assert client.delete(url, headers=net["receiver"].headers).status_code == 204
        assert client.get(url, headers=net["receiver"].headers).status_code == 404
        assert client.delete(url, headers=net["receiver"].headers).status_code == 404
        new_referral(client, net)
        drain()
        assert stored() == [] and receiver.requests == 0


def test_only_the_organisations_admins_and_systems_manage_its_subscriptions(app, client, net):
    subscription = subscribe(client, net["receiver"], "http://127.0.0.1:9/callbacks")
    url = f"/api/v1/subscriptions/{subscription['id']}"
    stranger = net["stranger"].headers
    assert client.get(url, headers=stranger).status_code == 404
    assert client.delete(url, headers=stranger).status_code == 404
    for action in ("pause", "resume", "rotate-secret", "replay"):
        assert client.post(f"{url}/{action}", headers=stranger).status_code == 404
    assert client.get(f"{url}/deliveries", headers=stranger).status_code == 404
    listed = client.get("/api/v1/subscriptions", headers=stranger).get_json()["items"]
    assert listed == []
    assert client.get(url, headers=net["receiver"].headers).status_code == 200

    body = {"url": "http://127.0.0.1:9/callbacks"}
    caseworker = user_party(app, ["caseworker"], scopes="callbacks:manage")
    response = client.post("/api/v1/subscriptions", json=body, headers=caseworker.headers)
    assert response.status_code == 403
    assert client.get("/api/v1/subscriptions", headers=caseworker.headers).status_code == 403
    admin = user_party(app, ["org_admin"], scopes="callbacks:manage")
    response = client.post("/api/v1/subscriptions", json=body, headers=admin.headers)
    assert response.status_code == 201
    assert response.get_json()["organization_id"] == admin.organization_id
    response = client.post("/api/v1/subscriptions", json=body, headers=net["focal_in"].headers)
    assert response.status_code == 403  # without the callbacks:manage scope


# The outbox


def test_the_event_and_its_deliveries_share_the_changes_transaction(
    client, net, live_server, monkeypatch
):
    subscribe(client, net["receiver"], "http://127.0.0.1:9/callbacks")
    subscribe(client, net["sender"], "http://127.0.0.1:9/callbacks")
    referral = new_referral(client, net)
    assert len(stored()) == 1

    response = move(client, net["receiver"], {**referral, "version": 7}, "received")
    assert response.status_code == 412
    assert len(stored()) == 1

    written = []

    def broken(*args, **kwargs):  # fails after the event and its deliveries were flushed
        written.append(db.session.scalar(db.select(db.func.count()).select_from(Delivery)))
        raise RuntimeError("the audit trail is unavailable")

    monkeypatch.setattr(referral_service.audit, "record", broken)
    response = HTTP().post(
        f"{live_server}/api/v1/referrals/{referral['id']}/status",
        json={"status": "received"},
        headers={**net["receiver"].headers, "If-Match": f'"{referral["version"]}"'},
    )
    assert response.status_code == 500
    assert written == [3]  # created (receiver), status_changed (both parties)
    assert len(stored()) == 1
    events = db.select(ReferralEvent).filter_by(referral_id=referral["id"])
    assert [e.type for e in db.session.scalars(events)] == ["referral.created"]


def test_no_personal_data_in_any_callback_and_only_short_clean_excerpts(client, net):
    noise = ("\x00\x1b[31mALERT\r\n\t\u202e" + "x" * 40 + "\x7f") * 200
    with (
        RawReceiver() as to_receiver,
        RawReceiver(lambda: (500, {"Content-Type": "text/plain"}, noise.encode())) as to_sender,
    ):
        receiving = subscribe(client, net["receiver"], to_receiver.url)
        sending = subscribe(client, net["sender"], to_sender.url)
        referral = new_referral(client, net)
        referral = moved(client, net["receiver"], referral, "received")
        referral = moved(client, net["receiver"], referral, "accepted")
        withdrawn = client.post(
            f"/api/v1/referrals/{referral['id']}/consent/withdraw",
            json={"erase": True},
            headers=net["sender"].headers,
        )
        assert withdrawn.status_code == 200, withdrawn.get_json()
        drain()
    bodies = [body.decode() + str(dict(headers)) for headers, body in to_receiver.requests]
    bodies += [body.decode() + str(dict(headers)) for headers, body in to_sender.requests]
    assert len(to_receiver.requests) == 4 and to_sender.requests
    for value in PERSONAL_VALUES:
        assert all(value not in body for body in bodies), value
    types = [json.loads(body)["type"] for _, body in to_receiver.requests]
    assert types[-1] == "referral.consent_withdrawn"
    for _, body in to_receiver.requests:
        data = json.loads(body)["data"]
        allowed = {"referral_id", "reference", "status", "previous_status", "version", "service_id"}
        assert set(data) <= allowed
    assert all(d["status"] == "delivered" for d in deliveries(client, net["receiver"], receiving))

    excerpts = [
        attempt["response_excerpt"]
        for item in deliveries(client, net["sender"], sending)
        for attempt in item["attempt_history"]
    ]
    assert excerpts
    for excerpt in excerpts:
        assert 0 < len(excerpt) <= 200 and excerpt.isprintable() and "ALERT" in excerpt


def test_the_background_dispatcher_delivers_right_after_the_commit(app, client, net, settings):
    settings(CALLBACK_POLL_SECONDS=30)  # only the wake-up after the commit can be this quick
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    dispatcher = app.extensions["hub_dispatcher"]
    with CallbackReceiver(subscription["secret"], port=port) as receiver:
        for round_ in (1, 2):  # and again after a stop, as when the scheduler restarts
            dispatcher.start()
            try:
                time.sleep(0.2)  # the thread is waiting for work
                new_referral(client, net)
                started = time.monotonic()
                assert receiver.wait_for(round_, timeout=3)
                assert time.monotonic() - started < 1
            finally:
                dispatcher.stop()


def test_a_dispatcher_of_another_process_wakes_on_the_commit(client, net, database_url, live_port):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite the dispatcher shares the process")
    worker = create_app(hub_config(database_url, live_port, CALLBACK_POLL_SECONDS=30))
    dispatcher = worker.extensions["hub_dispatcher"]  # not the one the commit's process wakes
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    with CallbackReceiver(subscription["secret"], port=port) as receiver:
        dispatcher.start()
        try:
            time.sleep(0.3)  # it listens
            new_referral(client, net)
            started = time.monotonic()
            assert receiver.wait_for(1, timeout=3)
            assert time.monotonic() - started < 1
        finally:
            dispatcher.stop()
            with worker.app_context():
                db.engine.dispose()


# The dispatcher's limits: leases that outlast attempts, a hard total timeout, faults of its
# own recorded as attempts, several sending threads


@contextmanager
def trickling(part):
    """An endpoint that answers 200 one line (headers) or one byte (body) every 0.1 s."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            lines = [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 30\r\n"]
            lines += [b"X-Pad: %d\r\n" % n for n in range(30)] if part == "headers" else []
            lines += [b"\r\n"] + ([b"x"] * 30 if part == "body" else [])
            try:
                for line in lines:
                    self.wfile.write(line)
                    time.sleep(0.1)
            except OSError:
                pass  # the hub gave up: what this endpoint is for

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callbacks"
    finally:
        server.shutdown()
        server.server_close()


def test_a_lease_shorter_than_an_attempt_is_refused_at_start(database_url, live_port):
    with pytest.raises(ConfigError, match="CALLBACK_LEASE_SECONDS"):
        create_app(
            hub_config(
                database_url, live_port, CALLBACK_LEASE_SECONDS=16, CALLBACK_TOTAL_TIMEOUT=15
            )
        )


def test_no_attempt_outlives_its_lease_so_no_other_dispatcher_repeats_it(
    app, client, net, settings
):
    settings(CALLBACK_LEASE_SECONDS=2.5, CALLBACK_TOTAL_TIMEOUT=0.4)
    with RawReceiver(delay=0.3) as slow:
        subscription = subscribe(client, net["receiver"], slow.url)
        outbox(subscription, 10)  # 3 s of sending, one after the other: more than a lease

        def first_dispatcher():
            with app.app_context():
                try:
                    dispatch_due(limit=10)
                finally:
                    db.session.remove()

        first = threading.Thread(target=first_dispatcher)
        first.start()
        time.sleep(2.6)  # its leases have run out; another dispatcher claims what is left
        drain()
        first.join(10)
        drain()
    ids = [headers["webhook-id"] for headers, _ in slow.requests]
    assert sorted(ids) == sorted(d.id for d in stored())
    assert all(d.status == "delivered" and d.attempts == 1 for d in stored())


@pytest.mark.parametrize("part", ["headers", "body"])
def test_the_total_timeout_bounds_the_whole_answer_however_slowly_it_comes(
    client, net, settings, part
):
    settings(CALLBACK_TOTAL_TIMEOUT=0.5)  # each line comes well within a read timeout
    with trickling(part) as url:
        subscription = subscribe(client, net["receiver"], url)
        new_referral(client, net)
        started = time.monotonic()
        drain()
        assert time.monotonic() - started < 2
    (item,) = deliveries(client, net["receiver"], subscription)
    (attempt,) = item["attempt_history"]
    assert 450 <= attempt["duration_ms"] < 1500
    if part == "headers":
        assert attempt["error"] == "timeout" and attempt["status_code"] is None
    else:  # the status came in time: it counts, whatever the body does
        assert attempt["status_code"] == 200 and item["status"] == "delivered"


def test_a_fault_of_the_hub_during_an_attempt_is_recorded_and_retried(
    client, net, settings, monkeypatch
):
    settings(CALLBACK_RETRY_SCHEDULE=[0, 0.2, 1])
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    new_referral(client, net)

    def broken(url):
        raise RuntimeError(f"internal detail about {url}")

    monkeypatch.setattr(targets, "check_url", broken)
    drain()
    (item,) = deliveries(client, net["receiver"], subscription)
    assert item["status"] == "pending" and item["attempts"] == 1
    (attempt,) = item["attempt_history"]
    assert attempt["error"] == "unexpected error: RuntimeError"
    assert attempt["status_code"] is None and isinstance(attempt["duration_ms"], int)
    monkeypatch.undo()
    with CallbackReceiver(subscription["secret"], port=port) as receiver:
        time.sleep(0.25)
        drain()
        assert receiver.wait_for(1, timeout=2)
    assert [d.status for d in stored()] == ["delivered"]


def test_several_sending_threads_deliver_everything_once_in_order(app, client, net, settings):
    settings(
        CALLBACK_DISPATCHER_THREADS=4,
        CALLBACK_POLL_SECONDS=0.1,
        CALLBACK_RETRY_SCHEDULE=[0] + [0.1] * 20,
    )
    port = free_port()
    subscription = subscribe(client, net["receiver"], f"http://127.0.0.1:{port}/callbacks")
    referrals = [new_referral(client, net) for _ in range(6)]
    for referral in referrals:
        moved(
            client,
            net["receiver"],
            moved(client, net["receiver"], referral, "received"),
            "accepted",
        )
    dispatcher = app.extensions["hub_dispatcher"]
    with CallbackReceiver(subscription["secret"], port=port, failure_rate=0.3, seed=3) as receiver:
        dispatcher.start()
        try:
            senders = [t for t in threading.enumerate() if t.name.startswith("callback-sender")]
            assert len(senders) == (1 if db.engine.dialect.name == "sqlite" else 4)
            assert receiver.wait_for(18, timeout=20)
        finally:
            dispatcher.stop()
    assert receiver.duplicates == 0 and len(receiver.events) == 18
    for referral in referrals:
        statuses = [
            e["payload"]["data"]["status"]
            for e in receiver.events
            if e["payload"]["data"]["referral_id"] == referral["id"]
        ]
        assert statuses == ["sent", "received", "accepted"]
