"""Notifications to people, sent to a real SMTP server on 127.0.0.1 (STARTTLS and AUTH) and to
a local stand-in for the Telegram Bot API."""

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from referral_hub import clock, create_app
from referral_hub.extensions import db
from referral_hub.jobs import referral_deadlines
from referral_hub.notifications import content, telegram
from referral_hub.notifications import service as notifications
from referral_hub.notifications.models import Notification, NotificationAddress
from referral_hub.notifications.sender import Notifier, send_due
from referral_hub.notifications.service import LOCAL_TIME
from referral_hub.referrals.models import Referral
from referral_hub.web.session import principal_of

from .conftest import hub_config
from .factories import make_org, make_user, user_tokens
from .mail_server import MailServer
from .pages import submit, text
from .referral_fixtures import (
    FAMILY_NAME,
    PERSONAL_VALUES,
    Party,
    client_party,
    move,
    referral_body,
    send,
)

ROOT = Path(__file__).resolve().parent.parent
DASH = "\N{EN DASH}"
FAST = [0, 1, 1, 1]  # the retry schedule of these tests, in seconds


@pytest.fixture
def settings(app):
    """Change the hub's configuration for one test; the notifier is made anew for it, and
    everything is restored afterwards."""
    saved, notifier = {}, app.extensions["hub_notifier"]

    def put(**values):
        for key in values:
            saved.setdefault(key, app.config[key])
        app.config.update(values)
        app.extensions["hub_notifier"] = Notifier(app)

    put(NOTIFY_RETRY_SCHEDULE=FAST)
    yield put
    app.extensions["hub_notifier"].close()
    app.extensions["hub_notifier"] = notifier
    app.config.update(saved)


@pytest.fixture
def mail(settings, tmp_path):
    with MailServer(tmp_path) as server:
        settings(**server.settings())
        yield server.inbox


@pytest.fixture
def frozen():
    """Pin the hub's clock; call the result with a time to move it there."""
    clock.freeze(clock.now())
    yield clock.freeze
    clock.freeze(None)


def drain(app):
    """Send what is due, as the worker's notifier does after a wake-up."""
    notifier = app.extensions["hub_notifier"]
    while send_due(notifier.channels()):
        pass
    notifier.close()


def stored(**where):
    db.session.commit()
    query = db.select(Notification).filter_by(**where).order_by(Notification.created_at)
    return db.session.scalars(query).all()


def whole(message):
    """Everything a reader could see of a message: headers, text and HTML."""
    parts = [str(value) for value in message.values()]
    parts += [
        part.get_content() for part in message.walk() if part.get_content_maintype() == "text"
    ]
    return "\n".join(parts)


