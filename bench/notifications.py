"""Notifications benchmark: time from commit to receipt by a real SMTP server.

Builds --organisations receiving organisations with --caseworkers caseworkers each (200 users
by default) on a throwaway PostgreSQL database, every organisation choosing "at once" for new
referrals, and one sending organisation. --events referrals (1,000) are then sent to them at a
steady --rate by --producers threads (web workers), each committed on its own through
`referrals.service.create_referral`; one in ten is an emergency. The hub's own worker (the
callback dispatcher's LISTEN/NOTIFY listener waking the notifier, as `referral-hub worker`
runs them) sends the e-mails over SMTP with STARTTLS and AUTH to aiosmtpd on 127.0.0.1
(tests/mail_server.py) in a third process, which notes when each message arrives.

The report gives commit-to-receipt latency (median, p95, p99, max) over every message and
checks: none lost (every caseworker of each referral's receiver got its message), none
duplicated (by Message-ID), no personal data (the bench's referrals carry a canary name that
no message may contain), and the target: p95 under 5 s.

    python bench/notifications.py [--events 1000] [--organisations 40] [--caseworkers 5]
        [--rate 20] [--producers 2] [--database-url URL] [--keep]
"""

import argparse
import multiprocessing
import re
import secrets
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import harness
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from referral_hub import create_app  # noqa: E402
from referral_hub.auth import service as auth_service  # noqa: E402
from referral_hub.auth.principal import Principal  # noqa: E402
from referral_hub.directory import service as directory_service  # noqa: E402
from referral_hub.extensions import db  # noqa: E402
from referral_hub.notifications import service as notifications  # noqa: E402
from referral_hub.referrals import service as referrals  # noqa: E402
from referral_hub.referrals.schemas import ReferralCreate  # noqa: E402
from referral_hub.web.session import principal_of  # noqa: E402

TARGET_P95_S = 5.0
CANARY = "Canary Sophearith Chanthavong"
PROVINCE, CATEGORY = "17", "detox"
DRAIN_TIMEOUT_S = 120
REFERRAL_PATH = re.compile(r"/referrals/([0-9a-f-]{36})")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--organisations", type=int, default=40)
    parser.add_argument("--caseworkers", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20, help="referrals per second")
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--database-url")
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


# --- the SMTP server, in its own process --------------------------------------------------


def serve_mail(folder, pipe):
    """Child process: aiosmtpd with STARTTLS and AUTH; sends back each message's arrival."""
    from tests.mail_server import MailServer

    with MailServer(folder) as server:
        pipe.send(server.settings())
        pipe.recv()
        arrivals = []
        for recipients, message, at in server.inbox.messages:
            body = "\n".join(
                part.get_content()
                for part in message.walk()
                if part.get_content_maintype() == "text"
            )
            found = REFERRAL_PATH.search(body)
            personal = CANARY in body or CANARY in str(message["Subject"])
            arrivals.append(
                (message["Message-ID"], recipients, found and found.group(1), at, personal)
            )
        pipe.send(arrivals)


# --- the hub's worker, in its own process -------------------------------------------------


def hub(database_url, mail_settings):
    return create_app(
        harness.hub_config(
            database_url,
            NOTIFY_RETRY_SCHEDULE=[0, 1, 1, 2, 5],
            CALLBACK_POLL_SECONDS=1,
            **mail_settings,
        )
    )


def serve_worker(database_url, mail_settings, pipe):
    """Child process, as `referral-hub worker`: the dispatcher (its listener) and the notifier."""
    app = hub(database_url, mail_settings)
    for name in ("hub_dispatcher", "hub_notifier"):
        app.extensions[name].start()
    pipe.send("ready")
    pipe.recv()
    for name in ("hub_notifier", "hub_dispatcher"):
        app.extensions[name].stop()
    pipe.send(time.process_time())


def start(target, *args):
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=target, args=(*args, theirs), daemon=True)
    process.start()
    if not ours.poll(60):
        raise SystemExit(f"{target.__name__} did not start.")
    return process, ours, ours.recv()


# --- the network --------------------------------------------------------------------------


def build_network(app, organisations, caseworkers):
    """Receiving organisations with a service and caseworkers each, choosing "at once" for new
    referrals; a sending organisation acting through its system (a client principal)."""
    receivers = []
    with app.app_context():
        for index in range(organisations):
            organization, service = harness.organisation_with_service(
                "receiver", index, CATEGORY, PROVINCE
            )
            emails = []
            for number in range(caseworkers):
                email = f"cw{number}.{index:03d}.{secrets.token_hex(3)}@bench.example.org"
                roles = ["caseworker", "org_admin"] if number == 0 else ["caseworker"]
                user = auth_service.create_user(None, organization.id, email, roles)
                user.language = "km" if number % 2 else "en"
                emails.append(email)
                if number == 0:
                    db.session.flush()
                    notifications.set_organization_defaults(
                        principal_of(user), {"referral_new": "immediate"}
                    )
            receivers.append((service.id, emails))
        sender = directory_service.create_organization(
            None, f"Bench sender {secrets.token_hex(3)}", province=PROVINCE
        )
        db.session.commit()
        principal = Principal(
            organization_id=sender.id,
            client_id="bench-sender",
            user_id=None,
            roles=frozenset(),
            provinces=frozenset(),
            scopes=frozenset({"referrals:read", "referrals:write"}),
        )
    return receivers, principal


