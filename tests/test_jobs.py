"""The scheduler's jobs: which run how often, and what the purge of credentials drops and keeps."""

from datetime import timedelta

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from joserfc.jwk import RSAKey

from referral_hub import clock, jobs
from referral_hub.auth.models import (
    AuthorizationCode,
    LoginThrottle,
    RefreshToken,
    TokenRevocation,
    UsedAssertion,
)
from referral_hub.extensions import db, scheduler

from .factories import client_assertion, csrf_from, make_client, make_org, make_user, user_tokens

SECOND = timedelta(seconds=1)


def spend_an_assertion(client, app):
    """A private_key_jwt token request, which keeps its assertion's jti until it expires."""
    key = RSAKey.generate_key(2048, private=True, parameters={"kid": "k1", "alg": "RS256"})
    client_id, _ = make_client(
        make_org(), auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]}
    )
    signed = client_assertion(client_id, f"{app.config['HUB_ISSUER']}/oauth/token", key)
    response = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
        },
    )
    assert response.status_code == 200


def fail_to_sign_in(client, email, times):
    for _ in range(times):
        token = csrf_from(client.get("/login").get_data(as_text=True))
        form = {"csrf_token": token, "email": email, "password": "wrong guess"}
        assert client.post("/login", data=form).status_code == 401


def left():
    """What of each kind the purge has not dropped."""
    return {
        "code": db.session.scalar(db.select(db.func.count()).select_from(AuthorizationCode)),
        "refresh token": db.session.scalar(db.select(db.func.count()).select_from(RefreshToken)),
        "assertion": db.session.scalar(db.select(db.func.count()).select_from(UsedAssertion)),
        "revocation": db.session.scalar(db.select(db.func.count()).select_from(TokenRevocation)),
        "throttle": set(db.session.scalars(db.select(LoginThrottle.key))),
    }


def test_the_purge_drops_each_credential_once_it_has_expired_and_keeps_it_until_then(
    app, client, partner, moved_clock
):
    start = clock.now()
    user = make_user(make_org())
    user_tokens(app, user, "directory:read")  # a spent code and a refresh token
    spend_an_assertion(client, app)
    revoked = client.post(
        "/oauth/revoke",
        auth=(partner["client_id"], partner["secret"]),
        data={"token": partner["token"]},
    )
    assert revoked.status_code == 200
    window = app.config["THROTTLE_WINDOW_SECONDS"]
    fail_to_sign_in(client, user.email, app.config["THROTTLE_MAX_FAILURES"] - 1)
    moved_clock(window / 2)
    fail_to_sign_in(client, user.email, 1)  # locks the account from here past its window
    ends = {
        "code": db.session.scalar(db.select(AuthorizationCode.expires_at)),
        "refresh token": db.session.scalar(db.select(RefreshToken.expires_at)),
        "assertion": db.session.scalar(db.select(UsedAssertion.expires_at)),
        "revocation": db.session.scalar(db.select(TokenRevocation.expires_at)),
        "addr:127.0.0.1": start + timedelta(seconds=window),
        f"login:{user.email}": start + timedelta(seconds=window),
        f"login:{user.email}|127.0.0.1": start + timedelta(seconds=window * 1.5),
    }
    for end in sorted(set(ends.values())):
        for moment in (end - SECOND, end + SECOND):
            clock.freeze(moment)
            jobs.purge_expired_credentials()
            live = {kind for kind, kind_end in ends.items() if kind_end > moment}
            counts = left()
            throttles = counts.pop("throttle")
            assert {kind for kind, count in counts.items() if count} | throttles == live, moment


def test_the_scheduler_runs_each_job_on_its_interval(app):
    threads = [
        app.extensions[name]
        for name in ("hub_dispatcher", "hub_forwarder", "hub_notifier", "hub_sequencer")
    ]
    scheduler.start(paused=True)  # jobs.start adds the jobs without running them now
    try:
        jobs.start(app)
        triggers = {job.id: job.trigger for job in scheduler.get_jobs()}
        for job in scheduler.get_jobs():
            job.func()  # each runs in its own app context
    finally:
        scheduler.remove_all_jobs()
        scheduler.shutdown(wait=False)
        for thread in threads:
            thread.stop()
    assert set(triggers) == {
        "purge_expired_credentials",
        "remind_unverified_services",
        "referral_deadlines",
        "purge_expired_drafts",
        "wake_dispatcher",
        "sync_peers",
        "link_telegram_chats",
    }
    every = {
        name: trigger.interval
        for name, trigger in triggers.items()
        if isinstance(trigger, IntervalTrigger)
    }
    assert every == {
        "purge_expired_credentials": timedelta(minutes=15),
        "referral_deadlines": timedelta(minutes=5),
        "purge_expired_drafts": timedelta(hours=1),
        "wake_dispatcher": timedelta(seconds=5),
        "sync_peers": timedelta(minutes=1),  # each peer when its own PEER_SYNC_MINUTES are up
        "link_telegram_chats": timedelta(seconds=10),
    }
    nightly = triggers["remind_unverified_services"]
    assert isinstance(nightly, CronTrigger)
    assert {field.name: str(field) for field in nightly.fields if not field.is_default} == {
        "hour": "2"
    }