class Parties:
    """A sending caseworker (a person, so answers reach them) and a receiving organisation with
    two caseworkers (one reads Khmer, one English) and an admin."""

    def __init__(self, app, client, service_name="Water Lily House"):
        from .factories import make_service

        self.sender_org, self.receiver_org = make_org(), make_org()
        self.service = make_service(
            self.receiver_org, name=service_name, categories=["detox"], areas=["17"]
        )
        self.sender_user = make_user(self.sender_org, roles=["caseworker"])
        self.sender_user.language = "en"
        scopes = "referrals:read referrals:write"
        self.sender = Party(
            user_tokens(app, self.sender_user, scopes)["access_token"], self.sender_org.id
        )
        self.receiver = client_party(client, self.receiver_org)
        self.khmer = make_user(self.receiver_org, roles=["caseworker"])
        self.english = make_user(self.receiver_org, roles=["caseworker"])
        self.english.language = "en"
        self.admin = make_user(self.receiver_org, roles=["org_admin"])
        self.admin.language = "en"
        db.session.commit()

    def refer(self, client, **changes):
        body = referral_body(self.service.id, **changes)
        response = send(client, self.sender, body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()


@pytest.fixture
def parties(app, client):
    return Parties(app, client)


# E-mail


def test_an_emergency_reaches_the_receivers_caseworkers_at_once_in_their_language(
    app, client, parties, mail
):
    referral = parties.refer(client, urgency="emergency")
    drain(app)
    assert mail.wait_for(2)
    assert len(mail.messages) == 2  # not the admin: new referrals go to caseworkers
    english = mail.to(parties.english.email)
    khmer = mail.to(parties.khmer.email)
    assert len(english) == len(khmer) == 1
    reference = notifications.reference_of(db.session.get_one(Referral, referral["id"]))
    assert re.fullmatch(
        rf"\[Urgent\] New referral {reference} {DASH} answer by (\w+ \d+ \w+ )?\d\d:\d\d",
        english[0]["Subject"],
    )
    assert english[0]["Content-Language"] == "en"
    assert khmer[0]["Content-Language"] == "km"
    assert khmer[0]["Subject"] != english[0]["Subject"] and reference in khmer[0]["Subject"]
    for message in english + khmer:
        assert f"/referrals/{referral['id']}" in whole(message)
        assert message["Message-ID"].startswith("<ntf_")
        html = message.get_body(("html",)).get_content()
        assert len(html.encode()) < 30 * 1024
    assert "15 years" in whole(english[0]) and "Male" in whole(english[0])
    for value in PERSONAL_VALUES:
        assert all(value not in whole(message) for message in english + khmer)


def test_no_personal_data_in_any_message_of_any_event(app, client, parties, mail, settings):
    referral = parties.refer(client, urgency="emergency")
    referral = move(client, parties.receiver, referral, "received").get_json()
    referral = move(client, parties.receiver, referral, "declined", reason="no_capacity").get_json()
    other = parties.refer(client, urgency="emergency")
    client.post(
        f"/api/v1/referrals/{other['id']}/consent/withdraw",
        json={"erase": False},
        headers=parties.sender.headers,
    )
    drain(app)
    kinds = {n.kind for n in stored()}
    assert {"referral_new", "referral_answered", "consent_withdrawn"} <= kinds
    assert len(mail.messages) >= 6
    for _rcpt, message, _at in mail.messages:
        for value in (*PERSONAL_VALUES, FAMILY_NAME, "Mother"):
            assert value not in whole(message)


def test_the_sender_hears_of_answers_they_did_not_make(app, client, parties, mail):
    referral = parties.refer(client, urgency="high")
    referral = move(client, parties.receiver, referral, "received").get_json()
    move(client, parties.receiver, referral, "accepted")
    drain(app)
    subjects = sorted(m["Subject"] for m in mail.to(parties.sender_user.email))
    reference, receiver = subjects[0].split()[1], parties.receiver_org.name
    assert subjects == [
        f"Referral {reference} accepted by {receiver} {DASH} tell the family",
        f"Referral {reference} received by {receiver} {DASH} wait for their answer",
    ]
    withdrawn = parties.refer(client, urgency="high")
    move(client, parties.sender, withdrawn, "withdrawn")
    drain(app)
    assert len(mail.to(parties.sender_user.email)) == 2  # not told of their own change


def test_routine_referrals_wait_for_the_morning_digest_which_groups_them(
    app, client, parties, mail, frozen
):
    evening = datetime(2026, 12, 7, 18, 0, tzinfo=LOCAL_TIME)
    frozen(evening)
    notifications.set_choices(parties.khmer, {"referral_new": "immediate"})
    db.session.commit()
    references = [parties.refer(client, urgency="normal")["id"] for _ in range(3)]
    drain(app)
    assert len(mail.to(parties.khmer.email)) == 3  # chose immediate
    assert mail.to(parties.english.email) == []  # the default: the digest
    frozen(datetime(2026, 12, 8, 6, 59, tzinfo=LOCAL_TIME))
    drain(app)
    assert mail.to(parties.english.email) == []
    frozen(datetime(2026, 12, 8, 7, 0, tzinfo=LOCAL_TIME))
    drain(app)
    digest = mail.to(parties.english.email)
    assert len(digest) == 1
    assert digest[0]["Subject"] == "Referral Hub: 3 updates to look at today"
    body = whole(digest[0])
    assert all(f"/referrals/{referral_id}" in body for referral_id in references)
    assert {n.message_id for n in stored(user_id=parties.english.id)} == {
        digest[0]["Message-ID"].strip("<>").split("@")[0]
    }


def test_smtps_sends_over_tls_from_the_first_byte(app, client, parties, settings, tmp_path):
    with MailServer(tmp_path, implicit_tls=True) as server:
        settings(**server.settings())
        parties.refer(client, urgency="emergency")
        drain(app)
        assert len(server.inbox.to(parties.english.email)) == 1


def test_a_long_digest_stays_under_30_kb_and_links_to_the_rest(app):
    rows = [
        SimpleNamespace(
            kind="referral_new",
            facts={
                "reference": f"MLT-26-{n:04d}",
                "urgency": "normal",
                "age": 12,
                "sex": "female",
                "categories": ["detox", "legal_aid"],
                "deadline_at": clock.now().isoformat(),
                "service": "Water Lily House " * 5,
                "sender": "M'Lop Tapang",
                "path": f"/referrals/{n}",
            },
        )
        for n in range(100)
    ]
    for language in ("km", "en"):
        message = content.render(rows, language, digest=True)
        assert len(message.html.encode()) < 30 * 1024
        assert "MLT-26-0000" in message.text and "MLT-26-0099" not in message.text
    assert "And 80 more" in message.html


def test_choices_off_and_organisation_defaults_but_emergencies_always_come(
    app, client, parties, mail
):
    admin = principal_of(parties.admin)
    notifications.set_organization_defaults(admin, {"referral_new": "off"})
    notifications.set_choices(parties.english, {"referral_new": "immediate"})
    db.session.commit()
    parties.refer(client, urgency="high")
    drain(app)
    assert len(mail.to(parties.english.email)) == 1  # their own choice
    assert mail.to(parties.khmer.email) == []  # the organisation's default: off
    parties.refer(client, urgency="emergency")
    drain(app)
    assert len(mail.to(parties.khmer.email)) == 1  # an emergency comes all the same


def test_a_message_is_retried_while_the_server_refuses_it_then_delivered(
    app, client, parties, mail, frozen
):
    mail.refuse = "451 4.3.0 Try again later"
    parties.refer(client, urgency="emergency")
    drain(app)
    assert mail.messages == []
    waiting = stored(user_id=parties.english.id)[0]
    assert waiting.status == "pending" and waiting.attempts == 1
    assert waiting.attempt_log[0].error.startswith("451")
    frozen(clock.now() + timedelta(seconds=2))
    drain(app)
    assert mail.messages == []  # refused again
    mail.refuse = None
    frozen(clock.now() + timedelta(seconds=2))
    drain(app)
    assert len(mail.to(parties.english.email)) == 1
    sent = stored(user_id=parties.english.id)[0]
    assert sent.status == "sent" and sent.attempts == 3
    # the attempts are on the organisation admin's page
    browser = _signed_in_as(app, parties.admin)
    page = text(browser.get("/notifications/messages"))
    assert "451 4.3.0 Try again later" in page and sent.id in page


def _signed_in_as(app, user):
    from .factories import sign_in

    browser = app.test_client()
    assert sign_in(browser, user.email).status_code == 302
    browser.set_cookie("hub_lang", "en")
    return browser


def test_refusals_of_one_address_pause_it_and_the_person_sees_a_banner(
    app, client, parties, mail, frozen
):
    mail.refuse = "550 5.1.1 No such user"
    for _ in range(3):
        parties.refer(client, urgency="emergency")
    drain(app)
    address = db.session.scalar(
        db.select(NotificationAddress).filter_by(user_id=parties.english.id, channel="email")
    )
    assert address.paused_at is not None and address.failures == 3
    mail.refuse = None
    parties.refer(client, urgency="emergency")
    drain(app)
    assert mail.to(parties.english.email) == []  # paused
    browser = _signed_in_as(app, parties.english)
    page = text(browser.get("/home"))
    assert "Your notifications are paused" in page
    submit(browser, "/notifications", "/notifications/resume/email")
    drain(app)
    assert len(mail.to(parties.english.email)) == 1  # what waited; the refused ones failed
    assert "Your notifications are paused" not in text(browser.get("/home"))


WORKER = """
import json, sys, time
from referral_hub import create_app
from referral_hub.notifications.sender import send_due
app = create_app(json.loads(sys.argv[1]))
with app.app_context():
    channels = app.extensions["hub_notifier"].channels()
    while True:
        if not send_due(channels):
            time.sleep(0.05)
"""


def test_a_worker_killed_after_sending_and_before_recording_sends_one_duplicate(
    app, client, parties, mail, settings, database_url, live_port, tmp_path
):
    for _ in range(3):
        parties.refer(client, urgency="emergency")
    expected = {n.id for n in stored()}
    assert len(expected) == 6
    settings(NOTIFY_LEASE_SECONDS=4, NOTIFY_SEND_TIMEOUT=1)
    config = hub_config(
        database_url,
        live_port,
        **{k: app.config[k] for k in ("SMTP_URL", "SMTP_CA_FILE", "NOTIFY_RETRY_SCHEDULE")},
        NOTIFY_LEASE_SECONDS=4,
        NOTIFY_SEND_TIMEOUT=1,
    )
    env = {**os.environ, "HUB_INSTANCE_PATH": app.instance_path, "PYTHONPATH": str(ROOT)}
    mail.hold = True
    with open(tmp_path / "worker.log", "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(config)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            assert mail.held.wait(30), (tmp_path / "worker.log").read_text()
            process.kill()  # SIGKILL: the server has the message, the outbox does not know
            process.wait(10)
        finally:
            process.kill()
            process.wait(10)
    mail.hold = False
    mail.released.set()
    assert [n.status for n in stored()].count("pending") == 6
    time.sleep(4.5)  # the dead worker's lease runs out
    drain(app)
    ids = [m["Message-ID"].strip("<>").split("@")[0] for _r, m, _t in mail.messages]
    assert set(ids) == expected
    assert len(ids) == len(expected) + 1  # the one sent to the dead worker, once more
    assert all(n.status == "sent" for n in stored())


def test_once_assigned_a_referral_is_the_assignees_alone(app, client, parties, mail):
    for person in (parties.english, parties.khmer):
        notifications.set_choices(person, {"referral_new": "immediate"})
    referral = parties.refer(client, urgency="high")
    drain(app)
    assert len(mail.to(parties.english.email)) == len(mail.to(parties.khmer.email)) == 1
    found = db.session.get(Referral, referral["id"])
    found.assigned_to_user_id = parties.khmer.id
    db.session.commit()
    drain(app)
    assigned = mail.to(parties.khmer.email)
    assert len(assigned) == 2 and len(mail.to(parties.english.email)) == 1
    assert assigned[1]["Content-Language"] == "km" and found.reference in assigned[1]["Subject"]
    parties.khmer.language = "en"
    found.assigned_to_user_id = parties.english.id
    db.session.commit()
    drain(app)
    subject = mail.to(parties.english.email)[-1]["Subject"]
    assert subject.startswith(f"[High] Referral {found.reference} assigned to you {DASH} answer by")
    client.post(
        f"/api/v1/referrals/{referral['id']}/consent/withdraw",
        json={"erase": False},
        headers=parties.sender.headers,
    )
    drain(app)
    withdrawn = [m for _r, m, _t in mail.messages if "Consent withdrawn" in m["Subject"]]
    assert [m["To"] for m in withdrawn] == [parties.english.email]  # the assignee alone


# Other events


def test_deadlines_half_gone_then_passed_reach_caseworkers_and_admins(
    app, client, parties, mail, frozen
):
    referral = parties.refer(client, urgency="emergency")  # 4 hours to answer
    drain(app)
    first = len(mail.messages)
    frozen(clock.now() + timedelta(hours=2, minutes=1))
    referral_deadlines()
    drain(app)
    half = [m for _r, m, _t in mail.messages[first:]]
    assert sorted(m["To"] for m in half) == sorted(
        [parties.english.email, parties.khmer.email, parties.admin.email]
    )
    english = next(m for m in half if m["To"] == parties.english.email)
    assert english["Subject"].strip().startswith("[Urgent] Half the time is gone: answer referral ")
    frozen(clock.now() + timedelta(hours=2))
    referral_deadlines()
    drain(app)
    passed = [m for _r, m, _t in mail.messages[first + 3 :]]
    assert len(passed) == 3
    english = next(m for m in passed if m["To"] == parties.english.email)
    assert english["Subject"].strip().startswith("[Overdue] Referral ")
    assert referral["id"] in whole(passed[0])


def test_a_disabled_callback_and_an_unverified_service_reach_the_org_admins(
    app, client, parties, mail, frozen
):
    from referral_hub.callbacks.attempts import _disable
    from referral_hub.callbacks.models import Subscription
    from referral_hub.directory.service import remind_unverified

    subscription = Subscription(
        organization_id=parties.receiver_org.id,
        url="https://example.org/hook",
        event_types=["referral.created"],
        secret_data="x",
    )
    db.session.add(subscription)
    db.session.flush()
    _disable(subscription.id, "The partner answered 410 Gone.")
    remind_unverified(0)
    db.session.commit()
    drain(app)
    to_admin = mail.to(parties.admin.email)
    assert [m["Subject"] for m in to_admin] == [
        f"Callback to https://example.org/hook stopped {DASH} fix it, then resume it"
    ]
    assert "Why: The partner answered 410 Gone." in whole(to_admin[0])
    assert mail.to(parties.english.email) == []
    frozen(notifications.next_digest(clock.now()))
    drain(app)
    assert len(mail.to(parties.admin.email)) == 2  # the unverified service, in the digest


# Pages


def test_a_person_chooses_per_event_and_an_admin_sets_defaults(app, parties):
    browser = _signed_in_as(app, parties.english)
    page = text(browser.get("/notifications"))
    assert "A new referral to my organisation" in page
    response = submit(
        browser,
        "/notifications",
        choice_referral_new="immediate",
        choice_deadline_half="off",
        language="km",
    )
    assert response.status_code == 302
    _chosen, mine = notifications.choices(parties.english)
    assert mine == {"referral_new": "immediate", "deadline_half": "off"}
    assert db.session.get(type(parties.english), parties.english.id).language == "km"
    admin = _signed_in_as(app, parties.admin)
    submit(admin, "/notifications/organization", choice_referral_answered="digest")
    assert notifications.organization_defaults(parties.receiver_org.id)["referral_answered"] == (
        "digest"
    )
    caseworker = _signed_in_as(app, parties.khmer)
    assert caseworker.get("/notifications/organization").status_code in (403, 404)
    assert caseworker.get("/notifications/messages").status_code in (403, 404)


def test_the_demo_writes_eml_files_shown_on_dev_mail(database_url, live_port, tmp_path):
    demo = create_app(hub_config(database_url, live_port, HUB_ENV="development"))
    assert demo.extensions["hub_notifier"].channel_names == ["email"]
    with demo.app_context():
        org = make_org()
        user = make_user(org, roles=["caseworker"])
        notifications.notify([user.id], "deadline_passed", {"reference": "MLT-26-0042"})
        db.session.commit()
        drain(demo)
    files = list((Path(demo.instance_path) / "mail").glob("*.eml"))
    assert files
    browser = demo.test_client()
    page = browser.get("/dev/mail").get_data(as_text=True)
    assert "MLT-26-0042" in page
    one = browser.get(f"/dev/mail/{files[0].name}")
    assert one.status_code == 200


def test_dev_mail_is_for_development_only(client):
    assert client.get("/dev/mail").status_code == 404


def test_production_without_smtp_says_email_notifications_are_off(database_url, live_port, capsys):
    create_app(
        hub_config(
            database_url,
            live_port,
            HUB_ENV="production",
            DATA_ENCRYPTION_KEYS="k1:" + "A" * 43 + "=",
            SMTP_URL="",
        )
    )
    assert "E-mail notifications are off: set SMTP_URL" in capsys.readouterr().err


def test_nothing_is_written_when_no_channel_is_configured(client, parties):
    parties.refer(client, urgency="emergency")
    assert stored() == []


# Telegram


class FakeBotAPI:
    """Stands in for api.telegram.org: getUpdates answers what the test queued, sendMessage is
    kept."""

    def __init__(self):
        self.updates, self.sent = [], []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                fields = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                method = self.path.rsplit("/", 1)[-1]
                if not self.path.startswith("/botTEST-TOKEN/"):
                    answer, status = {"ok": False, "description": "Unauthorized"}, 401
                elif method == "getUpdates":
                    offset = fields.get("offset") or 0
                    result = [u for u in api.updates if u["update_id"] >= offset]
                    answer, status = {"ok": True, "result": result}, 200
                elif str(fields.get("chat_id")) == "403":
                    answer, status = {"ok": False, "description": "Forbidden: bot was blocked"}, 403
                else:
                    api.sent.append(fields)
                    answer, status = {"ok": True, "result": {"message_id": len(api.sent)}}, 200
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bot(settings):
    api = FakeBotAPI()
    settings(TELEGRAM_BOT_TOKEN="TEST-TOKEN", TELEGRAM_API_URL=api.url)
    yield api
    api.close()


def test_a_person_links_telegram_with_a_one_time_code_and_gets_notifications_there(
    app, client, parties, mail, bot
):
    browser = _signed_in_as(app, parties.english)
    page = text(submit(browser, "/notifications", "/notifications/telegram/code"))
    code = page.split("<code>")[1].split("</code>")[0]
    bot.updates.append({"update_id": 10, "message": {"text": f"/start {code}", "chat": {"id": 77}}})
    bot.updates.append(
        {"update_id": 11, "message": {"text": "/start 0BADC0DE", "chat": {"id": 78}}}
    )
    assert telegram.link_new_chats() == 1
    db.session.commit()
    assert telegram.link_new_chats() == 0  # read already, and the code worked once
    assert bot.sent[0]["chat_id"] == "77"  # the confirmation
    parties.refer(client, urgency="emergency")
    drain(app)
    to_chat = [m for m in bot.sent[1:] if m["chat_id"] == "77"]
    assert len(to_chat) == 1
    assert "New referral" in to_chat[0]["text"]
    assert all(value not in to_chat[0]["text"] for value in PERSONAL_VALUES)
    assert len(mail.to(parties.english.email)) == 1  # and e-mail too
    assert "Linked" in text(browser.get("/notifications"))


def test_a_blocked_bot_pauses_telegram_like_a_refused_address(app, client, parties, bot, settings):
    settings(NOTIFY_PAUSE_AFTER_FAILURES=1)
    db.session.add(
        NotificationAddress(user_id=parties.english.id, channel="telegram", address="403")
    )
    db.session.commit()
    parties.refer(client, urgency="emergency")
    drain(app)
    address = db.session.scalar(
        db.select(NotificationAddress).filter_by(user_id=parties.english.id, channel="telegram")
    )
    assert address.paused_at is not None
    failed = stored(user_id=parties.english.id, channel="telegram")[0]
    assert failed.status == "failed" and "403" in failed.attempt_log[0].error