def referral_data(service_id, urgency):
    now = datetime.now(UTC)
    given, family = CANARY.split(" ", 1)[1].split(" ")
    return ReferralCreate().load(
        {
            "service_id": service_id,
            "urgency": urgency,
            "needs": [CATEGORY],
            "subject": {
                "sex": "female",
                "age": 12,
                "province": PROVINCE,
                "identity": {"given_name": "Canary", "family_name": f"{given} {family}"},
            },
            "consent": {
                "given_by": "guardian",
                "method": "verbal",
                "obtained_at": (now - timedelta(hours=1)).isoformat(),
                "categories": ["identity"],
                "expires_at": (now + timedelta(days=180)).isoformat(),
            },
        }
    )


def produce(app, principal, receivers, count, rate, producers):
    """Send `count` referrals at `rate`; returns {referral id: (commit time, its receivers)}."""
    committed, lock = {}, threading.Lock()
    start = time.time() + 0.5

    def work(number, share, share_rate, start):
        with app.app_context():
            for tick, _late in zip(range(share), harness.ticks(start, share_rate), strict=False):
                service_id, emails = receivers[(number + tick * producers) % len(receivers)]
                urgency = "emergency" if (number + tick) % 10 == 0 else "normal"
                referral, _ = referrals.create_referral(
                    principal, referral_data(service_id, urgency)
                )
                db.session.commit()
                at = time.time()
                with lock:
                    committed[referral.id] = (at, emails)
            db.session.remove()

    harness.in_step(work, count, rate, producers, start)
    return committed


def percentile(values, share):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * share
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run(args, database_url):
    with tempfile.TemporaryDirectory(prefix="hub_bench_mail_") as folder:
        mail_process, mail_pipe, mail_settings = start(serve_mail, folder)
        app = hub(database_url, mail_settings)
        harness.migrate(app)
        with app.app_context():
            if db.session.scalar(text("SELECT count(*) FROM notifications")):
                raise SystemExit("The database already holds notifications: give an empty one.")
        receivers, principal = build_network(app, args.organisations, args.caseworkers)
        worker, worker_pipe, _ready = start(serve_worker, database_url, mail_settings)
        started = time.time()
        committed = produce(app, principal, receivers, args.events, args.rate, args.producers)
        produced_in = time.time() - started
        expected = sum(len(emails) for _at, emails in committed.values())
        deadline = time.time() + DRAIN_TIMEOUT_S
        with app.app_context():
            while time.time() < deadline:
                waiting = db.session.scalar(
                    text("SELECT count(*) FROM notifications WHERE status = 'pending'")
                )
                db.session.rollback()
                if not waiting:
                    break
                time.sleep(0.5)
        time.sleep(1)
        worker_pipe.send("stop")
        worker_cpu = worker_pipe.recv()
        worker.join(30)
        mail_pipe.send("stop")
        arrivals = mail_pipe.recv()
        mail_process.join(30)
    return report(args, committed, expected, arrivals, produced_in, worker_cpu)


def report(args, committed, expected, arrivals, produced_in, worker_cpu):
    latencies, seen, duplicates, personal = [], set(), 0, 0
    for message_id, recipients, referral_id, at, leaked in arrivals:
        personal += leaked
        if message_id in seen:
            duplicates += 1
            continue
        seen.add(message_id)
        if referral_id in committed:
            for recipient in recipients:
                if recipient in committed[referral_id][1]:
                    latencies.append(at - committed[referral_id][0])
    lost = expected - len(latencies)
    p95 = percentile(latencies, 0.95)
    print(
        f"referrals: {len(committed)} in {produced_in:.1f} s ({len(committed) / produced_in:.1f}/s)"
    )
    print(f"users: {args.organisations * args.caseworkers}; messages expected: {expected}")
    print(f"messages received: {len(arrivals)} (duplicates {duplicates}, lost {lost})")
    median, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"commit -> receipt: median {median:.3f} s, p95 {p95:.3f} s, p99 {p99:.3f} s, "
        f"max {max(latencies or [0]):.3f} s"
    )
    per_message = 1000 * worker_cpu / max(len(arrivals), 1)
    print(f"worker CPU: {worker_cpu:.1f} s ({per_message:.2f} ms/message)")
    checks = {
        "none lost": lost == 0,
        "none duplicated": duplicates == 0,
        "no personal data": personal == 0,
        f"p95 under {TARGET_P95_S:g} s": p95 < TARGET_P95_S,
    }
    for name, passed in checks.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {name}")
    return all(checks.values())


if __name__ == "__main__":
    sys.exit(harness.main(parse_args, run))
