"""Repeated failed sign-ins and token requests are slowed, then refused with 429: by account from
one address, by source address whatever the account, and by account from every address."""

import threading
import time
import uuid

import pytest
from argon2 import PasswordHasher

from referral_hub import create_app
from referral_hub.auth import throttle
from referral_hub.auth.models import LoginThrottle
from referral_hub.extensions import db

from .conftest import hub_config
from .factories import HTTP, PASSWORD, csrf_from, make_client, make_org, make_user

HERE, ELSEWHERE = "203.0.113.5", "198.51.100.7"


def stranger():
    return f"{uuid.uuid4().hex[:10]}@example.org"


class Browser:
    """The login form, posted from one source address (and through a proxy, if forwarded)."""

    def __init__(self, client, address, forwarded_for=None):
        self.client = client
        self.options = {"environ_base": {"REMOTE_ADDR": address}}
        if forwarded_for:
            self.options["headers"] = {"X-Forwarded-For": forwarded_for}

    def sign_in(self, email, password=PASSWORD):
        token = csrf_from(self.client.get("/login", **self.options).get_data(as_text=True))
        form = {"csrf_token": token, "email": email, "password": password}
        return self.client.post("/login", data=form, **self.options)


def token_request(client, address, client_id, secret):
    return client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        environ_base={"REMOTE_ADDR": address},
    )


@pytest.fixture
def password_hashes(monkeypatch):
    """Every argon2 hash the hub computes from now on (a sign-in that reaches the password costs
    one, of 64 MiB in production)."""
    computed = []
    for name in ("hash", "verify"):
        real = getattr(PasswordHasher, name)

        def counted(self, *args, _real=real, **kwargs):
            computed.append(args)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(PasswordHasher, name, counted)
    return computed


def test_failed_sign_ins_lock_the_account_from_that_address_only(app, client, password_hashes):
    user = make_user(make_org())
    here = Browser(client, HERE)
    for _ in range(app.config["THROTTLE_MAX_FAILURES"]):
        assert here.sign_in(user.email, "wrong guess").status_code == 401
    hashed = len(password_hashes)
    locked = here.sign_in(user.email)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert len(password_hashes) == hashed  # refused before the password is hashed
    assert Browser(app.test_client(), ELSEWHERE).sign_in(user.email).status_code == 302
    assert here.sign_in(make_user(make_org()).email).status_code == 302


def test_failed_token_requests_lock_the_client_from_that_address_only(app, client):
    client_id, secret = make_client(make_org())
    for _ in range(app.config["THROTTLE_MAX_FAILURES"]):
        assert token_request(client, HERE, client_id, "wrong").status_code == 401
    locked = token_request(client, HERE, client_id, secret)
    assert locked.status_code == 429
    assert locked.mimetype == "application/problem+json" and locked.headers["Retry-After"]
    assert token_request(client, ELSEWHERE, client_id, secret).status_code == 200


def test_failed_client_assertions_count_too(app, client):
    client_id, _ = make_client(
        make_org(),
        auth_method="private_key_jwt",
        jwks={"keys": [{"kty": "RSA", "kid": "k", "n": "sXch" * 64, "e": "AQAB"}]},
    )
    for _ in range(app.config["THROTTLE_MAX_FAILURES"]):
        client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "e30.e30.c2ln",
            },
        )
    locked = client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id}
    )
    assert locked.status_code == 429


def test_password_spraying_from_one_address_is_refused_before_hashing(app, client, password_hashes):
    user = make_user(make_org())
    here = Browser(client, HERE)
    for _ in range(app.config["THROTTLE_ADDRESS_MAX_FAILURES"]):
        assert here.sign_in(stranger(), "Summer2026!").status_code == 401
    hashed = len(password_hashes)
    refused = here.sign_in(user.email)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert here.sign_in(stranger(), "Summer2026!").status_code == 429
    assert len(password_hashes) == hashed
    assert Browser(app.test_client(), ELSEWHERE).sign_in(user.email).status_code == 302


def test_guessing_many_clients_from_one_address_is_refused(app, client):
    client_id, secret = make_client(make_org())
    for _ in range(app.config["THROTTLE_ADDRESS_MAX_FAILURES"]):
        assert token_request(client, HERE, uuid.uuid4().hex, "guess").status_code == 401
    assert token_request(client, HERE, client_id, secret).status_code == 429
    assert token_request(client, ELSEWHERE, client_id, secret).status_code == 200


def test_an_account_guessed_from_many_addresses_is_locked_everywhere(app, client):
    user = make_user(make_org())
    ceiling = app.config["THROTTLE_ACCOUNT_MAX_FAILURES"]
    per_address = app.config["THROTTLE_MAX_FAILURES"] - 1
    for n in range(ceiling):
        guesser = Browser(app.test_client(), f"192.0.2.{n // per_address}")
        assert guesser.sign_in(user.email, f"guess {n}").status_code == 401
    assert Browser(client, ELSEWHERE).sign_in(user.email).status_code == 429


def test_a_lock_lifts_after_its_window(app, client, moved_clock):
    user = make_user(make_org())
    here = Browser(client, HERE)
    for _ in range(app.config["THROTTLE_MAX_FAILURES"]):
        here.sign_in(user.email, "wrong guess")
    window = app.config["THROTTLE_WINDOW_SECONDS"]
    moved_clock(window - 1)
    assert here.sign_in(user.email).status_code == 429
    moved_clock(window + 1)
    assert here.sign_in(user.email).status_code == 302


