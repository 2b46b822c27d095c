"""The callback receiver over real HTTP on 127.0.0.1."""

import base64
import json
import re
import socket
import threading
import time
import uuid

import pytest
import requests

from referral_hub_kit import CallbackReceiver, WebhookVerificationError, sign

SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"x" * 32).decode()


def post(receiver, payload=None, *, msg_id=None, secret=SECRET, ts=None, body=None, headers=None):
    """Deliver one callback the way the hub does; returns the response."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if ts is None else ts
    if body is None:
        body = json.dumps(payload or {"type": "referral.created", "data": {"id": msg_id}}).encode()
    signed = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
        "content-type": "application/json",
    }
    return requests.post(receiver.url, data=body, headers={**signed, **(headers or {})}, timeout=5)


@pytest.fixture
def receiver():
    with CallbackReceiver(SECRET) as running:
        yield running


def test_stores_a_valid_callback(receiver):
    assert receiver.url.startswith("http://127.0.0.1:") and receiver.url.endswith("/callbacks")
    before = time.time()
    payload = {"type": "referral.status_changed", "data": {"status": "accepted", "version": 4}}
    response = post(
        receiver, payload, msg_id="msg_1", headers={"Authorization": "Bearer secret-token"}
    )
    assert response.status_code == 204
    assert receiver.wait_for(1, timeout=1)
    [event] = receiver.events
    assert event["webhook_id"] == "msg_1"
    assert event["payload"] == payload
    assert abs(event["timestamp"] - before) < 5
    assert before <= event["received_at"] <= time.time()
    assert event["headers"]["webhook-id"] == "msg_1"
    assert "Authorization" not in event["headers"] and "authorization" not in event["headers"]
    assert receiver.requests == 1 and receiver.rejected == []


def test_rejects_a_forged_callback_with_400(receiver):
    response = post(receiver, secret=OTHER_SECRET)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == "bad_signature"
    assert receiver.events == []
    assert receiver.rejected == [("bad_signature", 400)]


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"ts": int(time.time()) - 3600}, "stale"),
        ({"body": b"not json"}, "bad_body"),
        ({"body": b"\xff\xfe garbage"}, "bad_body"),
        ({"headers": {"webhook-signature": "garbage"}}, "malformed_header"),
    ],
)
def test_rejects_bad_callbacks_with_400(receiver, kwargs, reason):
    response = post(receiver, **kwargs)
    assert (response.status_code, response.json()["detail"]) == (400, reason)
    assert receiver.events == []


def test_a_duplicate_id_is_answered_200_and_stored_once(receiver):
    assert post(receiver, msg_id="msg_dup").status_code == 204
    retry = post(receiver, msg_id="msg_dup", ts=int(time.time()) + 1)  # the hub's next attempt
    assert retry.status_code == 200
    assert len(receiver.events) == 1 and receiver.duplicates == 1


def test_bearer_token_is_required_when_a_validator_is_set():
    def validator(token):
        if token == "explode":
            raise RuntimeError("validator bug")
        return token == "good"

    with CallbackReceiver([OTHER_SECRET, SECRET], token_validator=validator) as receiver:
        missing = post(receiver)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        wrong = post(receiver, headers={"Authorization": "Bearer bad"})
        assert wrong.status_code == 401
        assert wrong.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert post(receiver, headers={"Authorization": "Bearer explode"}).status_code == 401
        assert post(receiver, headers={"Authorization": "Basic good"}).status_code == 401
        assert post(receiver, headers={"Authorization": "Bearer good"}).status_code == 204
        assert len(receiver.events) == 1
        reasons = [reason for reason, _ in receiver.rejected]
        assert reasons == ["missing_token", "invalid_token", "invalid_token", "missing_token"]


def test_fail_with_is_answered_in_order():
    with CallbackReceiver(SECRET, fail_with=[500, 500, 410], retry_after=7) as receiver:
        answers = [post(receiver, msg_id="msg_retry") for _ in range(4)]
        assert [answer.status_code for answer in answers] == [500, 500, 410, 204]
        assert answers[0].headers["Retry-After"] == "7"
        assert "Retry-After" not in answers[3].headers
        assert len(receiver.events) == 1
        assert receiver.rejected == [("fail_with", 500), ("fail_with", 500), ("fail_with", 410)]


def test_failure_rate_answers_503_to_a_repeatable_fraction():
    def run():
        with CallbackReceiver(SECRET, failure_rate=0.5, seed=3) as receiver:
            codes = [post(receiver, msg_id=f"msg_{n}").status_code for n in range(40)]
            assert len(receiver.events) == codes.count(204)
            return codes

    codes = run()
    assert set(codes) == {204, 503} and 5 < codes.count(503) < 35
    assert run() == codes
    with CallbackReceiver(SECRET, failure_rate=1.0) as receiver:
        assert post(receiver).status_code == 503 and receiver.events == []


def test_a_body_over_the_limit_gets_413(receiver):
    response = post(receiver, body=b"{" + b" " * (1 << 20) + b"}")
    assert response.status_code == 413
    assert receiver.rejected == [("too_large", 413)]
    assert post(receiver).status_code == 204


def test_wait_for_wakes_up_when_events_arrive(receiver):
    threading.Timer(0.05, lambda: [post(receiver) for _ in range(2)]).start()
    assert receiver.wait_for(2, timeout=5)
    assert not receiver.wait_for(3, timeout=0.05)


def test_store_file_keeps_events_across_restarts(tmp_path):
    store = tmp_path / "received.jsonl"
    with CallbackReceiver(SECRET, store_path=store) as receiver:
        post(receiver, msg_id="msg_a")
        post(receiver, msg_id="msg_b")
    lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert [line["webhook_id"] for line in lines] == ["msg_a", "msg_b"]
    with store.open("a") as file:
        file.write('{"webhook_id": "msg_cut')  # a line cut short by a crash
    with CallbackReceiver(SECRET, store_path=store) as receiver:
        assert [event["webhook_id"] for event in receiver.events] == ["msg_a", "msg_b"]
        assert post(receiver, msg_id="msg_a").status_code == 200


def test_other_paths_methods_and_framing(receiver):
    assert requests.post(receiver.url + "/x", data=b"{}", timeout=5).status_code == 404
    assert requests.get(receiver.url, timeout=5).status_code == 501
    chunked = requests.post(receiver.url, data=iter([b"{", b"}"]), timeout=5)
    assert chunked.status_code == 411


def test_survives_garbage_on_the_wire(receiver):
    host, port = receiver.url.split("/")[2].split(":")
    garbage = [
        b"\x00\xff\x13\x37" * 100 + b"\r\n\r\n",
        b"POST /callbacks HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /callbacks HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n",
        b"POST /callbacks HTTP/1.1\r\nwebhook-id: " + b"A" * 70_000 + b"\r\n\r\n",
        b"POST /callbacks HTTP/1.1\r\nContent-Length: 10\r\nwebhook-id: \xff\r\n\r\n0123456789",
    ]
    for data in garbage:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(data)
            assert re.search(rb"\b4\d\d\b", conn.recv(1024))  # some 4xx, never a crash
    assert post(receiver).status_code == 204


def test_bad_configuration_fails_at_construction():
    with pytest.raises(WebhookVerificationError):
        CallbackReceiver("not-a-secret")
    with pytest.raises(ValueError):
        CallbackReceiver(SECRET, failure_rate=2)
    with pytest.raises(RuntimeError):
        CallbackReceiver(SECRET).url  # noqa: B018 (not started yet)
