"""Signing and verification: every way a callback can be forged, replayed or garbled."""

import base64
import json
import random
import threading
from email.message import Message

import pytest
from requests.structures import CaseInsensitiveDict

from referral_hub_kit import ReplayGuard, WebhookVerificationError, sign, verify

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
NOW = 1_800_000_000
BODY = json.dumps(
    {"type": "referral.status_changed", "data": {"referral_id": "0e6f", "status": "accepted"}}
).encode()


def headers(body: bytes = BODY, secret: str = SECRET, msg_id: str = "msg_1", ts: int = NOW):
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def reason(secret, hdrs, body, **kwargs) -> str:
    with pytest.raises(WebhookVerificationError) as info:
        verify(secret, hdrs, body, now=NOW, **kwargs)
    return info.value.reason


def test_matches_the_specification_test_vector():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    signature = sign(secret, msg_id, ts, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    hdrs = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}
    assert verify(secret, hdrs, body, now=ts) == {"test": 2432232314}


def test_round_trip_returns_the_json_body():
    assert verify(SECRET, headers(), BODY, now=NOW) == json.loads(BODY)
    assert verify(SECRET, headers(), BODY.decode(), now=NOW) == json.loads(BODY)


def test_header_names_are_matched_case_insensitively():
    upper = {name.title(): value for name, value in headers().items()}
    assert verify(SECRET, upper, BODY, now=NOW)
    assert verify(SECRET, CaseInsensitiveDict(upper), BODY, now=NOW)
    message = Message()
    for name, value in upper.items():
        message[name] = value
    assert verify(SECRET, message, BODY, now=NOW)


@pytest.mark.parametrize(
    "change",
    [
        lambda h, b: (h, b.replace(b"accepted", b"completed")),
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(NOW + 1)}, b),
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"][:-6] + "AAAAA="}, b),
        lambda h, b: ({**h, "webhook-signature": "v2," + h["webhook-signature"][3:]}, b),
        lambda h, b: (headers(secret=OLD_SECRET), b),
    ],
    ids=["body", "id", "timestamp", "signature", "other-version", "wrong-secret"],
)
def test_any_tampering_is_a_bad_signature(change):
    hdrs, body = change(headers(), BODY)
    assert reason(SECRET, hdrs, body) == "bad_signature"


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers(name):
    hdrs = headers()
    del hdrs[name]
    assert reason(SECRET, hdrs, BODY) == "missing_header"
    assert reason(SECRET, {**headers(), name: None}, BODY) == "missing_header"
    assert reason(SECRET, {**headers(), name: ""}, BODY) == "missing_header"


def test_no_headers_at_all():
    assert reason(SECRET, None, BODY) == "missing_header"
    assert reason(SECRET, {}, BODY) == "missing_header"
    assert reason(SECRET, "webhook-id: x", BODY) == "malformed_header"


@pytest.mark.parametrize(
    "name, value",
    [
        ("webhook-timestamp", "soon"),
        ("webhook-timestamp", "1800000000.5"),
        ("webhook-timestamp", "-1800000000"),
        ("webhook-timestamp", "+1800000000"),
        ("webhook-timestamp", "1_800_000_000"),
        ("webhook-timestamp", "١٨٠٠٠٠٠٠٠٠"),
        ("webhook-timestamp", "9" * 400),
        ("webhook-signature", "garbage"),
        ("webhook-signature", "v1,abc garbage"),
        ("webhook-signature", "v1," + "A" * 10_000),
        ("webhook-id", "msg.1"),
        ("webhook-id", "msg 1"),
        ("webhook-id", "x" * 300),
        ("webhook-id", 12),
        ("webhook-id", ["msg_1"]),
    ],
)
def test_malformed_headers(name, value):
    assert reason(SECRET, {**headers(), name: value}, BODY) == "malformed_header"


def test_a_header_given_twice_with_different_values_is_malformed():
    message = Message()
    for name, value in headers().items():
        message[name] = value
    message["webhook-id"] = "msg_other"
    assert reason(SECRET, message, BODY) == "malformed_header"


def test_timestamp_tolerance():
    assert verify(SECRET, headers(ts=NOW - 300), BODY, now=NOW)
    assert verify(SECRET, headers(ts=NOW + 300), BODY, now=NOW)
    assert reason(SECRET, headers(ts=NOW - 301), BODY) == "stale"
    assert reason(SECRET, headers(ts=NOW + 301), BODY) == "future"
    assert reason(SECRET, headers(ts=NOW - 61), BODY, tolerance=60) == "stale"