def test_a_count_starts_again_the_moment_its_window_and_lock_are_over(app, client, moved_clock):
    """The old failures stop counting when the lock ends: the next ones lock again at the same
    limit, neither sooner nor never."""
    client_id, secret = make_client(make_org())
    limit, window = app.config["THROTTLE_MAX_FAILURES"], app.config["THROTTLE_WINDOW_SECONDS"]

    def lock():
        for _ in range(limit):
            assert token_request(client, HERE, client_id, "wrong").status_code == 401
        locked = token_request(client, HERE, client_id, secret)
        assert locked.status_code == 429
        # the whole lock, rounded up to a second
        assert 0 <= int(locked.headers["Retry-After"]) - window <= 1

    lock()
    moved_clock(window)  # the very moment the lock ends
    lock()


def test_failures_slow_that_account_from_that_address_only(app, monkeypatch):
    """From the THROTTLE_SLOW_AFTER-th failure on, each failure adds a delay to the next attempt
    of that account from that address; other accounts and addresses do not wait."""
    delay = 0.5
    monkeypatch.setitem(app.config, "THROTTLE_DELAY_SECONDS", delay)
    account = stranger()

    def waited(account=account, address=HERE):
        start = time.monotonic()
        throttle.check("login", account, address)
        return time.monotonic() - start

    for _ in range(app.config["THROTTLE_SLOW_AFTER"] - 1):
        throttle.record_failure("login", account, HERE)
    assert waited() < delay
    throttle.record_failure("login", account, HERE)
    assert waited() >= delay
    throttle.record_failure("login", account, HERE)
    assert waited() >= 2 * delay
    assert waited(stranger()) < delay
    assert waited(account, ELSEWHERE) < delay


def test_an_address_lock_lifts_after_its_window(app, client, moved_clock):
    here = Browser(client, HERE)
    for _ in range(app.config["THROTTLE_ADDRESS_MAX_FAILURES"]):
        here.sign_in(stranger(), "Summer2026!")
    user = make_user(make_org())
    assert here.sign_in(user.email).status_code == 429
    moved_clock(app.config["THROTTLE_WINDOW_SECONDS"] + 1)
    assert here.sign_in(user.email).status_code == 302


def test_a_success_resets_the_count_from_that_address(app, client):
    user = make_user(make_org())
    here = Browser(client, HERE)
    for _ in range(2):
        for _ in range(app.config["THROTTLE_MAX_FAILURES"] - 1):
            assert here.sign_in(user.email, "typo").status_code == 401
        assert here.sign_in(user.email).status_code == 302


def test_a_forged_x_forwarded_for_is_ignored_without_trusted_proxies(app, client):
    user = make_user(make_org())
    here = Browser(client, HERE, forwarded_for="198.51.100.1")
    for _ in range(app.config["THROTTLE_MAX_FAILURES"]):
        here.sign_in(user.email, "wrong guess")
    assert Browser(client, HERE, "198.51.100.2").sign_in(user.email).status_code == 429
    elsewhere = Browser(app.test_client(), ELSEWHERE, forwarded_for="198.51.100.1")
    assert elsewhere.sign_in(user.email).status_code == 302


def test_behind_a_trusted_proxy_the_address_it_forwards_counts(database_url, live_port):
    """nginx appends the address it saw; what the client put before it is not believed."""
    hub = create_app(hub_config(database_url, live_port, TRUSTED_PROXIES=1))
    user = make_user(make_org())
    proxy = "127.0.0.1"
    try:
        guesser = Browser(hub.test_client(), proxy, forwarded_for=f"10.9.9.9, {HERE}")
        for _ in range(hub.config["THROTTLE_MAX_FAILURES"]):
            assert guesser.sign_in(user.email, "wrong guess").status_code == 401
        forged = Browser(hub.test_client(), proxy, forwarded_for=f"{ELSEWHERE}, {HERE}")
        assert forged.sign_in(user.email).status_code == 429
        owner = Browser(hub.test_client(), proxy, forwarded_for=ELSEWHERE)
        assert owner.sign_in(user.email).status_code == 302
    finally:
        with hub.app_context():
            db.engine.dispose()


def test_one_ipv6_client_is_one_source_for_its_whole_64(app, client):
    user = make_user(make_org())
    for n in range(app.config["THROTTLE_MAX_FAILURES"]):
        guesser = Browser(app.test_client(), f"2001:db8:1:2::{n + 1:x}")
        assert guesser.sign_in(user.email, "wrong guess").status_code == 401
    assert Browser(client, "2001:db8:1:2:ffff::1").sign_in(user.email).status_code == 429
    assert Browser(client, "2001:db8:1:3::1").sign_in(user.email).status_code == 302


def test_concurrent_failures_are_each_counted_and_never_fail(app, live_server):
    """Guesses sent at once for one account all land in the counts, with no error from two
    threads making the same count's row."""
    email = make_user(make_org()).email
    threads_count, tries = 8, 3
    statuses = []

    def guess():
        http = HTTP()
        page = http.get(f"{live_server}/login")
        token = csrf_from(page.text)
        start.wait()
        for _ in range(tries):
            form = {"csrf_token": token, "email": email, "password": "wrong guess"}
            statuses.append(http.post(f"{live_server}/login", data=form).status_code)

    start = threading.Barrier(threads_count)
    threads = [threading.Thread(target=guess) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {401, 429} and 429 in statuses
    failures = db.session.scalars(
        db.select(LoginThrottle.failures).where(LoginThrottle.key == "addr:127.0.0.1")
    ).one()
    assert failures == statuses.count(401)


def test_a_failure_counts_against_its_address_an_ipv6_clients_64_or_unknown():
    assert throttle.source("203.0.113.7") == "203.0.113.7"
    assert throttle.source("::ffff:203.0.113.7") == "203.0.113.7"  # IPv4 in IPv6 clothing
    assert throttle.source("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert throttle.source(None) == throttle.source("not an address") == "unknown"
