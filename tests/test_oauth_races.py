"""Two simultaneous redemptions of one code, or refreshes of one refresh token.

The hub runs under gunicorn as in production (2 worker processes of 2 threads each) on the
test database; two real HTTP requests leave a barrier together. Exactly one may succeed,
and the other counts as a reuse: the whole grant is revoked, the winner's tokens included.
A revocation that lands in the middle of a refresh also leaves no live token.
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import event

from referral_hub.extensions import db

from .conftest import _free_port, hub_config
from .factories import (
    HTTP,
    REDIRECT_URI,
    authorization_code,
    bearer,
    make_client,
    make_org,
    make_user,
    pkce_pair,
    sign_in,
    user_grant,
)

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 6
SCOPE = "directory:read"
REVOCATION_CACHE_SECONDS = 1


@pytest.fixture(scope="module")
def gunicorn_hub(app, database_url, tmp_path_factory):
    """The hub under gunicorn on 127.0.0.1 and the test database; yields its base URL."""
    port = _free_port()
    settings = hub_config(database_url, port, REVOCATION_CACHE_SECONDS=REVOCATION_CACHE_SECONDS)
    env = {
        **os.environ,
        **{name: str(value) for name, value in settings.items()},
        "DATABASE_URL": database_url,
        "HUB_INSTANCE_PATH": app.instance_path,
    }
    log = tmp_path_factory.mktemp("gunicorn") / "hub.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"),
                *("--workers", "2", "--threads", "2", "referral_hub.wsgi:app"),
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # bound, but workers still starting
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture
def grant_client(app):
    """A user and a confidential authorization-code client of their organisation."""
    organization = make_org()
    user = make_user(organization)
    client_id, secret = make_client(
        organization,
        [SCOPE],
        ["authorization_code", "refresh_token"],
        redirect_uris=[REDIRECT_URI],
    )
    http = app.test_client()
    sign_in(http, user.email)
    return {"http": http, "auth": (client_id, secret)}


def new_code(grant_client):
    verifier, challenge = pkce_pair()
    code = authorization_code(grant_client["http"], grant_client["auth"][0], SCOPE, challenge)
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }


def refresh_form(refresh_token):
    return {"grant_type": "refresh_token", "refresh_token": refresh_token}


def at_once(base, auth, form):
    """Send the same token request twice, both leaving a barrier together."""
    barrier, answers = threading.Barrier(2), [None, None]
    sessions = [HTTP(), HTTP()]
    for session in sessions:  # connect first, so both requests start level
        session.get(f"{base}/healthz")

    def send(index):
        barrier.wait()
        answers[index] = sessions[index].post(f"{base}/oauth/token", auth=auth, data=form)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def one_winner(answers):
    """The winner's tokens; the loser was told its grant is spent."""
    assert sorted(answer.status_code for answer in answers) == [200, 400], [
        answer.text for answer in answers
    ]
    loser = next(answer for answer in answers if answer.status_code == 400)
    assert loser.json()["error"] == "invalid_grant"
    return next(answer for answer in answers if answer.status_code == 200).json()


def assert_grant_revoked(base, auth, tokens):
    refused = HTTP().post(
        f"{base}/oauth/token", auth=auth, data=refresh_form(tokens["refresh_token"])
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    deadline = time.monotonic() + REVOCATION_CACHE_SECONDS + 2
    api = f"{base}/api/v1/organizations"
    while HTTP().get(api, headers=bearer(tokens["access_token"])).status_code != 401:
        assert time.monotonic() < deadline, "the winner's access token still works"
        time.sleep(0.1)


def test_two_simultaneous_redemptions_of_one_code(gunicorn_hub, grant_client):
    auth = grant_client["auth"]
    for _ in range(ROUNDS):
        winner = one_winner(at_once(gunicorn_hub, auth, new_code(grant_client)))
        assert_grant_revoked(gunicorn_hub, auth, winner)


def test_two_simultaneous_refreshes_of_one_refresh_token(gunicorn_hub, grant_client):
    auth = grant_client["auth"]
    for _ in range(ROUNDS):
        issued = HTTP().post(f"{gunicorn_hub}/oauth/token", auth=auth, data=new_code(grant_client))
        assert issued.status_code == 200, issued.text
        winner = one_winner(
            at_once(gunicorn_hub, auth, refresh_form(issued.json()["refresh_token"]))
        )
        assert_grant_revoked(gunicorn_hub, auth, winner)


def test_a_grant_revoked_while_a_refresh_is_under_way_leaves_no_live_token(app, client):
    """The revocation lands after the refresh token was checked and before the new one is
    saved, so it cannot reach the new one: the refresh must then fail and void the grant."""
    credentials, issued = user_grant(app, make_user(make_org()), SCOPE)
    revoked = []

    def revoke_now():
        with app.app_context():
            answer = app.test_client().post(
                "/oauth/revoke", data={"token": issued["refresh_token"]}, auth=credentials
            )
            revoked.append(answer.status_code)

    def before_the_new_refresh_token(_conn, _cursor, statement, *_args):
        if statement.startswith("INSERT INTO refresh_tokens") and not revoked:
            other = threading.Thread(target=revoke_now)
            other.start()
            other.join(30)

    event.listen(db.engine, "before_cursor_execute", before_the_new_refresh_token)
    try:
        refreshed = client.post(
            "/oauth/token", auth=credentials, data=refresh_form(issued["refresh_token"])
        )
    finally:
        event.remove(db.engine, "before_cursor_execute", before_the_new_refresh_token)
    assert revoked == [200]
    assert refreshed.status_code == 400, refreshed.get_json()
    assert refreshed.get_json()["error"] == "invalid_grant"