def test_one_valid_signature_among_several_is_enough():
    valid = headers()["webhook-signature"]
    others = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,c2lnbmF0dXJl v2,eHl6"
    hdrs = {**headers(), "webhook-signature": f"{others}  {valid} v1,AAAA"}
    assert verify(SECRET, hdrs, BODY, now=NOW)


def test_secret_rotation():
    old_and_new = f"{sign(OLD_SECRET, 'msg_1', NOW, BODY)} {sign(SECRET, 'msg_1', NOW, BODY)}"
    assert verify(SECRET, {**headers(), "webhook-signature": old_and_new}, BODY, now=NOW)
    assert verify([OLD_SECRET, SECRET], headers(secret=OLD_SECRET), BODY, now=NOW)
    assert verify([OLD_SECRET, SECRET], headers(secret=SECRET), BODY, now=NOW)
    assert reason([OLD_SECRET], headers(secret=SECRET), BODY) == "bad_signature"


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "k" * 32,
        base64.b64encode(b"k" * 32).decode(),
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),
        [],
        None,
        42,
        [SECRET, None],
    ],
)
def test_bad_secrets(secret):
    assert reason(secret, headers(), BODY) == "bad_secret"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe\x00garbage", b"[1, 2]", b'"text"', b"", b"[" * 100_000],
    ids=["text", "not-utf8", "array", "string", "empty", "deep"],
)
def test_validly_signed_bodies_that_are_not_json_objects(body):
    assert reason(SECRET, headers(body=body), body) == "bad_body"


def test_a_body_of_the_wrong_type():
    assert reason(SECRET, headers(), None) == "bad_body"


def test_replay_guard_refuses_a_second_delivery_of_the_same_id():
    guard = ReplayGuard()
    assert verify(SECRET, headers(), BODY, replay_guard=guard, now=NOW)
    assert reason(SECRET, headers(), BODY, replay_guard=guard) == "replayed"
    assert verify(SECRET, headers(msg_id="msg_2"), BODY, replay_guard=guard, now=NOW)
    # Without a guard nothing is remembered: there is no hidden default guard.
    assert verify(SECRET, headers(), BODY, now=NOW)


def test_forged_callbacks_do_not_poison_the_replay_guard():
    guard = ReplayGuard()
    forged = {**headers(), "webhook-signature": headers(secret=OLD_SECRET)["webhook-signature"]}
    assert reason(SECRET, forged, BODY, replay_guard=guard) == "bad_signature"
    assert verify(SECRET, headers(), BODY, replay_guard=guard, now=NOW)


def test_replay_guard_forgets_ids_once_they_expire_and_stays_bounded():
    guard = ReplayGuard(max_entries=3)
    assert guard.add("a", expires_at=10, now=0)
    assert not guard.add("a", expires_at=10, now=5)
    assert guard.add("a", expires_at=20, now=10)
    for index in range(10):
        guard.add(f"id{index}", expires_at=100 + index, now=11)
    assert len(guard) == 3
    assert not guard.add("id9", expires_at=200, now=12)
    assert not guard.add("id7", expires_at=200, now=12)  # the next to expire, yet remembered


def test_replay_guard_is_thread_safe():
    guard = ReplayGuard()
    accepted = []

    def work():
        accepted.extend(guard.add(f"id{n}", expires_at=NOW, now=0) for n in range(2000))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert accepted.count(True) == 2000


def test_garbage_never_raises_anything_but_webhook_verification_error():
    rng = random.Random(7)
    values = [
        None, "", "v1,", ",", "v1,v1,v1", "\x00", "é" * 5000, b"\xff\xfe", 3.5, object(),
        str(NOW), "msg_1", "\ud800", " " * 100, "v1," * 2000,
    ]  # fmt: skip
    for _ in range(3000):
        hdrs = {
            rng.choice(["webhook-id", "WEBHOOK-TIMESTAMP", "webhook-signature", "x"]): (
                rng.choice(values)
            )
            for _ in range(rng.randint(0, 4))
        }
        body = rng.choice([BODY, b"\xff" * rng.randint(0, 50), "\ud800", None, 12, bytearray()])
        try:
            result = verify(SECRET, rng.choice([hdrs, {**headers(), **hdrs}]), body, now=NOW)
        except WebhookVerificationError:
            continue
        assert body == BODY and result == json.loads(BODY)  # garbage only left "x" headers
